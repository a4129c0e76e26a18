/* The store behind the token cache, as the engine's host callbacks: the
 * per-user file store (store.c) or the user's table { load, store, lock,
 * unlock }, whose Lua runs protected (an error is a store_error event, and
 * the call goes on from memory). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "client_store.h"
#include "exports.h"

/* ---- the file store ---------------------------------------------------- */

static void store_failed(client *c, const char *reason)
{
	if (reason)
		cl_emit(c, &(ducky_event){.event = "store_error",
		                          .source = c->store_kind == STORE_FILE ? "file" : "store",
		                          .reason = reason});
}

/* File store problems are static strings: each is reported once in a row, not
 * on every step that meets it again. */
static void file_failed(client *c, const char *reason)
{
	if (reason && reason != c->store_said)
		store_failed(c, c->store_said = reason);
}

static int file_load(void *ud, const char *key, double deadline, ducky_fresh *out)
{
	(void)deadline; /* the file store never blocks */
	client *c = ud;
	const char *reason;
	int found = ducky_store_load(&c->files, key, out, &reason);
	file_failed(c, reason);
	return found;
}

static void file_store(void *ud, const char *key, const ducky_fresh *tok, double deadline)
{
	(void)deadline;
	client *c = ud;
	const char *reason;
	ducky_store_save(&c->files, key, tok, &reason);
	file_failed(c, reason);
}

static void file_drop(void *ud, const char *key, double deadline)
{
	(void)deadline;
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
	return locked ? 1 : reason ? -1 : 0;
}

static void file_unlock(void *ud, const char *key, double deadline)
{
	(void)key;
	(void)deadline;
	ducky_store_unlock(&((client *)ud)->files);
}

static double file_backoff_get(void *ud, const char *key, ducky_kind *kind)
{
	char name[17] = "";
	double until = ducky_store_backoff_get(&((client *)ud)->files, key, name);
	ducky_kind k = ducky_kind_of(name);
	if (k != DUCKY_OK)
		*kind = k;
	return until;
}

static void file_backoff_set(void *ud, const char *key, double until, ducky_kind kind)
{
	ducky_store_backoff_set(&((client *)ud)->files, key, until, ducky_kind_name(kind));
}

/* ---- the user's store: { load, store, lock, unlock } -------------------- */

/* What a store's load() returned, on top: nil or false is "nothing stored";
 * an entry table fills out (*found = 1); anything else raises, so the caller
 * reports a store_error and goes on as if nothing was stored. */
static int read_entry(lua_State *L, ducky_fresh *out, int *found)
{
	cl_entry e;
	ducky_err bad;
	*found = 0;
	if (!lua_toboolean(L, -1))
		return 0;
	if (!lua_istable(L, -1))
		return luaL_error(L, "returned a %s, not nil or an entry table",
		                  luaL_typename(L, -1));
	ducky_err_init(&bad);
	if (cl_entry_read(L, -1, &e, &bad)) { /* the one entry check (exports.c) */
		lua_pushfstring(L, "returned an entry that is not usable: %s",
		                bad.message ? bad.message : "out of memory");
		ducky_err_clear(&bad);
		return lua_error(L);
	}
	if (!(out->token = ducky_strndup(e.token, e.len)))
		return luaL_error(L, "out of memory");
	out->expires_at = e.expires_at;
	out->lifetime = e.expires_in;
	*found = 1;
	return 0;
}

/* A call into the user's store table, run protected: fn(key [, arg]). */
typedef struct store_call {
	client *c;
	const char *fn, *key;
	ducky_fresh *fresh;       /* load: filled from the entry */
	const ducky_fresh *entry; /* store: the entry to pass */
	double deadline;          /* the time it may take, passed as its last argument */
	int result;
} store_call;

/* The entry a store's store() receives. */
static void push_entry(lua_State *L, const ducky_fresh *f)
{
	lua_createtable(L, 0, 4);
	lua_pushstring(L, f->token);
	lua_setfield(L, -2, "access_token");
	lua_pushliteral(L, "Bearer");
	lua_setfield(L, -2, "token_type");
	lua_pushnumber(L, f->expires_at);
	lua_setfield(L, -2, "expires_at");
	lua_pushnumber(L, f->lifetime);
	lua_setfield(L, -2, "expires_in");
}

static int call_store(lua_State *L)
{
	store_call *s = lua_touserdata(L, 1);
	lua_rawgeti(L, LUA_REGISTRYINDEX, s->c->ref_store);
	lua_getfield(L, -1, s->fn);
	if (lua_isnil(L, -1))
		return 0; /* lock and unlock are optional */
	lua_pushstring(L, s->key);
	if (s->entry)
		push_entry(L, s->entry);
	else if (strcmp(s->fn, "store") == 0)
		lua_pushnil(L); /* store(key, nil, timeout) drops */
	double left = s->deadline - ducky_now();
	lua_pushnumber(L, left > 0.001 ? left : 0.001); /* > 0: "try once" at the least */
	lua_call(L, lua_gettop(L) - 3, 1);              /* the arguments above ud, the table, fn */
	if (s->fresh)
		return read_entry(L, s->fresh, &s->result);
	s->result = lua_toboolean(L, -1);
	return 0;
}

static int user_store_call(store_call *s)
{
	lua_State *L = s->c->L;
	if (ducky_cpcall(L, call_store, s) != 0) {
		lua_pushfstring(L, "token_cache.%s: %s", s->fn,
		                lua_isstring(L, -1) ? lua_tostring(L, -1) : "error");
		store_failed(s->c, lua_tostring(L, -1));
		lua_pop(L, 2);
		if (s->fresh) {
			ducky_wipe_str(s->fresh->token);
			s->fresh->token = NULL;
		}
		return -1;
	}
	return s->result;
}

static int user_load(void *ud, const char *key, double deadline, ducky_fresh *out)
{
	return user_store_call(&(store_call){
	           .c = ud, .fn = "load", .key = key, .fresh = out, .deadline = deadline}) > 0;
}

static void user_save(void *ud, const char *key, const ducky_fresh *tok, double deadline)
{
	user_store_call(
	    &(store_call){.c = ud, .fn = "store", .key = key, .entry = tok, .deadline = deadline});
}

static void user_drop(void *ud, const char *key, double deadline)
{
	user_store_call(&(store_call){.c = ud, .fn = "store", .key = key, .deadline = deadline});
}

static int user_lock(void *ud, const char *key, double deadline)
{
	return user_store_call(
	    &(store_call){.c = ud, .fn = "lock", .key = key, .deadline = deadline});
}

static void user_unlock(void *ud, const char *key, double deadline)
{
	user_store_call(&(store_call){.c = ud, .fn = "unlock", .key = key, .deadline = deadline});
}

/* ---- the host's store callbacks --------------------------------------- */

ducky_host cl_store_host(client *c)
{
	ducky_host h = {.ud = c, .stored = DUCKY_FROM_STORE};
	if (c->store_problem) { /* the file store is off; say why once */
		file_failed(c, c->store_problem);
		c->store_problem = NULL;
	}
	if (c->store_kind == STORE_FILE) {
		h.load = file_load;
		h.store = file_store;
		h.drop = file_drop;
		h.lock = file_lock;
		h.unlock = file_unlock;
		h.backoff_get = file_backoff_get;
		h.backoff_set = file_backoff_set;
		h.stored = DUCKY_FROM_FILE;
	} else if (c->store_kind == STORE_LUA) {
		h.load = user_load;
		h.store = user_save;
		h.drop = user_drop;
		h.lock = c->store_locks ? user_lock : NULL;
		h.unlock = c->store_locks ? user_unlock : NULL;
	}
	return h;
}
