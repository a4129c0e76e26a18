/* The client object, and what every binding file needs of it: the guard, log
 * events, JSON, the engine. The binding files form a tree:
 *   ducky.c -> client_batch.c -> call.c -> answer.c -> client.c
 *           -> client_ops.c   -> call.c
 *           -> client_token.c -> answer.c, client_store.c -> client.c
 *           -> client_new.c   -> client_store.c, options.c
 *   client.c -> lua_headers.c, options.c, lua_error.c
 * (each may use what is to its right, never what is to its left). */
#ifndef DUCKY_CLIENT_H
#define DUCKY_CLIENT_H

#include <curl/curl.h>

#include "compat.h"
#include "credentials.h"
#include "engine.h"
#include "http.h"
#include "options.h"
#include "store.h"
#include "token.h"

#define CLIENT_MT "ducky.client"

#define DEFAULT_BASE_URL  "https://api.ducky.eco/v3"
#define DEFAULT_TOKEN_URL "https://ducky-prod.eu.auth0.com/oauth/token"
#define DEFAULT_AUDIENCE  "ducky-api-prod"
/* A registry table holding cjson's encode and decode (luaopen_ducky). */
#define CL_JSON "ducky.json"

/* The numbers the options set. */
typedef struct limits {
	double timeout, connect_timeout, refresh_margin, auth_backoff, max_retry_after;
	int retries, max_per_hour;
} limits;

typedef enum { STORE_MEMORY, STORE_FILE, STORE_LUA } store_kind;

/* A Lua userdata: it never moves, so the engine borrows its fields. Owns
 * every pointer in it (freed, and wiped where they may hold a secret or a
 * token, by close). */
typedef struct client {
	int closed, busy;  /* busy: inside a call (cl_guarded) */
	int close_pending; /* close() was asked for inside a call: done when it ends */
	lua_State *L;      /* the state of the call under way: where callbacks run */
	char *base_url, *client_id;
	limits lim;
	ducky_creds creds;
	ducky_http_conf conf; /* its strings are the client's */
	char *ca_file, *ca_path, *proxy, *no_proxy, *key_password;
	struct curl_slist *api_headers; /* the user's headers and the defaults */
	ducky_engine *eng;              /* made on first use */
	ducky_tokref tok;               /* this client's copy of its key's current token */
	store_kind store_kind;
	int store_locks;           /* the user's store has lock and unlock */
	ducky_file_store files;    /* STORE_FILE */
	const char *store_problem; /* why the file store could not be set up, said once */
	const char *store_said;    /* the last file store problem reported (static strings) */
	int ref_log, ref_store, ref_limits;
	ducky_buf url;            /* a single call's URL */
	struct curl_slist *extra; /* a single call's own headers; freed by the next or close */
	ducky_stats st;
} client;

/* ---- client.c ---- */

/* The client at 1, or a raise naming client:<method>; cl_check also raises
 * when it is closed or busy. */
client *cl_client(lua_State *L, const char *method);
client *cl_check(lua_State *L, const char *method);
/* Runs body with the client at 1 marked busy (see client.c); errors are
 * "client:<method>: …". */
int cl_guarded(lua_State *L, lua_CFunction body, const char *method);
/* The client inside a guarded body. */
static inline client *cl_self(lua_State *L)
{
	return lua_touserdata(L, 1);
}
/* Calls the client's log function, protected; its errors are ignored. */
void cl_emit(client *c, const ducky_event *ev);

/* Pushes cjson.decode(s) and returns 1, or pushes nothing and returns 0. */
int cl_json_decode(lua_State *L, const char *s, size_t n);
/* The same for the string on top of the stack, which it replaces (or pops, and 0). */
int cl_json_decode_top(lua_State *L);
/* Pushes nil and the error object, clears err; returns 2. cl_push_error also
 * counts it (an error no operation counted). */
int cl_push_err(lua_State *L, ducky_err *err);
int cl_push_error(lua_State *L, client *c, ducky_err *err);

/* ---- the client's constructor (client_new.c) and methods, for ducky.c ---- */
int cl_new(lua_State *L);
int cl_close(lua_State *L);
int cl_gc(lua_State *L);
int cl_tostring(lua_State *L);
int cl_stats(lua_State *L);
int cl_cache_key(lua_State *L);

#endif
