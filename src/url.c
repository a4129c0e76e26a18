/* URLs on libcurl's parser (see url.h). */
#include "url.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include <curl/curl.h>

static CURLU *parse(const char *url)
{
	CURLU *u = curl_url();
	if (u && curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK) {
		curl_url_cleanup(u);
		u = NULL;
	}
	return u;
}

static int part_equal(CURLU *a, CURLU *b, CURLUPart part, unsigned flags)
{
	char *x = NULL, *y = NULL;
	int eq;
	curl_url_get(a, part, &x, flags);
	curl_url_get(b, part, &y, flags);
	eq = x && y && strcasecmp(x, y) == 0;
	curl_free(x);
	curl_free(y);
	return eq;
}

int ducky_url_check(const char *url)
{
	CURLU *u = parse(url);
	int ok = u && part_equal(u, u, CURLUPART_HOST, 0) &&
	         (strncasecmp(url, "http://", 7) == 0 || strncasecmp(url, "https://", 8) == 0);
	curl_url_cleanup(u);
	return ok;
}

/* localhost, or an address of this machine's loopback (127/8, ::1). libcurl
 * writes IPv4 addresses in dotted form (127.1 and 2130706433 as 127.0.0.1),
 * IPv6 ones in brackets and shortest; a name such as 127.example.com is no
 * address, and may be anywhere. */
static int loopback(const char *host)
{
	unsigned char a[4];
	if (strcasecmp(host, "localhost") == 0 || strcmp(host, "[::1]") == 0)
		return 1;
	return inet_pton(AF_INET, host, a) == 1 && a[0] == 127;
}

/* The host of a plain-http URL, as libcurl writes it (curl_free it), or NULL. */
static char *http_host(const char *url)
{
	CURLU *u = parse(url);
	char *host = NULL;
	if (u && strncasecmp(url, "http://", 7) == 0 &&
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK)
		host = NULL;
	curl_url_cleanup(u);
	return host;
}

int ducky_url_cleartext(const char *url)
{
	char *host = http_host(url);
	int remote = host && !loopback(host);
	curl_free(host);
	return remote;
}

int ducky_url_add_local_http_host(ducky_buf *list, const char *url)
{
	char *host = http_host(url);
	size_t n = host ? strlen(host) : 0;
	int bad = 0;
	if (host && loopback(host)) { /* [::1] as ::1: libcurl's no-proxy list has no brackets */
		int v6 = host[0] == '[';
		bad = ducky_buf_adds(list, list->len ? "," : "") ||
		      ducky_buf_add(list, host + v6, n - 2 * (size_t)v6);
	}
	curl_free(host);
	return bad;
}

int ducky_url_same_origin(const char *a, const char *b)
{
	CURLU *x = parse(a), *y = parse(b);
	int same = x && y && part_equal(x, y, CURLUPART_SCHEME, 0) &&
	           part_equal(x, y, CURLUPART_HOST, 0) &&
	           part_equal(x, y, CURLUPART_PORT, CURLU_DEFAULT_PORT);
	curl_url_cleanup(x);
	curl_url_cleanup(y);
	return same;
}

char *ducky_url_origin(const char *url)
{
	CURLU *u = parse(url);
	char *origin = NULL, *path = NULL;
	/* the URL without path, query and fragment: libcurl renders it as origin + "/" */
	if (u && curl_url_set(u, CURLUPART_PATH, "/", 0) == CURLUE_OK &&
	    curl_url_set(u, CURLUPART_QUERY, NULL, 0) == CURLUE_OK &&
	    curl_url_set(u, CURLUPART_FRAGMENT, NULL, 0) == CURLUE_OK &&
	    curl_url_set(u, CURLUPART_USER, NULL, 0) == CURLUE_OK &&
	    curl_url_set(u, CURLUPART_PASSWORD, NULL, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_URL, &path, 0) == CURLUE_OK) {
		size_t n = strlen(path);
		origin = ducky_strndup(path, n && path[n - 1] == '/' ? n - 1 : n);
	}
	curl_free(path);
	curl_url_cleanup(u);
	return origin;
}

/* "scheme://…" (RFC 3986 scheme characters), as opposed to a path that merely
 * holds "://" somewhere, say in its query. */
static int is_absolute(const char *p, size_t n)
{
	size_t i = 0;
	if (n == 0 || !isalpha((unsigned char)p[0]))
		return 0;
	while (i < n && (isalnum((unsigned char)p[i]) || p[i] == '+' || p[i] == '-' || p[i] == '.'))
		i++;
	return i + 3 <= n && memcmp(p + i, "://", 3) == 0;
}

int ducky_url_join(ducky_buf *u, const char *base, const char *path, size_t plen, ducky_err *err)
{
	u->len = 0;
	if (memchr(path, '\0', plen))
		return ducky_fail(err, DUCKY_E_CONFIG, "a path holds NUL");
	if (is_absolute(path, plen)) {
		char *abs = ducky_strndup(path, plen);
		int same = abs && ducky_url_same_origin(abs, base);
		free(abs);
		if (!same)
			return ducky_fail(err, DUCKY_E_CONFIG,
			                  "refusing %.*s: an absolute URL must be on base_url's "
			                  "scheme, host and port",
			                  (int)(plen < 200 ? plen : 200), path);
		if (ducky_buf_add(u, path, plen))
			return ducky_fail(err, DUCKY_E_LIMIT, "out of memory");
		return 0;
	}
	while (plen && *path == '/')
		path++, plen--;
	if (ducky_buf_adds(u, base) || ducky_buf_add(u, "/", 1) || ducky_buf_add(u, path, plen))
		return ducky_fail(err, DUCKY_E_LIMIT, "out of memory");
	return 0;
}
