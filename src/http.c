/* libcurl transport (see http.h). */
#include "http.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/crypto.h>

/* ---- the policy ------------------------------------------------------- */

int ducky_idempotent(const char *m)
{
	static const char *const safe[] = {"GET", "HEAD", "PUT", "DELETE", "OPTIONS", NULL};
	for (const char *const *p = safe; *p; p++)
		if (strcmp(*p, m) == 0)
			return 1;
	return 0;
}

int ducky_retryable_status(long s)
{
	return s == 408 || s == 429 || s == 500 || s == 502 || s == 503 || s == 504;
}

int ducky_time_left(const ducky_req *req, int attempt, double *remaining, ducky_err *err)
{
	*remaining = req->deadline - ducky_now();
	if (*remaining > 0.001)
		return 0;
	err->attempts = attempt - 1;
	return ducky_fail(err, DUCKY_E_TIMEOUT, "%s %.300s: timed out before attempt %d",
	                  req->method, req->url, attempt);
}

/* ---- libcurl callbacks: plain C, never Lua ---------------------------- */

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
	ducky_http *h = ud;
	size_t len = size * n;
	if (len > h->max_body - h->body.len) {
		h->too_big = 1;
		return 0;
	}
	if (ducky_buf_add(&h->body, p, len)) {
		h->no_memory = 1;
		return 0;
	}
	return len;
}

size_t ducky_http_on_header(char *p, size_t size, size_t n, void *ud)
{
	ducky_http *h = ud;
	size_t len = size * n, i, vstart;
	char *colon;

	if (len >= 5 && memcmp(p, "HTTP/", 5) == 0) { /* a new response (1xx, replay) */
		h->head.len = 0;
		h->nheaders = 0;
		return len;
	}
	colon = memchr(p, ':', len);
	if (!colon || colon == p)
		return len; /* the blank line, or a line we cannot use */
	size_t nlen = (size_t)(colon - p);
	for (vstart = nlen + 1; vstart < len && (p[vstart] == ' ' || p[vstart] == '\t'); vstart++)
		;
	size_t vend = len;
	while (vend > vstart && (p[vend - 1] == '\r' || p[vend - 1] == '\n' || p[vend - 1] == ' ' ||
	                         p[vend - 1] == '\t'))
		vend--;
	size_t at = h->head.len;
	if (at + len > DUCKY_MAX_HEADERS) {
		h->head_too_big = 1;
		return 0;
	}
	if (ducky_buf_add(&h->head, p, nlen) || ducky_buf_add(&h->head, "", 1) ||
	    ducky_buf_add(&h->head, p + vstart, vend - vstart) || ducky_buf_add(&h->head, "", 1)) {
		h->no_memory = 1;
		return 0;
	}
	for (i = 0; i < nlen; i++) {
		char c = h->head.data[at + i];
		if (c >= 'A' && c <= 'Z')
			h->head.data[at + i] = (char)(c + 32);
	}
	h->nheaders++;
	/* a HEAD answer announces the length of a body it does not carry */
	if (nlen == 14 && memcmp(h->head.data + at, "content-length", 14) == 0 &&
	    strcmp(h->last_method, "HEAD") != 0) {
		const char *v = h->head.data + at + nlen + 1;
		char *end;
		errno = 0;
		unsigned long long cl = strtoull(v, &end, 10);
		if (end != v && (errno == ERANGE || cl > h->max_body)) {
			h->too_big = 1;
			return 0;
		}
	}
	return len;
}

int ducky_headers_next(const char *block, size_t len, const char **pos, const char **name,
                       const char **value)
{
	const char *p = *pos ? *pos : block;
	if (!p || p >= block + len)
		return 0;
	*name = p;
	*value = p + strlen(p) + 1;
	*pos = *value + strlen(*value) + 1;
	return 1;
}

int ducky_http_next_header(const ducky_http *h, const char **pos, const char **name,
                           const char **value)
{
	return ducky_headers_next(h->head.data, h->head.len, pos, name, value);
}

const char *ducky_http_header(const ducky_http *h, const char *name)
{
	const char *pos = NULL, *n, *v;
	while (ducky_http_next_header(h, &pos, &n, &v))
		if (strcmp(n, name) == 0)
			return v;
	return NULL;
}

/* ---- handle ----------------------------------------------------------- */

/* libcurl's and OpenSSL's memory is wiped when freed, so that no copy of a
 * secret or a token they made (a request buffer, a TLS record) outlives its
 * use. That takes knowing a block's size: glibc tells; elsewhere, and when the
 * host set libcurl or OpenSSL up before ducky, their frees stay plain. */
#ifdef __GLIBC__
#include <malloc.h>

/* Set while a request carries the secret (the token exchange) and while
 * handles close: then every block is wiped. Else only small ones are: they
 * are where a request's lines (the bearer token) go, and cheap to clear. */
static _Thread_local int wipe_all;
#define WIPE_SMALL 2048

static void wiping_free(void *p)
{
	if (p) {
		size_t n = malloc_usable_size(p);
		if (wipe_all || n <= WIPE_SMALL)
			ducky_wipe(p, n);
		free(p);
	}
}

static void *wiping_realloc(void *p, size_t n)
{
	size_t old = p ? malloc_usable_size(p) : 0;
	if (p && n <= old)
		return p;
	void *q = malloc(n ? n : 1);
	if (q && p) {
		memcpy(q, p, old);
		wiping_free(p);
	}
	return q;
}

int ducky_http_wipe_all(int on)
{
	int was = wipe_all;
	wipe_all = on;
	return was;
}

static void *plain_malloc(size_t n)
{
	return malloc(n);
}

static void *plain_calloc(size_t n, size_t m)
{
	return calloc(n, m);
}

static void *ssl_malloc(size_t n, const char *file, int line)
{
	(void)file, (void)line;
	return malloc(n);
}

static void *ssl_realloc(void *p, size_t n, const char *file, int line)
{
	(void)file, (void)line;
	return wiping_realloc(p, n);
}

static void ssl_free(void *p, const char *file, int line)
{
	(void)file, (void)line;
	wiping_free(p);
}
#endif

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc;

static void global_init(void)
{
#ifdef __GLIBC__
	CRYPTO_set_mem_functions(ssl_malloc, ssl_realloc, ssl_free); /* 0: too late, fine */
	global_rc = curl_global_init_mem(CURL_GLOBAL_DEFAULT, plain_malloc, wiping_free,
	                                 wiping_realloc, ducky_strdup, plain_calloc);
#else
	global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
#endif
}

#ifndef __GLIBC__
int ducky_http_wipe_all(int on)
{
	(void)on;
	return 0;
}
#endif

int ducky_http_global_init(ducky_err *err)
{
	pthread_once(&global_once, global_init);
	if (global_rc != CURLE_OK)
		return ducky_fail(err, DUCKY_E_CONFIG, "curl_global_init failed: %s",
		                  curl_easy_strerror(global_rc));
	return 0;
}

/* Whether the environment names a proxy libcurl would use. When none does,
 * the handle says "no proxy" once instead of libcurl reading the environment
 * on every request. */
static int env_proxy(void)
{
	static const char *const names[] = {"http_proxy", "https_proxy", "HTTPS_PROXY",
	                                    "all_proxy",  "ALL_PROXY",   NULL};
	for (const char *const *n = names; *n; n++)
		if (getenv(*n) && *getenv(*n))
			return 1;
	return 0;
}

int ducky_http_open(ducky_http *h, const ducky_http_conf *conf, ducky_err *err)
{
	CURL *e;
	if (ducky_http_global_init(err))
		return -1;
	if (!(h->easy = e = curl_easy_init()))
		return ducky_fail(err, DUCKY_E_CONFIG, "curl_easy_init failed");
	h->max_body = conf->max_body;
	h->last_method[0] = '\0';
	h->last_url = NULL;
	h->last_headers = NULL;
	h->rng = (unsigned)((uintptr_t)h ^ (uintptr_t)(ducky_now() * 1e9)) | 1u;
	h->errbuf[0] = '\0';
	if (curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) ||
	    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, h->errbuf) ||
	    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body) ||
	    curl_easy_setopt(e, CURLOPT_WRITEDATA, h) ||
	    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, ducky_http_on_header) ||
	    curl_easy_setopt(e, CURLOPT_HEADERDATA, h) ||
	    /* decoding on; the header itself comes from the caller's list (cheaper than
	     * libcurl formatting it on every request) */
	    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "gzip, deflate") ||
	    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https") ||
	    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L) ||
	    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, conf->http_version) ||
	    curl_easy_setopt(e, CURLOPT_PIPEWAIT, 1L) ||
	    curl_easy_setopt(e, CURLOPT_PROXY,
	                     conf->proxy   ? conf->proxy
	                     : env_proxy() ? NULL
	                                   : "") ||
	    /* ca_path alone: that directory, not libcurl's built-in bundle besides */
	    ((conf->ca_file || conf->ca_path) &&
	     curl_easy_setopt(e, CURLOPT_CAINFO, conf->ca_file)) ||
	    (conf->ca_path && curl_easy_setopt(e, CURLOPT_CAPATH, conf->ca_path)) ||
	    (conf->client_cert && curl_easy_setopt(e, CURLOPT_SSLCERT, conf->client_cert)) ||
	    (conf->client_key && curl_easy_setopt(e, CURLOPT_SSLKEY, conf->client_key)) ||
	    (conf->key_password && curl_easy_setopt(e, CURLOPT_KEYPASSWD, conf->key_password)) ||
	    (conf->insecure && (curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L) ||
	                        curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L))))
		return ducky_fail(err, DUCKY_E_CONFIG, "libcurl refused an option");
	return 0;
}

void ducky_http_close(ducky_http *h)
{
	int was = ducky_http_wipe_all(1); /* the handle's buffers and connections */
	if (h->easy)
		curl_easy_cleanup(h->easy);
	ducky_http_wipe_all(was);
	h->easy = NULL;
	free(h->last_url);
	h->last_url = NULL;
	ducky_buf_free(&h->body);
	ducky_buf_free(&h->head);
}

/* ---- one attempt ------------------------------------------------------ */

/* Sets h up for one attempt of req with `remaining` seconds left. */
void ducky_http_setup(ducky_http *h, const ducky_req *req, double remaining)
{
	CURL *e = h->easy;
	long total_ms = (long)ceil(remaining * 1000.0);
	long connect_ms = (long)ceil(req->connect_timeout * 1000.0);
	int has_body = req->body != NULL;

	h->body.len = h->head.len = h->nheaders = 0;
	h->too_big = h->head_too_big = h->no_memory = 0;
	h->status = 0;
	h->errbuf[0] = '\0';
	if (connect_ms <= 0 || connect_ms > total_ms)
		connect_ms = total_ms;
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, total_ms);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, connect_ms);
	/* the rest only when it differs from the last request on this handle */
	if (!h->last_url || strcmp(h->last_url, req->url) != 0) {
		free(h->last_url);
		h->last_url = ducky_strdup(req->url); /* NULL: set it again next time */
		curl_easy_setopt(e, CURLOPT_URL, req->url);
	}
	if (req->headers != h->last_headers) {
		h->last_headers = req->headers;
		curl_easy_setopt(e, CURLOPT_HTTPHEADER, req->headers);
	}
	if (has_body) {
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, req->body);
	}
	if (has_body || h->last_had_body || strcmp(h->last_method, req->method) != 0 ||
	    h->last_idempotent != req->idempotent) {
		if (!has_body)
			curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
		curl_easy_setopt(e, CURLOPT_NOBODY, strcmp(req->method, "HEAD") == 0 ? 1L : 0L);
		int plain = strcmp(req->method, has_body ? "POST" : "GET") == 0 ||
		            strcmp(req->method, "HEAD") == 0;
		curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, plain ? NULL : req->method);
		/* libcurl silently sends a request again when a reused connection closes
		 * before any answer; that must not happen to a request that is not idempotent */
		curl_easy_setopt(e, CURLOPT_FRESH_CONNECT, req->idempotent ? 0L : 1L);
		snprintf(h->last_method, sizeof h->last_method, "%s", req->method);
		h->last_had_body = has_body;
		h->last_idempotent = req->idempotent;
	}
}

static ducky_kind kind_of(const ducky_http *h, CURLcode rc)
{
	switch (rc) {
	case CURLE_OPERATION_TIMEDOUT:
		return DUCKY_E_TIMEOUT;
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_CRL_BADFILE:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
	case CURLE_SSL_INVALIDCERTSTATUS:
	case CURLE_SSL_ENGINE_NOTFOUND:
	case CURLE_SSL_ENGINE_SETFAILED:
	case CURLE_SSL_ENGINE_INITFAILED:
	case CURLE_USE_SSL_FAILED:
		return DUCKY_E_TLS;
	case CURLE_BAD_CONTENT_ENCODING:
		return DUCKY_E_DECODE;
	case CURLE_URL_MALFORMAT:
	case CURLE_UNSUPPORTED_PROTOCOL:
		return DUCKY_E_CONFIG;
	case CURLE_OUT_OF_MEMORY:
		return DUCKY_E_LIMIT;
	case CURLE_WRITE_ERROR:
		if (h->too_big || h->head_too_big || h->no_memory)
			return DUCKY_E_LIMIT;
		return DUCKY_E_NETWORK;
	default:
		return DUCKY_E_NETWORK;
	}
}

/* Nothing reached the server: safe to retry any method. */
static int nothing_sent(const ducky_http *h, CURLcode rc)
{
	curl_off_t connected = 0;
	switch (rc) {
	case CURLE_COULDNT_CONNECT:
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
		return 1;
	case CURLE_OPERATION_TIMEDOUT:
		curl_easy_getinfo(h->easy, CURLINFO_CONNECT_TIME_T, &connected);
		return connected == 0;
	default:
		return 0;
	}
}

#define STR_(x) #x
#define STR(x)  STR_(x)

/* What went wrong, in words: ours when we stopped the transfer. */
static const char *failure_text(const ducky_http *h, CURLcode rc)
{
	if (h->too_big)
		return "response larger than max_body";
	if (h->head_too_big)
		return "answer headers larger than " STR(DUCKY_MAX_HEADERS) " bytes";
	if (rc == CURLE_OUT_OF_MEMORY && !h->body.len) /* libcurl's limit for one line */
		return "an answer header larger than " STR(
		    DUCKY_MAX_HEADERS) " bytes, or out of memory";
	return h->errbuf[0] ? h->errbuf : curl_easy_strerror(rc);
}

static int transient(CURLcode rc)
{
	return rc == CURLE_SEND_ERROR || rc == CURLE_RECV_ERROR || rc == CURLE_GOT_NOTHING ||
	       rc == CURLE_PARTIAL_FILE || rc == CURLE_HTTP2 || rc == CURLE_HTTP2_STREAM;
}

double ducky_retry_after(const char *v, double now_wall)
{
	const char *p;
	if (!v || !*v)
		return -1;
	for (p = v; *p >= '0' && *p <= '9'; p++)
		;
	if (*p == '\0') { /* delta-seconds; beyond a billion is as good as forever */
		double s = strtod(v, NULL);
		return s < 1e9 ? s : 1e9;
	}
	time_t t = curl_getdate(v, NULL);
	if (t == (time_t)-1)
		return -1;
	double d = (double)t - now_wall;
	return d > 0 ? d : 0;
}

static double jitter(ducky_http *h, int attempt)
{
	double cap = 0.25 * (double)(1u << (attempt < 6 ? attempt : 6)); /* 0.5, 1, 2, … 16 s */
	h->rng ^= h->rng << 13;
	h->rng ^= h->rng >> 17;
	h->rng ^= h->rng << 5;
	return cap * ((double)h->rng / (double)UINT_MAX);
}

int ducky_http_outcome(ducky_http *h, const ducky_req *req, CURLcode rc, int attempt,
                       ducky_retry_event *ev, ducky_err *err)
{
	int retry;
	double wait = -1;
	if (rc == CURLE_OK)
		curl_easy_getinfo(h->easy, CURLINFO_RESPONSE_CODE, &h->status);
	if (rc != CURLE_OK) {
		retry = nothing_sent(h, rc) || (req->idempotent && transient(rc));
		snprintf(ev->reason, sizeof ev->reason, "curl %d", (int)rc);
	} else {
		retry = req->idempotent && ducky_retryable_status(h->status);
		snprintf(ev->reason, sizeof ev->reason, "%ld", h->status);
		if (retry)
			wait = ducky_retry_after(ducky_http_header(h, "retry-after"), ducky_wall());
	}
	if (retry && wait > req->max_retry_after) {
		retry = 0; /* the server asks for longer than we wait */
	} else if (retry && attempt <= req->retries) {
		if (wait < 0)
			wait = jitter(h, attempt);
		if (ducky_now() + wait < req->deadline) {
			ev->attempt = attempt + 1;
			ev->wait = wait;
			return 1;
		}
	}
	if (rc == CURLE_OK)
		return 0;
	err->attempts = attempt;
	err->curl_code = (int)rc;
	err->retryable =
	    retry || nothing_sent(h, rc) || transient(rc) || rc == CURLE_OPERATION_TIMEDOUT;
	return ducky_fail(err, kind_of(h, rc), "%s %.300s: %s", req->method, req->url,
	                  failure_text(h, rc));
}

static int send_attempts(ducky_http *h, ducky_req *req, ducky_retry_fn fn, void *ud, int *attempts,
                         ducky_err *err)
{
	*attempts = 0;
	for (int attempt = 1;; attempt++) {
		double remaining;
		ducky_retry_event ev;
		if (ducky_time_left(req, attempt, &remaining, err) ||
		    (req->before && req->before(req->before_ud, req, err)))
			return -1;
		*attempts = attempt;
		ducky_http_setup(h, req, remaining);
		int rc = ducky_http_outcome(h, req, curl_easy_perform(h->easy), attempt, &ev, err);
		if (rc <= 0)
			return rc;
		if (fn)
			fn(ud, &ev);
		ducky_sleep(ev.wait);
	}
}

int ducky_http_send(ducky_http *h, const ducky_req *given, ducky_retry_fn fn, void *ud,
                    int *attempts, ducky_err *err)
{
	ducky_req req = *given;
	int was = req.carries_secret ? ducky_http_wipe_all(1) : 0;
	int rc = send_attempts(h, &req, fn, ud, attempts, err);
	if (req.carries_secret)
		ducky_http_wipe_all(was);
	return rc;
}

/* ---- request header lists --------------------------------------------- */

int ducky_headers_has(const struct curl_slist *list, const char *line)
{
	size_t nl = strcspn(line, ":;");
	for (; list; list = list->next)
		if (strncasecmp(list->data, line, nl) == 0 && strcspn(list->data, ":;") == nl)
			return 1;
	return 0;
}

int ducky_headers_append(struct curl_slist **list, const char *line)
{
	struct curl_slist *n = curl_slist_append(*list, line);
	if (!n)
		return -1;
	*list = n;
	return 0;
}

int ducky_headers_add_default(struct curl_slist **list, const char *line)
{
	return ducky_headers_has(*list, line) ? 0 : ducky_headers_append(list, line);
}

struct curl_slist *ducky_headers_merge(const struct curl_slist *extra,
                                       const struct curl_slist *base)
{
	struct curl_slist *l = NULL;
	for (int pass = 0; pass < 2; pass++)
		for (const struct curl_slist *p = pass ? base : extra; p; p = p->next) {
			if (pass && ducky_headers_has(extra, p->data))
				continue;
			if (ducky_headers_append(&l, p->data)) {
				ducky_headers_free(l);
				return NULL;
			}
		}
	return l;
}

void ducky_headers_free(struct curl_slist *list)
{
	for (struct curl_slist *p = list; p; p = p->next)
		ducky_wipe(p->data, strlen(p->data));
	curl_slist_free_all(list);
}
