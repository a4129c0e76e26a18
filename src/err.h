/* The error record of the C core: a kind, a message and what the server said. */
#ifndef DUCKY_ERR_H
#define DUCKY_ERR_H

/* X-macro: every error kind, once. */
#define DUCKY_KINDS(X)                                                                             \
	X(CONFIG, "config")                                                                        \
	X(NETWORK, "network")                                                                      \
	X(TIMEOUT, "timeout")                                                                      \
	X(TLS, "tls")                                                                              \
	X(AUTH, "auth")                                                                            \
	X(HTTP, "http")                                                                            \
	X(DECODE, "decode")                                                                        \
	X(LIMIT, "limit")                                                                          \
	X(CANCELLED, "cancelled")

typedef enum {
	DUCKY_OK = 0,
#define DUCKY_KIND_ENUM(e, s) DUCKY_E_##e,
	DUCKY_KINDS(DUCKY_KIND_ENUM)
#undef DUCKY_KIND_ENUM
	    DUCKY_NKINDS
} ducky_kind;

/* Owns message, code and description (freed by ducky_err_clear). */
typedef struct ducky_err {
	ducky_kind kind;    /* DUCKY_OK: no error */
	char *message;      /* malloc'd; NULL after an allocation failure */
	long status;        /* HTTP status, 0 if none */
	int curl_code;      /* CURLcode, 0 if none */
	char *code;         /* OAuth "error" string, malloc'd or NULL */
	char *description;  /* OAuth "error_description", malloc'd or NULL */
	double retry_after; /* seconds, < 0 if none */
	int attempts;
	int retryable;
} ducky_err;

/* "config", "network", …; "ok" for DUCKY_OK. */
const char *ducky_kind_name(ducky_kind kind);
/* The kind named s, or DUCKY_OK if s names none. */
ducky_kind ducky_kind_of(const char *s);
void ducky_err_init(ducky_err *err);
void ducky_err_clear(ducky_err *err);
/* Sets kind and a printf-formatted message (and retryable for a timeout, which
 * may succeed if made again); returns -1 for `return ducky_fail(...)`. */
int ducky_fail(ducky_err *err, ducky_kind kind, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
/* Deep copy; on allocation failure the copy keeps kind and numbers. */
void ducky_err_copy(ducky_err *dst, const ducky_err *src);

#endif
