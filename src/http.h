/* libcurl transport: an easy handle and its answer, one attempt in pieces
 * (setup, then the engine performs it, then outcome), and THE retry and
 * idempotency policy. Plain C. */
#ifndef DUCKY_HTTP_H
#define DUCKY_HTTP_H

#include <stddef.h>

#include <curl/curl.h>

#include "err.h"
#include "hlist.h"
#include "util.h"

/* The most answer header bytes ducky reads (libcurl's own limit for one line). */
#define DUCKY_MAX_HEADERS 102400

/* How every handle of a client is set up. Borrowed: the strings belong to the
 * client and outlive its handles. */
typedef struct ducky_http_conf {
	const char *ca_file, *ca_path, *proxy;
	const char *no_proxy; /* NULL: libcurl's own (the environment's no_proxy) */
	/* a client certificate (PEM) presented on every request, and its key when not in
	 * the certificate's text (NULL or empty: none) */
	const ducky_buf *client_cert, *client_key;
	const char *key_password;
	int insecure;
	size_t max_body;
	long http_version; /* CURL_HTTP_VERSION_… */
} ducky_http_conf;

/* An answer: owned buffers, moved (swapped) from a handle to whoever keeps it. */
typedef struct ducky_answer {
	long status;
	ducky_buf body;
	ducky_buf head; /* "name\0value\0" pairs, names lower-case, in arrival order */
	size_t nheaders;
} ducky_answer;

/* An easy handle and the answer it is reading. libcurl keeps pointers into
 * this record (WRITEDATA, HEADERDATA, ERRORBUFFER, PRIVATE): it is allocated
 * once and never moves while the handle lives. Owns easy, ans and last_url. */
typedef struct ducky_http {
	CURL *easy;
	size_t max_body;
	long http_version;
	ducky_answer ans;
	int too_big, head_too_big, no_memory;
	unsigned rng;
	void *owner; /* the transfer using it, or NULL */
	/* what the handle was last set up with, to skip setopts that change nothing */
	char *last_url;
	const struct curl_slist *last_headers;
	char last_method[32];
	int last_had_body, last_idempotent;
	char errbuf[CURL_ERROR_SIZE]; /* libcurl's own message buffer */
} ducky_http;

/* One request. Borrowed: every pointer must outlive the attempts made with it. */
typedef struct ducky_req {
	const char *method;
	const char *url;
	const struct curl_slist *headers;
	const char *body; /* NULL: no body */
	size_t body_len;
	int idempotent;         /* ducky_idempotent(method), or 1 for the token exchange */
	int carries_secret;     /* the token exchange: what libcurl frees meanwhile is wiped */
	double deadline;        /* ducky_now() seconds */
	double connect_timeout; /* seconds */
	int retries;
	int replays; /* attempts made again that were no retry (a 401 replayed): outside retries */
	double max_retry_after;
} ducky_req;

typedef struct ducky_retry_event {
	int attempt; /* the attempt about to start */
	char reason[32];
	double wait;
} ducky_retry_event;

/* ---- the policy (DESIGN.md, Retries): one definition each ---- */

/* GET, HEAD, PUT, DELETE, OPTIONS: retried after being sent. */
int ducky_idempotent(const char *method);
/* 408, 429, 500, 502, 503, 504. */
int ducky_retryable_status(long status);
/* THE meaning of err.retryable: the same request may succeed if made again
 * later — a retryable status (status > 0), or (status 0) a connection that
 * could not be made or broke, or a timeout. Whether it is safe to send it
 * again (its method) is the caller's to judge. */
int ducky_retryable(long status, int curl_code);
/* Retry-After in seconds (delta-seconds or HTTP-date), or -1 if unreadable. */
double ducky_retry_after(const char *value, double now_wall);
/* 0 while req has time for attempt; else -1 with a timeout error. */
int ducky_time_left(const ducky_req *req, int attempt, double *remaining, ducky_err *err);

/* ---- the handle ---- */

int ducky_http_open(ducky_http *h, const ducky_http_conf *conf, ducky_err *err);
void ducky_http_close(ducky_http *h);

/* Sets h up for one attempt of req with `remaining` seconds left. */
void ducky_http_setup(ducky_http *h, const ducky_req *req, double remaining);
/* After the attempt ended with rc: 1 to retry after ev->wait (ev filled), 0
 * for an HTTP answer in h->ans (the caller judges its status), -1 with err. */
int ducky_http_outcome(ducky_http *h, const ducky_req *req, CURLcode rc, int attempt,
                       ducky_retry_event *ev, ducky_err *err);

/* libcurl's header callback (ud: the ducky_http): collects one header line. */
size_t ducky_http_on_header(char *p, size_t size, size_t n, void *ud);

/* The answer's headers (names lower-case, in arrival order). */
int ducky_answer_next_header(const ducky_answer *a, const char **pos, const char **name,
                             const char **value);
/* First value of an answer header (name lower-case), or NULL. */
const char *ducky_answer_header(const ducky_answer *a, const char *name);
void ducky_answer_free(ducky_answer *a);

#endif
