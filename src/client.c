/* The client: the guard every method runs under, log events, JSON, close,
 * tostring, stats (the constructor is client_new.c, the engine client_engine.c). */
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "lua_error.h"

/* ---- the guard ------------------------------------------------------- */

client *cl_client(lua_State *L, const char *method)
{
	client *c = ducky_testudata(L, 1, CLIENT_MT);
	if (!c)
		luaL_error(L, "client:%s: call it on a ducky.client, as client:%s(…), not on a %s",
		           method, method, luaL_typename(L, 1));
	return c;
}

client *cl_check(lua_State *L, const char *method)
{
	client *c = cl_client(L, method);
	if (c->closed)
		luaL_error(L, "client:%s: attempt to use a closed ducky client", method);
	if (c->busy)
		luaL_error(L,
		           "client:%s: a ducky client cannot be used while one of its calls is "
		           "under way (from its own log or token_cache callbacks, a metamethod "
		           "or a finalizer)",
		           method);
	return c;
}

static void close_client(lua_State *L, client *c);

/* Runs body with the client (at 1) marked busy from its first argument to its
 * last result: Lua code that runs meanwhile (a callback, a metamethod of an
 * argument, any finalizer the collector calls) cannot reenter the client, and a
 * close() it asks for waits for the call to end. The mark is cleared on every
 * path, raises included: body runs protected and its error is raised again. */
int cl_guarded(lua_State *L, lua_CFunction body, const char *method)
{
	client *c = cl_check(L, method);
	lua_pushcfunction(L, body); /* may raise: before the mark */
	lua_insert(L, 1);
	/* Where pushing a C function allocates (Lua 5.1, LuaJIT), the collector may
	 * have run a finalizer that closed the client: check again, now that nothing
	 * runs before the mark. */
	if (c->closed)
		luaL_error(L, "client:%s: attempt to use a closed ducky client", method);
	c->busy = 1;
	c->L = L;
	int rc = lua_pcall(L, lua_gettop(L) - 1, LUA_MULTRET, 0);
	c->busy = 0;
	if (c->close_pending)
		close_client(L, c);
	return rc == 0 ? lua_gettop(L) : lua_error(L);
}

/* ---- log events, called protected and outside libcurl ----------------- */

static void set_str(lua_State *L, const char *k, const char *v)
{
	if (v) {
		lua_pushstring(L, v);
		lua_setfield(L, -2, k);
	}
}

static void set_num(lua_State *L, const char *k, const double *v)
{
	if (v) {
		lua_pushnumber(L, *v);
		lua_setfield(L, -2, k);
	}
}

static int call_log(lua_State *L)
{
	const client *c = lua_touserdata(L, 1);
	const ducky_event *ev = lua_touserdata(L, 2);
	lua_rawgeti(L, LUA_REGISTRYINDEX, c->ref_log);
	lua_createtable(L, 0, 5);
	set_str(L, "event", ev->event);
	set_str(L, "source", ev->source);
	set_str(L, "reason", ev->reason);
	set_str(L, "fingerprint", ev->fingerprint);
	set_num(L, "seconds_left", ev->seconds_left);
	set_num(L, "wait", ev->wait);
	if (ev->attempt) {
		lua_pushinteger(L, ev->attempt);
		lua_setfield(L, -2, "attempt");
	}
	lua_call(L, 1, 0);
	return 0;
}

void cl_emit(client *c, const ducky_event *ev)
{
	lua_State *L = c->L;
	if (c->ref_log == LUA_NOREF || !L)
		return;
	lua_pushcfunction(L, call_log);
	lua_pushlightuserdata(L, c);
	lua_pushlightuserdata(L, (void *)ev);
	if (lua_pcall(L, 2, 0, 0) != 0)
		lua_pop(L, 1); /* an error inside the user's log function is ignored */
}

/* ---- JSON through lua-cjson ------------------------------------------- */

int cl_json_decode_top(lua_State *L)
{
	lua_getfield(L, LUA_REGISTRYINDEX, CL_JSON);
	lua_rawgeti(L, -1, 2); /* decode */
	lua_replace(L, -2);
	lua_insert(L, -2); /* decode, s */
	if (lua_pcall(L, 1, 1, 0) != 0) {
		lua_pop(L, 1);
		return 0;
	}
	return 1;
}

int cl_json_decode(lua_State *L, const char *s, size_t n)
{
	lua_pushlstring(L, s, n);
	return cl_json_decode_top(L);
}

int cl_push_err(lua_State *L, ducky_err *err)
{
	lua_pushnil(L);
	ducky_error_push(L, err);
	ducky_err_clear(err);
	return 2;
}

int cl_push_error(lua_State *L, client *c, ducky_err *err)
{
	c->st.errors++;
	return cl_push_err(L, err);
}

/* ---- close, tostring, stats --------------------------------------------- */

static void free_str(char **p)
{
	free(*p);
	*p = NULL;
}

/* Frees everything the client holds and wipes what may hold a secret or a
 * token; does nothing the second time. */
static void close_client(lua_State *L, client *c)
{
	if (c->closed)
		return;
	c->closed = 1;
	c->close_pending = 0;
	c->L = L; /* a store's unlock may run while the engine lets go */
	ducky_engine_free(c->eng);
	c->eng = NULL;
	ducky_creds_free(&c->creds);
	ducky_tokref_free(&c->tok);
	ducky_store_close(&c->files);
	ducky_buf_free(&c->url);
	ducky_headers_free(c->api_headers);
	ducky_headers_free(c->extra);
	c->api_headers = c->extra = NULL;
	char **owned[] = {&c->base_url, &c->client_id, &c->ca_file,
	                  &c->ca_path,  &c->proxy,     &c->no_proxy};
	for (size_t i = 0; i < sizeof owned / sizeof *owned; i++)
		free_str(owned[i]);
	ducky_wipe_str(c->key_password);
	c->key_password = NULL;
	memset(&c->conf, 0, sizeof c->conf);
	int *refs[] = {&c->ref_log, &c->ref_store, &c->ref_limits};
	for (size_t i = 0; i < sizeof refs / sizeof *refs; i++) {
		luaL_unref(L, LUA_REGISTRYINDEX, *refs[i]);
		*refs[i] = LUA_NOREF;
	}
}

/* The one closer: close(), __gc and __close. Asked for while a call is under
 * way (from a callback, a metamethod or a finalizer), it happens when the call ends. */
int cl_close(lua_State *L)
{
	client *c = cl_client(L, "close");
	if (c->busy)
		c->close_pending = 1;
	else
		close_client(L, c);
	return 0;
}

/* __gc. A client in the middle of one of its calls is on that call's stack,
 * so only lua_close from inside the call gets here (os.exit(code, true) in a
 * log function or a store's): the call never comes back, and the rest of the
 * client cannot be let go from inside it (libcurl may be in a callback), but
 * its secret and token are wiped now, not left in the process. */
int cl_gc(lua_State *L)
{
	client *c = cl_client(L, "close");
	if (!c->busy || c->closed)
		return cl_close(L);
	ducky_creds_free(&c->creds);
	ducky_tokref_free(&c->tok);
	ducky_wipe_str(c->key_password);
	c->key_password = NULL;
	return 0;
}

static int tostring_body(lua_State *L)
{
	client *c = cl_self(L);
	lua_pushfstring(L, "ducky.client (%s @ %s): %p",
	                c->client_id ? c->client_id : "no credentials", c->base_url, (void *)c);
	return 1;
}

/* Readable in every state: closed, idle, or from inside one of its own calls
 * (whose fields stay put: a close waits for the call to end). */
int cl_tostring(lua_State *L)
{
	client *c = cl_client(L, "tostring");
	if (c->closed) {
		lua_pushfstring(L, "ducky.client (closed): %p", (void *)c);
		return 1;
	}
	lua_settop(L, 1);
	return c->busy ? tostring_body(L) : cl_guarded(L, tostring_body, "tostring");
}

/* t[k] = a fresh or reused table (the one t has at k, emptied), on top. */
static void reuse_table(lua_State *L, int t, const char *k)
{
	lua_getfield(L, t, k);
	if (!lua_istable(L, -1)) {
		lua_pop(L, 1);
		lua_newtable(L);
		lua_pushvalue(L, -1);
		lua_setfield(L, t, k);
		return;
	}
	for (lua_pushnil(L); lua_next(L, -2); lua_pop(L, 1)) {
		lua_pushvalue(L, -2);
		lua_pushnil(L);
		lua_rawset(L, -5); /* clearing a field during next is allowed */
	}
}

/* stats() or stats(t): the counters in a new table, or written into t (a
 * caller that reads them on every call reuses one). */
static int stats_body(lua_State *L)
{
	client *c = cl_self(L);
	if (!lua_istable(L, 2)) {
		lua_settop(L, 1);
		lua_createtable(L, 0, 12);
	}
	lua_settop(L, 2);
#define STAT(name)                                                                                 \
	lua_pushinteger(L, (lua_Integer)c->st.name);                                               \
	lua_setfield(L, 2, #name);
	STAT(requests)
	STAT(token_fetches)
	STAT(token_cache_hits)
	STAT(token_store_hits)
	STAT(retries)
	STAT(replays_401)
	STAT(stale_tokens)
	STAT(errors)
#undef STAT
	reuse_table(L, 2, "tokens"); /* by source, in token()'s and the events' words */
	for (int i = 0; i < DUCKY_FROM_COUNT; i++) {
		lua_pushinteger(L, (lua_Integer)c->st.tokens[i]);
		lua_setfield(L, -2, ducky_from_names[i]);
	}
	reuse_table(L, 2, "rate_limit");
	if (c->ref_limits != LUA_NOREF) {
		lua_rawgeti(L, LUA_REGISTRYINDEX, c->ref_limits);
		for (lua_pushnil(L); lua_next(L, -2); lua_pop(L, 1)) {
			lua_pushvalue(L, -2);
			lua_pushvalue(L, -2);
			lua_rawset(L, 4);
		}
	}
	lua_settop(L, 2);
	return 1;
}

/* cache_key(): the hex key the token cache keeps this client's token under
 * (for integrations that share it, like ducky.ngx's shared dict). */
static int cache_key_body(lua_State *L)
{
	lua_pushstring(L, cl_self(L)->creds.key);
	return 1;
}

int cl_cache_key(lua_State *L)
{
	return cl_guarded(L, cache_key_body, "cache_key");
}

int cl_stats(lua_State *L)
{
	return cl_guarded(L, stats_body, "stats");
}
