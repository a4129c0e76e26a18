/* The floor: libcurl with one reused easy handle, a fixed bearer header and a
 * write callback appending to a reused buffer; N GETs of one URL, then
 * "<N> requests in <s> s: <r> requests/s" on stdout.
 * usage: floor URL N [TOKEN]
 *
 * FLOOR_LIKE=opt,opt,... adds, one by one, what ducky's http.c asks of libcurl,
 * to tell the cost of each (run.sh's attribution table); unset, it is the floor:
 *   ua       CURLOPT_USERAGENT "ducky-lua/0.1.0 libcurl/<version>"
 *   enc      CURLOPT_ACCEPT_ENCODING "" (Accept-Encoding: every decoder built in)
 *   hdr      a CURLOPT_HEADERFUNCTION copying every header line into a buffer
 *   timeout  CURLOPT_TIMEOUT_MS and CURLOPT_CONNECTTIMEOUT_MS
 *   misc     CURLOPT_ERRORBUFFER, CURLOPT_PROTOCOLS_STR, CURLOPT_TCP_KEEPALIVE
 *   perreq   the setopt calls of http.c's perform() before every request (URL,
 *            HTTPHEADER, timeouts, HTTPGET, NOBODY, CUSTOMREQUEST, FRESH_CONNECT)
 *   all      all of the above
 * and two cheaper ways to ask for the same (not part of "all"):
 *   uahdr    the User-Agent as a line of the CURLOPT_HTTPHEADER list instead of ua
 *   gzip     CURLOPT_ACCEPT_ENCODING "gzip" instead of enc's "" */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

typedef struct buf {
	char *data;
	size_t len, cap;
} buf;

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
	buf *b = ud;
	size_t len = size * n;
	if (b->len + len + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap < b->len + len + 1)
			cap *= 2;
		char *d = realloc(b->data, cap);
		if (!d)
			return 0;
		b->data = d;
		b->cap = cap;
	}
	memcpy(b->data + b->len, p, len);
	b->len += len;
	b->data[b->len] = '\0';
	return len;
}

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
	return on_body(p, size, n, ud);
}

static int like(const char *opt)
{
	const char *l = getenv("FLOOR_LIKE");
	size_t n = strlen(opt);
	if (!l)
		return 0;
	for (const char *p = l; *p;) {
		size_t m = strcspn(p, ",");
		if (m == n && strncmp(p, opt, n) == 0)
			return 1;
		p += m + (p[m] == ',');
	}
	return 0;
}

static void per_request(CURL *e, const char *url, struct curl_slist *headers)
{
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 30000L);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
	curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
	curl_easy_setopt(e, CURLOPT_NOBODY, 0L);
	curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, NULL);
	curl_easy_setopt(e, CURLOPT_FRESH_CONNECT, 0L);
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: %s URL N [TOKEN]\n", argv[0]);
		return 2;
	}
	long n = strtol(argv[2], NULL, 10);
	char auth[512];
	snprintf(auth, sizeof auth, "Authorization: Bearer %s",
	         argc > 3 ? argv[3] : "bench-token-0123456789abcdef0123456789abcdef");
	buf body = {NULL, 0, 0}, head = {NULL, 0, 0};
	long status = 0;
	char ua[64], errbuf[CURL_ERROR_SIZE];
	int all = like("all"), perreq = all || like("perreq");

	curl_global_init(CURL_GLOBAL_DEFAULT);
	CURL *e = curl_easy_init();
	struct curl_slist *headers = curl_slist_append(NULL, auth);
	if (!e || !headers)
		return 1;
	snprintf(ua, sizeof ua, "ducky-lua/0.1.0 libcurl/%s",
	         curl_version_info(CURLVERSION_NOW)->version);
	if (like("uahdr")) {
		char line[96];
		snprintf(line, sizeof line, "User-Agent: %s", ua);
		if (!(headers = curl_slist_append(headers, line)))
			return 1;
	}
	curl_easy_setopt(e, CURLOPT_URL, argv[1]);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, &body);
	if (all || like("ua")) {
		snprintf(ua, sizeof ua, "ducky-lua/0.1.0 libcurl/%s",
		         curl_version_info(CURLVERSION_NOW)->version);
		curl_easy_setopt(e, CURLOPT_USERAGENT, ua);
	}
	if (all || like("enc"))
		curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
	if (like("gzip"))
		curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "gzip");
	if (all || like("hdr")) {
		curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
		curl_easy_setopt(e, CURLOPT_HEADERDATA, &head);
	}
	if (all || like("timeout")) {
		curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 30000L);
		curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
	}
	if (all || like("misc")) {
		curl_easy_setopt(e, CURLOPT_ERRORBUFFER, errbuf);
		curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
		curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
	}

	double t0 = now();
	for (long i = 0; i < n; i++) {
		body.len = head.len = 0;
		if (perreq)
			per_request(e, argv[1], headers);
		CURLcode rc = curl_easy_perform(e);
		if (rc != CURLE_OK) {
			fprintf(stderr, "request %ld: %s\n", i + 1, curl_easy_strerror(rc));
			return 1;
		}
		curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
		if (status != 200) {
			fprintf(stderr, "request %ld: status %ld\n", i + 1, status);
			return 1;
		}
	}
	double s = now() - t0;
	printf("%ld requests in %.3f s: %.0f requests/s\n", n, s, n / s);

	curl_slist_free_all(headers);
	curl_easy_cleanup(e);
	curl_global_cleanup();
	free(body.data);
	free(head.data);
	return 0;
}
