/* The client object shared by the binding's files (ducky.c, client_token.c,
 * client_batch.c): the only code that knows Lua's stack for the client. */
#ifndef DUCKY_CLIENT_H
#define DUCKY_CLIENT_H

#include <curl/curl.h>

#include "compat.h"
#include "batch.h"
#include "error.h"
#include "http.h"
#include "store.h"
#include "token.h"

#define CLIENT_MT "ducky.client"
/* A registry table holding cjson's encode and decode, reachable from callbacks too. */
#define PRIVATE "ducky.private"

typedef struct stats {
	lua_Integer requests, token_fetches, token_cache_hits, token_store_hits, retries,
	    replays_401, stale_tokens, errors;
} stats;

typedef struct client {
	int closed;
	int busy;          /* inside a call (see cl_guarded) */
	int close_pending; /* close() was asked for inside a call: done when it ends */
	lua_State *L;      /* the state of the call under way, for callbacks */
	ducky_http http;
	char *base_url, *token_url, *client_id, *key;
	int has_credentials;
	ducky_buf token_body; /* holds the secret: wiped on close */
	char *secret;         /* to mask it in server text; wiped on close */
	size_t secret_len;
	struct curl_slist *token_headers; /* may hold the secret (Basic): wiped on close */
	struct curl_slist *api_headers;   /* the user's headers */
	struct curl_slist *auth_headers;  /* api_headers + the bearer token */
	struct curl_slist *extra;         /* the call's own headers; freed by the next call
	                                     or close, so a raise mid-build leaks nothing */
	unsigned long auth_gen;
	ducky_tokref tok;
	double timeout, connect_timeout, refresh_margin, auth_backoff, max_retry_after;
	int retries, max_per_hour;
	double deadline; /* of the call under way */
	int call_retries;
	int ref_log, ref_store, ref_limits;
	int ref_decode;       /* cjson.decode, reached without a table lookup */
	char fp[13];          /* the current token's fingerprint: 12 hex digits of its SHA-256 */
	unsigned long fp_gen; /* the token generation fp belongs to */
	const char *source;   /* where the current token came from */
	enum { STORE_MEMORY, STORE_FILE, STORE_LUA } store_kind;
	int store_locks; /* the user's store has lock and unlock */
	ducky_file_store files;
	const char *store_problem; /* why the file store could not be set up, said once */
	const char *store_said;    /* the last store problem reported (a static string) */
	stats st;
	ducky_buf url;        /* scratch */
	ducky_http_conf conf; /* for the batch pool's handles (strings owned) */
	ducky_pool pool;      /* batch: easy handles kept between batches */
	struct bitem *bitems; /* the last batch's items, freed by the next or close */
	size_t nbitems;
	int batch_refreshed; /* this batch refreshed the token after a 401 */
} client;

typedef struct event {
	client *c;
	const char *event, *source, *reason;
	double seconds_left, wait; /* < 0: not part of the event */
	int attempt;
	const char *fingerprint;
} event;

typedef struct call {
	const char *method, *url;
	struct curl_slist *extra; /* per-call headers, or NULL */
	const char *body;
	size_t body_len;
	int auth, retries;
	double timeout;
} call;

/* ducky.c */
client *cl_check(lua_State *L);
int cl_guarded(lua_State *L, lua_CFunction body);
/* The client inside a guarded body (checked by cl_guarded). */
static inline client *cl_self(lua_State *L)
{
	return lua_touserdata(L, 1);
}
void cl_wipe_slist(struct curl_slist *l);
void cl_free_str(char **p);
void cl_send_event(client *c, event *ev);
void cl_emit(client *c, const char *name, const char *source, const char *reason,
             double seconds_left, int attempt, double wait);
void cl_on_retry(void *ud, const ducky_retry_event *ev);
int cl_json_decode(lua_State *L, const client *c, const char *s, size_t n);
struct curl_slist *cl_auth_headers(client *c, ducky_err *err);
struct curl_slist *cl_merge_headers(struct curl_slist *extra, struct curl_slist *base);
int cl_push_error(lua_State *L, client *c, ducky_err *err);
int cl_push_answer(lua_State *L, client *c, const ducky_http *h, ducky_err *err, int attempts,
                   int replayed, const char *method, const char *url);
double cl_opt_number(lua_State *L, int t, const char *name, double dflt, double lo, double hi);
int cl_parse_call(lua_State *L, client *c, int mi, int pi, int oi, const char *what, call *k,
                  char method[32], struct curl_slist **extra, ducky_buf *url, ducky_err *err);

/* client_token.c: token.c's callbacks (the exchange, the stores) and the token a call uses */
ducky_token_ops cl_token_ops(client *c);
int cl_get_token(client *c, ducky_err *err);

/* client_batch.c */
int c_batch(lua_State *L);
void cl_free_batch(client *c);

#endif
