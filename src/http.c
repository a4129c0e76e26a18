/* libcurl transport (see http.h). */
#include "http.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "alloc.h"

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

int ducky_retryable(long status, int curl_code)
{
	if (status > 0)
		return ducky_retryable_status(status);
	switch (curl_code) {
	case CURLE_COULDNT_CONNECT:
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
		return 1;
	default:
		return 0;
	}
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
	if (len > h->max_body - h->ans.body.len) {
		h->too_big = 1;
		return 0;
	}
	if (ducky_buf_add(&h->ans.body, p, len)) {
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
		h->ans.head.len = 0;
		h->ans.nheaders = 0;
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
	size_t at = h->ans.head.len;
	if (at + len > DUCKY_MAX_HEADERS) {
		h->head_too_big = 1;
		return 0;
	}
	if (ducky_buf_add(&h->ans.head, p, nlen) || ducky_buf_add(&h->ans.head, "", 1) ||
	    ducky_buf_add(&h->ans.head, p + vstart, vend - vstart) ||
	    ducky_buf_add(&h->ans.head, "", 1)) {
		h->no_memory = 1;
		return 0;
	}
	for (i = 0; i < nlen; i++) {
		char c = h->ans.head.data[at + i];
		if (c >= 'A' && c <= 'Z')
			h->ans.head.data[at + i] = (char)(c + 32);
	}
	h->ans.nheaders++;
	/* a HEAD answer announces the length of a body it does not carry */
	if (nlen == 14 && memcmp(h->ans.head.data + at, "content-length", 14) == 0 &&
	    strcmp(h->last_method, "HEAD") != 0) {
		const char *v = h->ans.head.data + at + nlen + 1;
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

int ducky_answer_next_header(const ducky_answer *a, const char **pos, const char **name,
                             const char **value)
{
	return ducky_headers_next(a->head.data, a->head.len, pos, name, value);
}

const char *ducky_answer_header(const ducky_answer *a, const char *name)
{
	const char *pos = NULL, *n, *v;
	while (ducky_answer_next_header(a, &pos, &n, &v))
		if (strcmp(n, name) == 0)
			return v;
	return NULL;
}

void ducky_answer_free(ducky_answer *a)
{
	ducky_buf_free(&a->body);
	ducky_buf_free(&a->head);
	a->nheaders = 0;
	a->status = 0;
}

/* ---- handle ----------------------------------------------------------- */

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

/* PEM text for libcurl from memory (copied: its copy is freed, and wiped, with
 * the handle); nothing set for NULL or empty. 0, or -1 if refused. */
static int set_blob(CURL *e, CURLoption opt, const ducky_buf *pem)
{
	struct curl_blob blob = {pem ? pem->data : NULL, pem ? pem->len : 0, CURL_BLOB_COPY};
	return blob.len && curl_easy_setopt(e, opt, &blob) != CURLE_OK ? -1 : 0;
}

int ducky_http_open(ducky_http *h, const ducky_http_conf *conf, ducky_err *err)
{
	CURL *e;
	/* the user's proxy, else libcurl's from the environment (NULL), else none */
	const char *proxy = conf->proxy ? conf->proxy : env_proxy() ? NULL : "";
	if (ducky_global_init(err))
		return -1;
	if (!(h->easy = e = curl_easy_init()))
		return ducky_fail(err, DUCKY_E_CONFIG, "curl_easy_init failed");
	h->max_body = conf->max_body;
	h->http_version = conf->http_version;
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
	    curl_easy_setopt(e, CURLOPT_BUFFERSIZE, DUCKY_RECV_BUFFER) || /* alloc.h */
	    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L) ||
	    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, conf->http_version) ||
	    curl_easy_setopt(e, CURLOPT_PRIVATE, (void *)h) ||
	    curl_easy_setopt(e, CURLOPT_PROXY, proxy) ||
	    /* no proxy at all: then no_proxy does not matter, and libcurl need not
	     * read it from the environment on every transfer (two getenv calls);
	     * else the client's list (NULL: libcurl's, from the environment) */
	    curl_easy_setopt(e, CURLOPT_NOPROXY, proxy && !*proxy ? "" : conf->no_proxy) ||
	    /* ca_path alone: that directory, not libcurl's built-in bundle besides */
	    ((conf->ca_file || conf->ca_path) &&
	     curl_easy_setopt(e, CURLOPT_CAINFO, conf->ca_file)) ||
	    (conf->ca_path && curl_easy_setopt(e, CURLOPT_CAPATH, conf->ca_path)) ||
	    set_blob(e, CURLOPT_SSLCERT_BLOB, conf->client_cert) ||
	    set_blob(e, CURLOPT_SSLKEY_BLOB, conf->client_key) ||
	    (conf->key_password && curl_easy_setopt(e, CURLOPT_KEYPASSWD, conf->key_password)) ||
	    (conf->insecure && (curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L) ||
	                        curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L))))
		return ducky_fail(err, DUCKY_E_CONFIG, "libcurl refused an option");
	return 0;
}

void ducky_http_close(ducky_http *h)
{
	int was = ducky_wipe_all(1); /* the handle's buffers and connections */
	if (h->easy)
		curl_easy_cleanup(h->easy);
	ducky_wipe_all(was);
	h->easy = NULL;
	free(h->last_url);
	h->last_url = NULL;
	ducky_answer_free(&h->ans);
}

/* ---- one attempt ------------------------------------------------------ */

static int may_multiplex(const ducky_http *h, const char *url)
{
	if (h->http_version == CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE)
		return 1;
	return h->http_version == CURL_HTTP_VERSION_2TLS && strncasecmp(url, "https:", 6) == 0;
}

void ducky_http_setup(ducky_http *h, const ducky_req *req, double remaining)
{
	CURL *e = h->easy;
	long total_ms = (long)ceil(remaining * 1000.0);
	long connect_ms = (long)ceil(req->connect_timeout * 1000.0);
	int has_body = req->body != NULL;

	h->ans.body.len = h->ans.head.len = h->ans.nheaders = 0;
	h->too_big = h->head_too_big = h->no_memory = 0;
	h->ans.status = 0;
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
		/* wait for a connection that may multiplex (HTTP/2) rather than open
		 * more, only where HTTP/2 may be had: over plain HTTP/1.1 that wait
		 * turns a batch into rounds */
		curl_easy_setopt(e, CURLOPT_PIPEWAIT, may_multiplex(h, req->url) ? 1L : 0L);
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
	if (rc == CURLE_OUT_OF_MEMORY && !h->ans.body.len) /* libcurl's limit for one line */
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
	int retry, nth = attempt - req->replays; /* this attempt is retry nth - 1 */
	double wait = -1;
	if (rc == CURLE_OK)
		curl_easy_getinfo(h->easy, CURLINFO_RESPONSE_CODE, &h->ans.status);
	if (rc != CURLE_OK) {
		retry = nothing_sent(h, rc) || (req->idempotent && transient(rc));
		snprintf(ev->reason, sizeof ev->reason, "curl %d", (int)rc);
	} else {
		retry = req->idempotent && ducky_retryable_status(h->ans.status);
		snprintf(ev->reason, sizeof ev->reason, "%ld", h->ans.status);
		if (retry)
			wait = ducky_retry_after(ducky_answer_header(&h->ans, "retry-after"),
			                         ducky_wall());
	}
	if (retry && wait > req->max_retry_after) {
		retry = 0; /* the server asks for longer than we wait */
	} else if (retry && nth <= req->retries) {
		if (wait < 0)
			wait = jitter(h, nth);
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
	err->retryable = ducky_retryable(0, (int)rc);
	return ducky_fail(err, kind_of(h, rc), "%s %.300s: %s", req->method, req->url,
	                  failure_text(h, rc));
}
