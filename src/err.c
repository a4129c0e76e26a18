/* The error record of the C core (see err.h); lua_error.c makes it a Lua table. */
#include "err.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

static const char *const kind_names[DUCKY_NKINDS] = {"ok",
#define DUCKY_KIND_NAME(e, s) s,
                                                     DUCKY_KINDS(DUCKY_KIND_NAME)
#undef DUCKY_KIND_NAME
};

const char *ducky_kind_name(ducky_kind kind)
{
	return kind_names[kind];
}

ducky_kind ducky_kind_of(const char *s)
{
	for (int k = DUCKY_OK + 1; k < DUCKY_NKINDS; k++)
		if (s && strcmp(s, kind_names[k]) == 0)
			return (ducky_kind)k;
	return DUCKY_OK;
}

void ducky_err_init(ducky_err *err)
{
	memset(err, 0, sizeof *err);
	err->retry_after = -1;
}

void ducky_err_clear(ducky_err *err)
{
	free(err->message);
	free(err->code);
	free(err->description);
	ducky_err_init(err);
}

int ducky_fail(ducky_err *err, ducky_kind kind, const char *fmt, ...)
{
	va_list ap;
	char *raw = NULL;
	ducky_buf line = {0};

	free(err->message);
	err->message = NULL;
	err->kind = kind;
	if (kind == DUCKY_E_TIMEOUT) /* what err.retryable means (http.h, ducky_retryable) */
		err->retryable = 1;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n >= 0 && (raw = malloc((size_t)n + 1)) != NULL) {
		va_start(ap, fmt);
		vsnprintf(raw, (size_t)n + 1, fmt, ap);
		va_end(ap);
		/* one readable line, whatever a server put in its description */
		if (ducky_buf_add_printable(&line, raw, (size_t)n) == 0)
			err->message = ducky_strndup(line.data ? line.data : "", line.len);
	}
	free(raw);
	ducky_buf_free(&line);
	return -1;
}

void ducky_err_copy(ducky_err *dst, const ducky_err *src)
{
	*dst = *src;
	dst->message = ducky_strdup(src->message);
	dst->code = ducky_strdup(src->code);
	dst->description = ducky_strdup(src->description);
}
