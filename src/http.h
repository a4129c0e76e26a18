/* libcurl transport: an easy handle per client (and per batch slot), one
 * attempt in pieces, the retry loop, and THE retry and idempotency policy. Plain C. */
#ifndef DUCKY_HTTP_H
#define DUCKY_HTTP_H

#include <stddef.h>

#include <curl/curl.h>

#include "err.h"
#include "util.h"

/* The most answer header bytes ducky reads (libcurl's own limit for one line). */
#define DUCKY_MAX_HEADERS 102400

typedef struct ducky_http_conf {
	const char *ca_file, *ca_path, *proxy;
	const char *client_cert, *client_key, *key_password; /* presented on every request */
	int insecure;
	size_t max_body;
	long http_version; /* CURL_HTTP_VERSION_… */
} ducky_http_conf;

/* An easy handle and its answer. libcurl keeps pointers into this record
 * (WRITEDATA, HEADERDATA, ERRORBUFFER): it must not move while the handle lives. */
typedef struct ducky_http {
	CURL *easy;
	size_t max_body;
	long status;
	ducky_buf body;
	ducky_buf head; /* "name\0value\0" pairs, names lower-case, in arrival order */
	size_t nheaders;
	int too_big, head_too_big, no_memory;
	unsigned rng;
	/* what the handle was last set up with, to skip setopts that change nothing */
	char *last_url;
	const struct curl_slist *last_headers;
	char last_method[32];
	int last_had_body, last_idempotent;
	char errbuf[CURL_ERROR_SIZE]; /* libcurl's own message buffer */
} ducky_http;

typedef struct ducky_req {
	const char *method;
	const char *url;
	struct curl_slist *headers;
	const char *body; /* NULL: no body */
	size_t body_len;
	int idempotent;         /* ducky_idempotent(method), or 1 for the token exchange */
	int carries_secret;     /* the token exchange: what libcurl frees meanwhile is wiped */
	double deadline;        /* ducky_now() seconds */
	double connect_timeout; /* seconds */
	int retries;
	double max_retry_after;
	/* optional, before each attempt of ducky_http_send: may set a new body (a
	 * fresh client assertion); -1 with err ends the send */
	int (*before)(void *ud, struct ducky_req *req, ducky_err *err);
	void *before_ud;
} ducky_req;

typedef struct ducky_retry_event {
	int attempt; /* the attempt about to start */
	char reason[32];
	double wait;
} ducky_retry_event;

typedef void (*ducky_retry_fn)(void *ud, const ducky_retry_event *ev);

/* ---- the policy (DESIGN.md, Retries): one definition each ---- */

/* GET, HEAD, PUT, DELETE, OPTIONS: retried after being sent. */
int ducky_idempotent(const char *method);
/* 408, 429, 500, 502, 503, 504. */
int ducky_retryable_status(long status);
/* Retry-After in seconds (delta-seconds or HTTP-date), or -1 if unreadable. */
double ducky_retry_after(const char *value, double now_wall);
/* 0 while req has time for attempt; else -1 with a timeout error. */
int ducky_time_left(const ducky_req *req, int attempt, double *remaining, ducky_err *err);

/* ---- the handle ---- */

/* Sets libcurl (and, first, OpenSSL's allocator) up once per process; ducky
 * calls it before anything else, from luaopen_ducky. */
int ducky_http_global_init(ducky_err *err);
/* While on, every block libcurl and OpenSSL free in this thread is wiped, not
 * only the small ones; returns the previous setting, to put back. */
int ducky_http_wipe_all(int on);

int ducky_http_open(ducky_http *h, const ducky_http_conf *conf, ducky_err *err);
void ducky_http_close(ducky_http *h);

/* Sends req, retrying as DESIGN.md says. 0 with h->status set for any HTTP
 * answer (the caller judges the status); -1 with err for a transport failure.
 * *attempts counts the tries made either way. */
int ducky_http_send(ducky_http *h, const ducky_req *req, ducky_retry_fn fn, void *ud, int *attempts,
                    ducky_err *err);

/* One attempt in pieces, for callers that drive libcurl themselves (batch.c):
 * setup, then perform (easy or multi), then outcome: 1 to retry after ev->wait
 * (ev filled), 0 for an HTTP answer in h->status, -1 with err for a failure. */
void ducky_http_setup(ducky_http *h, const ducky_req *req, double remaining);
int ducky_http_outcome(ducky_http *h, const ducky_req *req, CURLcode rc, int attempt,
                       ducky_retry_event *ev, ducky_err *err);

/* libcurl's header callback (ud: the ducky_http): collects one header line. */
size_t ducky_http_on_header(char *p, size_t size, size_t n, void *ud);

/* Walks a block of "name\0value\0" pairs: *pos NULL to start; 1 with name
 * and value set, 0 at the end. */
int ducky_headers_next(const char *block, size_t len, const char **pos, const char **name,
                       const char **value);
/* The same over the answer's headers (names lower-case, in arrival order). */
int ducky_http_next_header(const ducky_http *h, const char **pos, const char **name,
                           const char **value);
/* First value of a response header (name lower-case), or NULL. */
const char *ducky_http_header(const ducky_http *h, const char *name);

/* ---- request header lists ("Name: value" lines) ---- */

/* Appends line to *list; -1: no memory (the list is unchanged). */
int ducky_headers_append(struct curl_slist **list, const char *line);
/* Whether list holds a header named like line ("Name: v", "Name:" or "Name;"). */
int ducky_headers_has(const struct curl_slist *list, const char *line);
/* Appends line unless a header of that name is there (the caller's own wins); -1: no memory. */
int ducky_headers_add_default(struct curl_slist **list, const char *line);
/* extra + base, leaving out base headers that extra names; NULL: no memory (or both empty). */
struct curl_slist *ducky_headers_merge(const struct curl_slist *extra,
                                       const struct curl_slist *base);
/* Wipes every line (they may hold a token or a secret), then frees the list. */
void ducky_headers_free(struct curl_slist *list);

#endif
