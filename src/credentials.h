/* The token request for each token_auth, the cache key, fingerprints and the
 * masking of the secret. Plain C: the binding hands in plain fields. The
 * secret lives here only, in memory this owns, and is wiped on free. */
#ifndef DUCKY_CREDENTIALS_H
#define DUCKY_CREDENTIALS_H

#include <stddef.h>

#include <curl/curl.h>

#include "err.h"
#include "jwt.h"
#include "util.h"

/* X-macro: every token_auth, once. */
#define DUCKY_AUTHS(X)                                                                             \
	X(JSON, "json")                                                                            \
	X(FORM, "form")                                                                            \
	X(BASIC, "basic")                                                                          \
	X(JWT, "private_key_jwt")                                                                  \
	X(MTLS, "tls_client_auth")

typedef enum {
#define DUCKY_AUTH_ENUM(e, s) DUCKY_AUTH_##e,
	DUCKY_AUTHS(DUCKY_AUTH_ENUM)
#undef DUCKY_AUTH_ENUM
	    DUCKY_NAUTHS
} ducky_auth;

extern const char *const ducky_auth_names[DUCKY_NAUTHS + 1]; /* NULL-terminated */

typedef struct ducky_param { /* one of token_params */
	const char *name, *value;
	size_t name_len, value_len;
} ducky_param;

typedef struct ducky_creds_conf {
	ducky_auth auth;
	const char *token_url, *audience, *ua_line;
	const char *client_id, *secret; /* NULL: none */
	const char *secret_file;        /* read when secret is NULL */
	const ducky_param *params;
	size_t nparams;
	/* private_key_jwt: the key as text, or a file; the JWT's kid, alg and aud
	 * (NULL: the token URL's origin and "/") */
	const char *private_key, *private_key_file, *key_id, *assertion_audience;
	size_t private_key_len;
	ducky_jwt_alg signing_alg;
	/* tls_client_auth (and any client that presents a certificate); the key
	 * may be in client_cert's file; NULL password: an unencrypted key */
	const char *client_cert, *client_key, *client_key_password;
} ducky_creds_conf;

#define DUCKY_MASKS 4 /* the secret as given, and as sent: JSON, form, Basic */

/* What a client's token requests need. Owns every pointer and buffer in it
 * (freed, the secret's forms wiped, by ducky_creds_free); the conf it was made
 * from is only borrowed during ducky_creds_init. */
typedef struct ducky_creds {
	ducky_auth auth;
	int complete;      /* what an exchange needs is there (a client_id, a secret or a key) */
	ducky_err problem; /* a config error every call that needs a token gives */
	int cert_refused;  /* client_cert or client_key refused: not presented */
	/* what a client presenting a certificate gives libcurl, read once: client_cert's
	 * file, and client_key's (empty: the key is in client_cert's file) */
	ducky_buf cert_pem, key_pem;
	char *token_url;
	ducky_buf form;               /* private_key_jwt: the body but for the assertion */
	ducky_buf body;               /* the token request's body: holds the secret */
	struct curl_slist *headers;   /* its headers: Basic holds the secret */
	char key[65];                 /* the cache key: hex SHA-256 of what identifies the token */
	unsigned char cert_hash[32];  /* SHA-256 of client_cert's certificate (DER), once read */
	ducky_buf masks[DUCKY_MASKS]; /* every form of the secret ducky sent */
	ducky_jwt jwt;                /* private_key_jwt, once its key is read */
} ducky_creds;

/* 0, or -1 with err for out of memory; a problem with the key (a config
 * error, or nothing to make an exchange with) is kept for the exchanges. */
int ducky_creds_init(ducky_creds *c, const ducky_creds_conf *conf, ducky_err *err);
/* Makes body ready for the next attempt of an exchange: a fresh assertion for
 * private_key_jwt. 0, or -1 with err (the kept problem, say). */
int ducky_creds_next(ducky_creds *c, ducky_err *err);
void ducky_creds_free(ducky_creds *c); /* wipes */

/* A malloc'd copy of server text with every form of the secret masked, or NULL. */
char *ducky_creds_scrub(const ducky_creds *c, const char *text);

/* 12 hex digits of a token's SHA-256: what events show instead of a token. */
void ducky_fingerprint(const char *token, size_t len, char out[13]);

#endif
