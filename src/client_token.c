/* The client's side of the token cache: the exchange with the token endpoint
 * (its answer decoded by lua-cjson), the file or user store behind the cache,
 * all as token.c's callbacks, and the token a call uses. */
#define _GNU_SOURCE /* memmem */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "client.h"

/* ---- the token exchange (called by token.c, unlocked) ------------------ */

typedef struct exchange_ctx {
	client *c;
	ducky_fresh *out;
	ducky_err *err;
} exchange_ctx;

static const char *string_field(lua_State *L, int t, const char *name)
{
	lua_getfield(L, t, name);
	const char *s = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
	lua_pop(L, 1); /* the table keeps the string alive */
	return s;
}

static void keep_rate_limits(lua_State *L, client *c)
{
	const char *pos = NULL, *p, *value;
	while (ducky_http_next_header(&c->http, &pos, &p, &value)) {
		if (strncmp(p, "x-ratelimit-", 12) == 0 ||
		    strcmp(p, "auth0-client-quota-limit") == 0) {
			if (c->ref_limits == LUA_NOREF) {
				lua_newtable(L);
				c->ref_limits = luaL_ref(L, LUA_REGISTRYINDEX);
			}
			lua_rawgeti(L, LUA_REGISTRYINDEX, c->ref_limits);
			lua_pushstring(L, value);
			lua_setfield(L, -2, p);
			lua_pop(L, 1);
		}
	}
}

/* A malloc'd copy of server text with every occurrence of the secret masked:
 * a token endpoint that quotes the secret back must not put it in an error. */
static char *scrub(const client *c, const char *text)
{
	char *out = ducky_strdup(text), *p;
	if (out && c->secret_len)
		while ((p = memmem(out, strlen(out), c->secret, c->secret_len)) != NULL)
			memset(p, '*', c->secret_len);
	return out;
}

/* Reads the token endpoint's answer (protected: may raise on memory). */
static int read_token_answer(lua_State *L)
{
	exchange_ctx *x = lua_touserdata(L, 1);
	client *c = x->c;
	long status = c->http.status;
	int decoded =
	    cl_json_decode(L, c, c->http.body.data ? c->http.body.data : "", c->http.body.len);
	int t = lua_gettop(L);

	keep_rate_limits(L, c);
	if (status >= 200 && status < 300) {
		if (!decoded || lua_type(L, t) != LUA_TTABLE) {
			ducky_fail(x->err, DUCKY_E_DECODE,
			           "token endpoint answered %ld with a body "
			           "that is not a JSON object",
			           status);
			return 0;
		}
		size_t len = 0;
		lua_getfield(L, t, "access_token");
		const char *tok =
		    lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &len) : NULL;
		lua_getfield(L, t, "expires_in");
		double expires_in = lua_type(L, -1) == LUA_TNUMBER ? lua_tonumber(L, -1) : -1;
		if (ducky_token_validate(tok, len, string_field(L, t, "token_type"), expires_in,
		                         x->err))
			return 0;
		if (!(x->out->token = ducky_strndup(tok, len))) {
			ducky_fail(x->err, DUCKY_E_LIMIT, "out of memory");
			return 0;
		}
		x->out->lifetime = ducky_token_lifetime(expires_in);
		x->out->expires_at = ducky_wall() + x->out->lifetime;
		return 0;
	}
	const char *code = decoded && lua_istable(L, t) ? string_field(L, t, "error") : NULL;
	const char *desc =
	    decoded && lua_istable(L, t) ? string_field(L, t, "error_description") : NULL;
	x->err->status = status;
	x->err->code = scrub(c, code);
	x->err->description = scrub(c, desc);
	x->err->retry_after =
	    ducky_retry_after(ducky_http_header(&c->http, "retry-after"), ducky_wall());
	x->err->retryable = status == 429 || status >= 500;
	code = x->err->code;
	desc = x->err->description;
	ducky_fail(x->err,
	           status == 400 || status == 401 || status == 403 ? DUCKY_E_AUTH : DUCKY_E_HTTP,
	           "token endpoint answered %ld%s%.100s%s%.300s", status, code ? " " : "",
	           code ? code : "", desc ? ": " : "", desc ? desc : "");
	return 0;
}

static int exchange(void *ud, ducky_fresh *out, ducky_err *err)
{
	client *c = ud;
	exchange_ctx x = {c, out, err};
	int attempts = 0;
	ducky_req req = {
	    "POST", c->token_url, c->token_headers,   c->token_body.data, c->token_body.len,
	    1,      c->deadline,  c->connect_timeout, c->call_retries,    c->max_retry_after};

	if (!c->has_credentials)
		return ducky_fail(err, DUCKY_E_CONFIG,
		                  "no credentials: set client_id and client_secret "
		                  "(or DUCKY_CLIENT_ID and DUCKY_CLIENT_SECRET)");
	c->st.token_fetches++;
	int rc = ducky_http_send(&c->http, &req, cl_on_retry, c, &attempts, err);
	err->attempts = attempts;
	if (rc)
		return rc;
	if (ducky_cpcall(c->L, read_token_answer, &x) != 0) {
		if (err->kind == DUCKY_OK)
			ducky_fail(err, DUCKY_E_DECODE, "reading the token answer: %s",
			           lua_isstring(c->L, -1) ? lua_tostring(c->L, -1) : "error");
		lua_pop(c->L, 1);
	}
	return err->kind == DUCKY_OK ? 0 : -1;
}

/* ---- shared stores: the file store, or the user's { load, store, lock, unlock } -- */

static void store_failed(client *c, const char *reason)
{
	if (reason)
		cl_emit(c, "store_error", c->store_kind == STORE_FILE ? "file" : "store", reason,
		        -1, 0, -1);
}

/* File store problems are static strings: each is reported once in a row, not
 * on every step that meets it again. */
static void file_failed(client *c, const char *reason)
{
	if (reason && reason != c->store_said)
		store_failed(c, c->store_said = reason);
}

static int file_load(void *ud, const char *key, ducky_fresh *out)
{
	client *c = ud;
	const char *reason;
	int found = ducky_store_load(&c->files, key, out, &reason);
	file_failed(c, reason);
	return found;
}

static void file_store(void *ud, const char *key, const ducky_fresh *tok)
{
	client *c = ud;
	const char *reason;
	ducky_store_save(&c->files, key, tok, &reason);
	file_failed(c, reason);
}

static void file_drop(void *ud, const char *key)
{
	client *c = ud;
	const char *reason;
	ducky_store_drop(&c->files, key, &reason);
	file_failed(c, reason);
}

static int file_lock(void *ud, const char *key, double deadline)
{
	client *c = ud;
	const char *reason;
	int locked = ducky_store_lock(&c->files, key, deadline, &reason);
	file_failed(c, reason);
	return locked;
}

static void file_unlock(void *ud, const char *key)
{
	(void)key;
	ducky_store_unlock(&((client *)ud)->files);
}

/* What a store's load() returned, on top: nil or false is "nothing stored";
 * an entry table fills out (*found = 1); anything else raises, so the caller
 * reports a store_error and goes on as if nothing was stored. */
static int read_entry(lua_State *L, ducky_fresh *out, int *found)
{
	size_t len = 0;
	ducky_err bad;
	*found = 0;
	if (!lua_toboolean(L, -1))
		return 0;
	if (!lua_istable(L, -1))
		return luaL_error(L, "returned a %s, not nil or an entry table",
		                  luaL_typename(L, -1));
	lua_getfield(L, -1, "access_token");
	lua_getfield(L, -2, "expires_at");
	lua_getfield(L, -3, "expires_in");
	const char *tok = lua_type(L, -3) == LUA_TSTRING ? lua_tolstring(L, -3, &len) : NULL;
	double at = lua_type(L, -2) == LUA_TNUMBER ? lua_tonumber(L, -2) : NAN;
	double life = lua_type(L, -1) == LUA_TNUMBER ? lua_tonumber(L, -1) : 0;
	ducky_err_init(&bad);
	int ok = ducky_token_validate(tok, len, "Bearer", 1, &bad) == 0;
	ducky_err_clear(&bad);
	if (!ok || !isfinite(at) || !isfinite(life) || (!lua_isnil(L, -1) && life <= 0))
		return luaL_error(L, "returned an entry without a usable access_token, expires_at "
		                     "and expires_in");
	if (!(out->token = ducky_strndup(tok, len)))
		return luaL_error(L, "out of memory");
	out->expires_at = at;
	out->lifetime = life;
	*found = 1;
	return 0;
}

/* A call into the user's store table, run protected: fn(key [, arg]). */
typedef struct store_call {
	client *c;
	const char *fn, *key;
	ducky_fresh *fresh;       /* load: filled from the entry */
	const ducky_fresh *entry; /* store: the entry to pass */
	double timeout;           /* lock: seconds */
	int result;
} store_call;

static int call_store(lua_State *L)
{
	store_call *s = lua_touserdata(L, 1);
	int nargs = 1;
	lua_rawgeti(L, LUA_REGISTRYINDEX, s->c->ref_store);
	lua_getfield(L, -1, s->fn);
	if (lua_isnil(L, -1))
		return 0; /* lock and unlock are optional */
	lua_pushstring(L, s->key);
	if (s->entry) {
		lua_createtable(L, 0, 4);
		lua_pushstring(L, s->entry->token);
		lua_setfield(L, -2, "access_token");
		lua_pushliteral(L, "Bearer");
		lua_setfield(L, -2, "token_type");
		lua_pushnumber(L, s->entry->expires_at);
		lua_setfield(L, -2, "expires_at");
		lua_pushnumber(L, s->entry->lifetime);
		lua_setfield(L, -2, "expires_in");
		nargs++;
	} else if (strcmp(s->fn, "store") == 0) {
		lua_pushnil(L);
		nargs++;
	} else if (strcmp(s->fn, "lock") == 0) {
		lua_pushnumber(L, s->timeout);
		nargs++;
	}
	lua_call(L, nargs, 1);
	if (s->fresh)
		return read_entry(L, s->fresh, &s->result);
	s->result = lua_toboolean(L, -1);
	return 0;
}

static int user_store_call(client *c, store_call *s)
{
	s->c = c;
	if (ducky_cpcall(c->L, call_store, s) != 0) {
		lua_pushfstring(c->L, "token_cache.%s: %s", s->fn,
		                lua_isstring(c->L, -1) ? lua_tostring(c->L, -1) : "error");
		store_failed(c, lua_tostring(c->L, -1));
		lua_pop(c->L, 2);
		if (s->fresh) {
			free(s->fresh->token);
			s->fresh->token = NULL;
		}
		return 0;
	}
	return s->result;
}

static int user_load(void *ud, const char *key, ducky_fresh *out)
{
	store_call s = {NULL, "load", key, out, NULL, 0, 0};
	return user_store_call(ud, &s);
}

static void user_save(void *ud, const char *key, const ducky_fresh *tok)
{
	store_call s = {NULL, "store", key, NULL, tok, 0, 0};
	user_store_call(ud, &s);
}

static void user_drop(void *ud, const char *key)
{
	store_call s = {NULL, "store", key, NULL, NULL, 0, 0}; /* store(key, nil) */
	user_store_call(ud, &s);
}

static int user_lock(void *ud, const char *key, double deadline)
{
	double left = deadline - ducky_now();
	store_call s = {NULL, "lock", key, NULL, NULL, left > 0 ? left : 0, 0};
	return user_store_call(ud, &s);
}

static void user_unlock(void *ud, const char *key)
{
	store_call s = {NULL, "unlock", key, NULL, NULL, 0, 0};
	user_store_call(ud, &s);
}

ducky_token_ops cl_token_ops(client *c)
{
	ducky_token_ops ops = {c, exchange, NULL, NULL, NULL, NULL, NULL};
	if (c->store_problem) { /* the file store is off; say why once */
		file_failed(c, c->store_problem);
		c->store_problem = NULL;
	}
	if (c->store_kind == STORE_FILE) {
		ops.load = file_load;
		ops.store = file_store;
		ops.drop = file_drop;
		ops.lock = file_lock;
		ops.unlock = file_unlock;
	} else if (c->store_kind == STORE_LUA) {
		ops.load = user_load;
		ops.store = user_save;
		ops.drop = user_drop;
		ops.lock = c->store_locks ? user_lock : NULL;
		ops.unlock = c->store_locks ? user_unlock : NULL;
	}
	return ops;
}

static const char *const source_names[] = {"memory", "exchange", "store", "file"};

/* Makes c->tok usable; emits the token event. */
int cl_get_token(client *c, ducky_err *err)
{
	ducky_token_conf conf = {c->refresh_margin, c->auth_backoff, c->max_per_hour, c->deadline};
	ducky_token_ops ops = cl_token_ops(c);
	ducky_token_info info;
	if (ducky_token_get(c->key, &conf, &ops, &c->tok, &info, err))
		return -1;
	if (info.source == DUCKY_SRC_MEMORY)
		c->st.token_cache_hits++;
	else if (info.source == DUCKY_SRC_STORE)
		c->st.token_store_hits++;
	if (c->fp_gen != c->tok.gen) { /* a short fingerprint: events never show a token */
		unsigned char md[EVP_MAX_MD_SIZE];
		unsigned int n = 0;
		c->fp[0] = '\0';
		if (EVP_Digest(c->tok.token, c->tok.len, md, &n, EVP_sha256(), NULL) && n >= 6)
			for (unsigned i = 0; i < 6; i++)
				snprintf(c->fp + 2 * i, 3, "%02x", md[i]);
		c->fp_gen = c->tok.gen;
	}
	c->source = source_names[info.source == DUCKY_SRC_STORE && c->store_kind == STORE_FILE
	                             ? 3
	                             : info.source];
	event ev = {c, "token", c->source, NULL, info.seconds_left, -1, 0, c->fp};
	if (info.stale) {
		event stale = {c, "stale_token", NULL, info.stale, info.seconds_left, -1, 0, c->fp};
		c->st.stale_tokens++;
		cl_send_event(c, &stale);
	}
	cl_send_event(c, &ev);
	return 0;
}
