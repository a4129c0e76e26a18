/* RFC 7523 client assertions (private_key_jwt): a private key read once and
 * kept in OpenSSL's memory, and a fresh signed JWT for every exchange. Plain C. */
#ifndef DUCKY_JWT_H
#define DUCKY_JWT_H

#include <stddef.h>

#include "err.h"
#include "util.h"

#define DUCKY_JWT_ALGS(X)                                                                          \
	X(RS256, "RS256")                                                                          \
	X(RS384, "RS384")                                                                          \
	X(PS256, "PS256")                                                                          \
	X(ES256, "ES256")

typedef enum {
#define DUCKY_JWT_ENUM(e, s) DUCKY_JWT_##e,
	DUCKY_JWT_ALGS(DUCKY_JWT_ENUM)
#undef DUCKY_JWT_ENUM
	    DUCKY_NJWT
} ducky_jwt_alg;

extern const char *const ducky_jwt_alg_names[DUCKY_NJWT + 1]; /* NULL-terminated */

typedef struct ducky_jwt {
	void *key; /* EVP_PKEY */
	ducky_jwt_alg alg;
	char *header_b64;           /* the encoded header: {alg, typ, kid?} */
	char *what;                 /* the key's file, or "private_key": for messages */
	char *iss, *aud;            /* the client id, the audience */
	unsigned char pub_hash[32]; /* SHA-256 of the public key: what the cache key covers */
} ducky_jwt;

/* Reads the private key from pem (file: where it came from, for messages; NULL
 * for text given directly) and checks it against alg. 0, or -1 with a config error. */
int ducky_jwt_init(ducky_jwt *j, const char *pem, size_t len, const char *file, ducky_jwt_alg alg,
                   const char *kid, const char *iss, const char *aud, ducky_err *err);
/* Appends a fresh assertion: header.claims.signature, base64url, iat now,
 * exp 60 s later, a 128-bit random jti. */
int ducky_jwt_sign(const ducky_jwt *j, ducky_buf *out, ducky_err *err);
void ducky_jwt_free(ducky_jwt *j);

#endif
