/* The non-blocking engine: one per client, made on first use. libcurl's
 * multi_socket API behind one descriptor (epoll on Linux, holding libcurl's
 * sockets, an eventfd the token cache writes to, and a timerfd armed for
 * ducky_engine_timeout), operations that never block (a token, a send, retries
 * after a back-off, a replay after a 401), and the token fetch that one of
 * them leads (fetch.c). A host polls ducky_engine_fd and calls
 * ducky_engine_step; a blocking call is a start, then wait and step until done.
 * Plain C: the host (the binding) supplies its Lua as callbacks. */
#ifndef DUCKY_ENGINE_H
#define DUCKY_ENGINE_H

#include "credentials.h"
#include "http.h"
#include "token.h"

typedef struct ducky_engine ducky_engine;
typedef struct ducky_op ducky_op;

/* Where a token came from: one vocabulary for events, token() and stats(). */
typedef enum {
	DUCKY_FROM_MEMORY,
	DUCKY_FROM_EXCHANGE,
	DUCKY_FROM_FILE,
	DUCKY_FROM_STORE,
	DUCKY_FROM_COUNT
} ducky_from;
extern const char *const ducky_from_names[DUCKY_FROM_COUNT];

/* A log event: strings and numbers NULL when not part of it. Borrowed for the
 * callback's duration. */
typedef struct ducky_event {
	const char *event, *source, *reason, *fingerprint;
	const double *seconds_left, *wait;
	int attempt; /* 0: not part of it */
} ducky_event;

/* What a client counts (client:stats()). */
typedef struct ducky_stats {
	long long requests, token_fetches, token_cache_hits, token_store_hits, retries, replays_401,
	    stale_tokens, errors;
	long long tokens[DUCKY_FROM_COUNT]; /* tokens calls got, by where they came from */
} ducky_stats;

/* What the engine asks of its host. Each may run Lua; none may call the engine
 * back (the binding marks its client busy while the engine runs). */
typedef struct ducky_host {
	void *ud;
	void (*event)(void *ud, const ducky_event *ev); /* NULL: nobody listens */
	/* The token endpoint's answer: 0 with out filled, or -1 with err. */
	int (*read_token)(void *ud, const ducky_answer *a, ducky_fresh *out, ducky_err *err);
	/* The shared store (load NULL: none; lock NULL: no lock). Each is given a
	 * deadline (ducky_now() seconds) to keep. load: 1 with out filled, or 0.
	 * lock tries once: 1 when this caller may exchange, 0 if another holds it,
	 * -1 when it cannot be taken (an error: the exchange goes ahead at once). */
	int (*load)(void *ud, const char *key, double deadline, ducky_fresh *out);
	void (*store)(void *ud, const char *key, const ducky_fresh *tok, double deadline);
	void (*drop)(void *ud, const char *key, double deadline);
	int (*lock)(void *ud, const char *key, double deadline);
	void (*unlock)(void *ud, const char *key, double deadline);
	ducky_from stored; /* what a token from the store is: DUCKY_FROM_FILE or _STORE */
	/* The back-off shared with other processes (optional): get gives the wall
	 * clock before which nobody exchanges (0: none) and the failure's kind; set
	 * records it (until 0: clears) and is called while the lock is held. */
	double (*backoff_get)(void *ud, const char *key, ducky_kind *kind);
	void (*backoff_set)(void *ud, const char *key, double until, ducky_kind kind);
} ducky_host;

/* What an engine is made with. Borrowed: the client owns all of it and keeps
 * it alive and in place as long as the engine. */
typedef struct ducky_engine_conf {
	const ducky_http_conf *http;
	ducky_creds *creds;                   /* the token request; creds->key is the cache key */
	const struct curl_slist *api_headers; /* every API request's */
	ducky_token_conf token;
	double connect_timeout, max_retry_after;
	double timeout;    /* a token exchange's own time (the client's timeout): a
	                    * call with less does not cut it short for the others */
	ducky_tokref *tok; /* the client's copy of its token */
	ducky_stats *st;
	ducky_host host;
} ducky_engine_conf;

/* One call's arguments, checked by the binding. Borrowed for ducky_op_start,
 * which copies what it keeps. */
typedef struct ducky_call {
	const char *method, *url;
	const struct curl_slist *extra; /* the call's own headers, or NULL */
	const char *body;               /* NULL: none */
	size_t body_len;
	int auth, retries;
	int token_only;  /* token(): the token, no request */
	double timeout;  /* seconds, from the start */
	double deadline; /* ducky_now() seconds it must end by besides, 0: none (a batch's) */
} ducky_call;

/* An operation's outcome, once done. Owned by the operation. */
typedef struct ducky_result {
	ducky_err err;    /* kind DUCKY_OK: an HTTP answer (any status), or the token */
	ducky_answer ans; /* the answer */
	int attempts, replayed;
	const char *method, *url; /* for messages */
	/* token(): the token, when it expires, where it came from, its fingerprint */
	char *token;
	size_t token_len;
	double expires; /* ducky_now() seconds */
	ducky_from from;
	char fingerprint[13];
} ducky_result;

/* ---- the engine ---- */

ducky_engine *ducky_engine_new(const ducky_engine_conf *conf, ducky_err *err);
/* Ends every operation (cancelled), abandons a fetch under way, frees the
 * engine; operations the host still holds stay readable until released. */
void ducky_engine_free(ducky_engine *e);

/* The one descriptor a host polls for reading, or -1 where there is none (not
 * Linux): it is readable when ducky_engine_step has something to do, and stays
 * the same for the engine's life. */
int ducky_engine_fd(ducky_engine *e);
/* Seconds until ducky_engine_step is due (0: now), or < 0 when idle. */
double ducky_engine_timeout(ducky_engine *e);
/* Does what is ready or due and advances every operation; never blocks.
 * Returns the number of operations that ended. */
int ducky_engine_step(ducky_engine *e);
/* Blocks until the engine has something to do, at most max seconds. */
void ducky_engine_wait(ducky_engine *e, double max);
/* Whether operations are under way. */
int ducky_engine_busy(const ducky_engine *e);

/* Drops the key's token from memory and the store (invalidate()); with
 * only_token, only that very token (after a 401): 1 dropped, 0 nothing, -1 paced. */
int ducky_engine_drop_token(ducky_engine *e, const char *only_token, double deadline);

/* ---- operations ---- */

/* Starts a call; never blocks. The host holds the operation until it releases it. */
ducky_op *ducky_op_start(ducky_engine *e, const ducky_call *k, ducky_err *err);
int ducky_op_done(const ducky_op *op);
/* Ends it at once (err.kind "cancelled") unless it is done. */
void ducky_op_cancel(ducky_op *op);
/* Its outcome: valid once done, until released. */
const ducky_result *ducky_op_result(const ducky_op *op);
/* The host lets go: freed now if done or detached, else cancelled by the next step. */
void ducky_op_release(ducky_op *op);

#endif
