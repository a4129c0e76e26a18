/* libFuzzer target: the token checks on data from a token answer or a file.
 *   ducky_token_validate: the input is "<token>\n<token_type>\n<expires_in>"
 *     (no second line: token_type missing; expires_in read with strtod);
 *   ducky_store_parse: the whole input as a token file's text, for KEY. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "err.h"
#include "store.h"
#include "token.h"

#define KEY "3f9a1c0e5b7d2468ace013579bdf2468ace013579bdf02468ace13579bdf0246"

static int visible(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
			return 0;
	return n > 0;
}

static void validate(const uint8_t *data, size_t size)
{
	const uint8_t *nl = memchr(data, '\n', size);
	size_t tlen = nl ? (size_t)(nl - data) : size;
	char *tok = malloc(tlen ? tlen : 1), *type = NULL;
	double expires_in = 0;
	ducky_err err;
	if (!tok)
		abort();
	memcpy(tok, data, tlen); /* exact size: no terminator to lean on */
	if (nl) {
		const uint8_t *rest = nl + 1, *end = data + size;
		const uint8_t *nl2 = memchr(rest, '\n', (size_t)(end - rest));
		size_t ylen = nl2 ? (size_t)(nl2 - rest) : (size_t)(end - rest);
		if (!(type = malloc(ylen + 1)))
			abort();
		memcpy(type, rest, ylen);
		type[ylen] = '\0';
		if (nl2) {
			size_t elen = (size_t)(end - nl2 - 1);
			char *e = malloc(elen + 1);
			if (!e)
				abort();
			memcpy(e, nl2 + 1, elen);
			e[elen] = '\0';
			expires_in = strtod(e, NULL);
			free(e);
		}
	}
	ducky_err_init(&err);
	int rc = ducky_token_validate(tok, tlen, type, expires_in, &err);
	int want = visible(tok, tlen) && type && strcasecmp(type, "bearer") == 0 &&
	           expires_in > 0 && isfinite(expires_in);
	if ((rc == 0) != want)
		abort();
	if (rc != 0) {
		if (err.kind != DUCKY_E_DECODE || !err.message)
			abort();
		for (const char *p = err.message; *p; p++) /* one printable line */
			if ((unsigned char)*p < 0x20 || *p == 0x7f)
				abort();
	}
	ducky_err_clear(&err);
	free(type);
	free(tok);
}

static void parse(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1);
	ducky_fresh out = {NULL, 0, 0};
	const char *reason = NULL;
	if (!text)
		abort();
	memcpy(text, data, size);
	text[size] = '\0';
	if (ducky_store_parse(text, KEY, &out, &reason) == 1) {
		if (!out.token || !visible(out.token, strlen(out.token)) || reason)
			abort();
		free(out.token);
	} else if (out.token) {
		abort();
	}
	free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	validate(data, size);
	parse(data, size);
	return 0;
}
