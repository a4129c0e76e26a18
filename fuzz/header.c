/* libFuzzer target: ducky_http_on_header, libcurl's header callback.
 * The input is a response head; it is fed one line at a time (each ending in
 * "\n", usually "\r\n"), every line in its own exact-size buffer as libcurl
 * would pass it, until the callback refuses one (libcurl then aborts). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"

#define MAX_BODY 65536

static const char *const names[] = {
    "content-length", "retry-after",      "set-cookie", "content-type",
    "x-request-id",   "www-authenticate", "",           NULL};

/* The pairs read back as the binding reads them: nheaders of them, names
 * non-empty, lower-case, without ':'; values trimmed. Holds when no line
 * carried a NUL byte (libcurl fails such a response: "Nul byte in header"). */
static void check_pairs(const ducky_http *h)
{
	const char *p = h->ans.head.data, *end = p ? p + h->ans.head.len : NULL;
	size_t n = 0;
	while (p && p < end) {
		const char *value = p + strlen(p) + 1;
		size_t vlen = strlen(value);
		if (!*p || strchr(p, ':'))
			abort();
		for (const char *c = p; *c; c++)
			if (*c >= 'A' && *c <= 'Z')
				abort();
		if (vlen && (strchr(" \t", value[0]) || strchr(" \t\r\n", value[vlen - 1])))
			abort();
		if (ducky_answer_header(&h->ans, p) == NULL)
			abort();
		n++;
		p = value + vlen + 1;
	}
	if (p && p != end)
		abort();
	if (n != h->ans.nheaders)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	ducky_http h;
	int nul = 0;
	memset(&h, 0, sizeof h);
	h.max_body = MAX_BODY;

	for (size_t at = 0; at < size;) {
		const uint8_t *nl = memchr(data + at, '\n', size - at);
		if (!nl)
			break; /* libcurl passes whole lines only */
		size_t len = (size_t)(nl - (data + at)) + 1;
		char *line = malloc(len);
		if (!line)
			abort();
		memcpy(line, data + at, len);
		nul |= memchr(line, '\0', len) != NULL;
		size_t rc = ducky_http_on_header(line, 1, len, &h);
		free(line);
		if (rc != len)
			break; /* refused: too big or out of memory */
		at += len;
	}

	if (!nul)
		check_pairs(&h);
	for (int i = 0; names[i]; i++) {
		const char *v = ducky_answer_header(&h.ans, names[i]);
		if (v && strlen(v) > h.ans.head.len)
			abort();
	}
	const char *ra = ducky_answer_header(&h.ans, "retry-after");
	if (ra)
		(void)ducky_retry_after(ra, 1.8e9);
	ducky_answer_free(&h.ans);
	return 0;
}
