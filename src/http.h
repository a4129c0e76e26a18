/* libcurl transport: one reused easy handle per client, retries, timeouts, TLS. */
#ifndef DUCKY_HTTP_H
#define DUCKY_HTTP_H

#include <stddef.h>

#include <curl/curl.h>

#include "error.h"

typedef struct ducky_buf {
	char *data;
	size_t len, cap;
} ducky_buf;

int ducky_buf_add(ducky_buf *b, const void *p, size_t n); /* 0, or -1 out of memory */
int ducky_buf_adds(ducky_buf *b, const char *s);
void ducky_buf_free(ducky_buf *b); /* wipes before freeing */

typedef struct ducky_http_conf {
	const char *ca_file, *ca_path, *proxy;
	int insecure;
	size_t max_body;
	long http_version; /* CURL_HTTP_VERSION_… */
} ducky_http_conf;

typedef struct ducky_http {
	CURL *easy;
	size_t max_body;
	long status;
	ducky_buf body;
	ducky_buf head; /* "name\0value\0" pairs, names lower-case, in arrival order */
	size_t nheaders;
	int too_big, no_memory;
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
	int idempotent;
	double deadline;        /* ducky_now() seconds */
	double connect_timeout; /* seconds */
	int retries;
	double max_retry_after;
} ducky_req;

typedef struct ducky_retry_event {
	int attempt; /* the attempt about to start */
	char reason[32];
	double wait;
} ducky_retry_event;

typedef void (*ducky_retry_fn)(void *ud, const ducky_retry_event *ev);

/* Clock that keeps counting through suspend and ignores wall-clock jumps. */
double ducky_now(void);
double ducky_wall(void);

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

/* Walks the answer's headers in arrival order: *pos NULL to start; 1 with
 * name (lower-case) and value set, 0 at the end. */
int ducky_http_next_header(const ducky_http *h, const char **pos, const char **name,
                           const char **value);

/* First value of a response header (name lower-case), or NULL. */
const char *ducky_http_header(const ducky_http *h, const char *name);

/* Retry-After in seconds (delta-seconds or HTTP-date), or -1 if unreadable. */
double ducky_retry_after(const char *value, double now_wall);

/* URL helpers on libcurl's URL parser. */
int ducky_url_check(const char *url);                    /* 1: absolute http(s) URL with a host */
int ducky_url_same_origin(const char *a, const char *b); /* same scheme, host and port */
/* u = base + "/" + path (leading slashes dropped), or path itself when it is an
 * absolute URL on base's origin; anything else is a config error. */
int ducky_url_join(ducky_buf *u, const char *base, const char *path, size_t plen, ducky_err *err);
/* Appends s percent-encoded (everything but unreserved characters). */
int ducky_buf_add_escaped(ducky_buf *b, const char *s, size_t len);

#endif
