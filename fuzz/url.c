/* libFuzzer target: the URL helpers (libcurl's URL parser underneath).
 * The input is "<base_url>\n<path>": ducky_url_check and ducky_url_same_origin
 * on both, ducky_url_join(base, path) with the path as pointer and length (an
 * exact-size buffer, no terminator), ducky_buf_add_escaped on the path. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "err.h"
#include "url.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		abort();
	return 0;
}

static int unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '.' || c == '_' || c == '~';
}

static int unhex(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* The escaped text decodes back to s, and escapes exactly what is reserved. */
static void check_escaped(const char *s, size_t len)
{
	ducky_buf b = {0};
	size_t j = 0;
	if (ducky_buf_add_escaped(&b, s, len))
		abort();
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (unreserved(c)) {
			if (j >= b.len || b.data[j] != (char)c)
				abort();
			j++;
		} else {
			if (j + 3 > b.len || b.data[j] != '%' ||
			    unhex(b.data[j + 1]) * 16 + unhex(b.data[j + 2]) != c)
				abort();
			j += 3;
		}
	}
	if (j != b.len || (b.data && b.data[b.len] != '\0'))
		abort();
	ducky_buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nl = memchr(data, '\n', size);
	size_t blen = nl ? (size_t)(nl - data) : size;
	size_t plen = nl ? size - blen - 1 : 0;
	char *base = malloc(blen + 1), *path = malloc(plen ? plen : 1), *cpath;
	ducky_buf u = {0};
	ducky_err err;
	if (!base || !path || !(cpath = malloc(plen + 1)))
		abort();
	memcpy(base, data, blen);
	base[blen] = '\0';
	if (plen)
		memcpy(path, nl + 1, plen);
	memcpy(cpath, path, plen);
	cpath[plen] = '\0';

	int base_ok = !memchr(base, '\0', blen) && ducky_url_check(base);
	if (!memchr(cpath, '\0', plen)) {
		(void)ducky_url_check(cpath);
		int ab = ducky_url_same_origin(base, cpath),
		    ba = ducky_url_same_origin(cpath, base);
		if (ab != ba)
			abort();
	}
	if (base_ok && !ducky_url_same_origin(base, base))
		abort();

	ducky_err_init(&err);
	if (ducky_url_join(&u, base, path, plen, &err) == 0) {
		if (!u.data || u.data[u.len] != '\0' || strlen(u.data) != u.len)
			abort();
	} else if (err.kind != DUCKY_E_CONFIG && err.kind != DUCKY_E_LIMIT) {
		abort();
	}
	ducky_err_clear(&err);
	ducky_buf_free(&u);
	check_escaped(path, plen);

	free(cpath);
	free(path);
	free(base);
	return 0;
}
