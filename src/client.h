/* The client object, and what every binding file needs of it: the guard, log
 * events, JSON, options read from tables. The binding files form a tree:
 *   ducky.c -> client_batch.c -> call.c -> client_token.c -> client.c
 *                                       -> headers.c, options.c, lua_error.c
 *   ducky.c -> client_new.c -> options.c
 * (each may use what is to its right, never what is to its left). */
#ifndef DUCKY_CLIENT_H
#define DUCKY_CLIENT_H

#include <curl/curl.h>

#include "compat.h"
#include "batch.h"
#include "credentials.h"
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

/* Where a token came from: one vocabulary for events, token() and stats(). */
typedef enum { SRC_MEMORY, SRC_EXCHANGE, SRC_FILE, SRC_STORE, SRC_COUNT } token_source;
extern const char *const cl_source_names[SRC_COUNT];

typedef struct stats {
	lua_Integer requests, token_fetches, token_cache_hits, token_store_hits, retries,
	    replays_401, stale_tokens, errors;
	lua_Integer tokens[SRC_COUNT]; /* tokens calls got, by where they came from */
} stats;

/* The numbers the options set. */
typedef struct limits {
	double timeout, connect_timeout, refresh_margin, auth_backoff, max_retry_after;
	int retries, max_per_hour;
} limits;

typedef enum { STORE_MEMORY, STORE_FILE, STORE_LUA } store_kind;

typedef struct client {
	int closed, busy;  /* busy: inside a call (cl_guarded) */
	int close_pending; /* close() was asked for inside a call: done when it ends */
	char *base_url, *client_id;
	limits lim;
	ducky_creds creds;
	ducky_http http;                 /* single calls */
	ducky_http_conf conf;            /* strings owned; the batch pool's handles use it too */
	ducky_pool pool;                 /* batch: easy handles kept between batches */
	struct curl_slist *api_headers;  /* the user's headers and the defaults */
	struct curl_slist *auth_headers; /* api_headers + the bearer token of auth_gen */
	unsigned long auth_gen;
	ducky_tokref tok;     /* this client's copy of its key's current token */
	char fp[13];          /* its fingerprint: 12 hex digits of its SHA-256 */
	unsigned long fp_gen; /* the token generation fp belongs to */
	store_kind store_kind;
	int store_locks;           /* the user's store has lock and unlock */
	ducky_file_store files;    /* STORE_FILE */
	const char *store_problem; /* why the file store could not be set up, said once */
	const char *store_said;    /* the last file store problem reported (static strings) */
	int ref_log, ref_store, ref_limits, ref_encode, ref_decode;
	ducky_buf url;            /* a single call's URL */
	struct curl_slist *extra; /* a single call's own headers; freed by the next or close */
	stats st;
} client;

/* One call under way: the state its Lua callbacks run in, and its limits. */
typedef struct cl_run {
	client *c;
	lua_State *L;
	double deadline; /* ducky_now() seconds */
	int retries;
} cl_run;

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
static inline cl_run cl_start(lua_State *L, client *c, double timeout, int retries)
{
	return (cl_run){.c = c, .L = L, .deadline = ducky_now() + timeout, .retries = retries};
}

/* A log event: strings NULL and numbers NULL when not part of it. */
typedef struct event {
	const char *event, *source, *reason, *fingerprint;
	const double *seconds_left, *wait;
	int attempt; /* 0: not part of it */
} event;
/* Calls the client's log function, protected; its errors are ignored. */
void cl_emit(const cl_run *r, const event *ev);
/* ducky_retry_fn for ducky_http_send and batch.c: counts and logs a retry. */
void cl_on_retry(void *run, const ducky_retry_event *ev);

/* Pushes cjson.decode(s) and returns 1, or pushes nothing and returns 0. */
int cl_json_decode(lua_State *L, const client *c, const char *s, size_t n);
/* Counts the error, pushes nil and the error object, clears err; returns 2. */
int cl_push_error(lua_State *L, client *c, ducky_err *err);

/* ---- the client's constructor (client_new.c) and methods, for ducky.c ---- */
int cl_new(lua_State *L);
int cl_close(lua_State *L);
int cl_tostring(lua_State *L);
int cl_stats(lua_State *L);
int cl_cache_key(lua_State *L);

#endif
