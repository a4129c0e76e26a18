/* RFC 7523 client assertions (see jwt.h), signed with OpenSSL's EVP. */
#include "jwt.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/bio.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#define LIFETIME 60 /* seconds an assertion is good for (Auth0 allows 300 at most) */

const char *const ducky_jwt_alg_names[DUCKY_NJWT + 1] = {
#define DUCKY_JWT_NAME(e, s) s,
    DUCKY_JWT_ALGS(DUCKY_JWT_NAME)
#undef DUCKY_JWT_NAME
        NULL};

/* Appends p[0..n) as base64url without padding. */
static int add_b64url(ducky_buf *b, const void *p, size_t n)
{
	size_t cap = 4 * ((n + 2) / 3) + 1;
	unsigned char *enc = malloc(cap);
	if (!enc)
		return -1;
	int len = EVP_EncodeBlock(enc, p, (int)n);
	while (len > 0 && enc[len - 1] == '=')
		len--;
	for (int i = 0; i < len; i++)
		enc[i] = enc[i] == '+' ? '-' : enc[i] == '/' ? '_' : enc[i];
	int rc = ducky_buf_add(b, enc, (size_t)len);
	ducky_wipe_free(enc, cap);
	return rc;
}

#define MIN_RSA_BITS 2048 /* RFC 7518 §3.3: 2048 bits or larger */

/* Why key cannot sign alg, or NULL: RSA for RS*, RSA or RSA-PSS for PS256,
 * EC P-256 for ES256; an RSA key of MIN_RSA_BITS at least. */
static const char *key_misfit(EVP_PKEY *key, ducky_jwt_alg alg)
{
	int type = EVP_PKEY_get_base_id(key);
	char group[64] = "";
	size_t n = 0;
	if (alg == DUCKY_JWT_ES256)
		return type == EVP_PKEY_EC &&
		               EVP_PKEY_get_utf8_string_param(key, "group", group, sizeof group,
		                                              &n) &&
		               strcmp(group, "prime256v1") == 0
		           ? NULL
		           : "is not an EC P-256 key";
	if (type == EVP_PKEY_RSA_PSS && alg != DUCKY_JWT_PS256)
		return "is an RSA-PSS key, which signs PS256 only";
	if (type != EVP_PKEY_RSA && type != EVP_PKEY_RSA_PSS)
		return "is not an RSA key";
	return EVP_PKEY_get_bits(key) < MIN_RSA_BITS ? "is an RSA key under 2048 bits" : NULL;
}

/* The SHA-256 of the key's public half (DER SubjectPublicKeyInfo). */
static int public_hash(EVP_PKEY *key, unsigned char out[32])
{
	unsigned char *der = NULL;
	unsigned int n = 0;
	int len = i2d_PUBKEY(key, &der);
	int ok = len > 0 && EVP_Digest(der, (size_t)len, out, &n, EVP_sha256(), NULL) && n == 32;
	OPENSSL_free(der);
	return ok;
}

static int make_header(ducky_jwt *j, const char *kid)
{
	ducky_buf json = {0}, b64 = {0};
	int bad = ducky_buf_adds(&json, "{\"alg\":\"") ||
	          ducky_buf_adds(&json, ducky_jwt_alg_names[j->alg]) ||
	          ducky_buf_adds(&json, "\",\"typ\":\"JWT\"") ||
	          (kid && (ducky_buf_adds(&json, ",\"kid\":") ||
	                   ducky_buf_add_json(&json, kid, strlen(kid)))) ||
	          ducky_buf_adds(&json, "}") || add_b64url(&b64, json.data, json.len) ||
	          !(j->header_b64 = ducky_strndup(b64.data, b64.len));
	ducky_buf_free(&json);
	ducky_buf_free(&b64);
	return bad;
}

/* An encrypted key is not one ducky can use: no prompt for a password; notes
 * that one was asked for. */
static int no_password(char *buf, int size, int rwflag, void *u)
{
	(void)buf, (void)size, (void)rwflag;
	*(int *)u = 1;
	return 0;
}

/* The claims: iss = sub = the client id, aud, iat, exp, a random jti. */
static int add_claims(const ducky_jwt *j, ducky_buf *b64)
{
	unsigned char rnd[16];
	ducky_buf json = {0}, jti = {0};
	char times[64];
	long long now = (long long)time(NULL);
	snprintf(times, sizeof times, ",\"iat\":%lld,\"exp\":%lld,\"jti\":\"", now, now + LIFETIME);
	int bad = RAND_bytes(rnd, sizeof rnd) != 1 || add_b64url(&jti, rnd, sizeof rnd) ||
	          ducky_buf_adds(&json, "{\"iss\":") ||
	          ducky_buf_add_json(&json, j->iss, strlen(j->iss)) ||
	          ducky_buf_adds(&json, ",\"sub\":") ||
	          ducky_buf_add_json(&json, j->iss, strlen(j->iss)) ||
	          ducky_buf_adds(&json, ",\"aud\":") ||
	          ducky_buf_add_json(&json, j->aud, strlen(j->aud)) ||
	          ducky_buf_adds(&json, times) || ducky_buf_add(&json, jti.data, jti.len) ||
	          ducky_buf_adds(&json, "\"}") || add_b64url(b64, json.data, json.len);
	ducky_buf_free(&json);
	ducky_buf_free(&jti);
	return bad;
}

/* ECDSA's DER signature as JWS wants it: r and s, 32 bytes each. */
static int raw_ecdsa(const unsigned char *der, size_t n, unsigned char out[64])
{
	const BIGNUM *r, *s;
	ECDSA_SIG *sig = d2i_ECDSA_SIG(NULL, &der, (long)n);
	if (!sig)
		return -1;
	ECDSA_SIG_get0(sig, &r, &s);
	int ok = BN_bn2binpad(r, out, 32) == 32 && BN_bn2binpad(s, out + 32, 32) == 32;
	ECDSA_SIG_free(sig);
	return ok ? 0 : -1;
}

/* Signs input with the key; appends the signature, base64url. */
static int add_signature(const ducky_jwt *j, const ducky_buf *input, ducky_buf *out)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	EVP_PKEY_CTX *pctx = NULL;
	unsigned char *sig = NULL, raw[64];
	size_t n = 0;
	const EVP_MD *md = j->alg == DUCKY_JWT_RS384 ? EVP_sha384() : EVP_sha256();
	int ok = ctx && EVP_DigestSignInit(ctx, &pctx, md, NULL, j->key) == 1;
	if (ok && j->alg == DUCKY_JWT_PS256) /* RFC 7518 §3.5: salt as long as the hash */
		ok = EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) > 0 &&
		     EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) > 0;
	ok = ok &&
	     EVP_DigestSign(ctx, NULL, &n, (const unsigned char *)input->data, input->len) == 1 &&
	     (sig = malloc(n)) &&
	     EVP_DigestSign(ctx, sig, &n, (const unsigned char *)input->data, input->len) == 1;
	if (ok && j->alg == DUCKY_JWT_ES256)
		ok = raw_ecdsa(sig, n, raw) == 0 && add_b64url(out, raw, sizeof raw) == 0;
	else if (ok)
		ok = add_b64url(out, sig, n) == 0;
	free(sig);
	EVP_MD_CTX_free(ctx);
	return ok ? 0 : -1;
}

static int sign_failed(const ducky_jwt *j, ducky_err *err)
{
	ERR_clear_error(); /* OpenSSL's reasons are not libcurl's to read later */
	return ducky_fail(err, DUCKY_E_CONFIG,
	                  "signing the client assertion (%s) with the key in %s failed",
	                  ducky_jwt_alg_names[j->alg], j->what);
}

/* A key may fit alg and still not sign with it (an RSA-PSS key restricted to
 * another digest or salt length): one signature when the key is read tells. */
static int can_sign(const ducky_jwt *j, ducky_err *err)
{
	ducky_buf probe = {0}, sig = {0};
	int bad = ducky_buf_adds(&probe, "probe") || add_signature(j, &probe, &sig);
	ducky_buf_free(&probe);
	ducky_buf_free(&sig);
	return bad ? sign_failed(j, err) : 0;
}

int ducky_jwt_init(ducky_jwt *j, const char *pem, size_t len, const char *file, ducky_jwt_alg alg,
                   const char *kid, const char *iss, const char *aud, ducky_err *err)
{
	const char *what = file ? file : "private_key";
	memset(j, 0, sizeof *j);
	j->alg = alg;
	int encrypted = 0;
	BIO *bio = BIO_new_mem_buf(pem, (int)len);
	EVP_PKEY *key = bio ? PEM_read_bio_PrivateKey(bio, NULL, no_password, &encrypted) : NULL;
	BIO_free(bio);
	ERR_clear_error(); /* a key that did not parse: nothing left for libcurl to misread */
	const char *misfit = NULL;
	if (!(j->key = key))
		return ducky_fail(err, DUCKY_E_CONFIG, "%s %s", what,
		                  encrypted ? "holds an encrypted key: ducky signs with an "
		                              "unencrypted one only (openssl pkey -in KEY -out NEW)"
		                            : "holds no PEM private key");
	if ((misfit = key_misfit(key, alg)))
		return ducky_fail(err, DUCKY_E_CONFIG, "the key in %s %s: %s needs %s", what,
		                  misfit, ducky_jwt_alg_names[alg],
		                  alg == DUCKY_JWT_ES256 ? "one"
		                  : alg == DUCKY_JWT_PS256
		                      ? "an RSA or RSA-PSS key of 2048 bits or more"
		                      : "an RSA key of 2048 bits or more");
	if (!public_hash(key, j->pub_hash) || make_header(j, kid) ||
	    !(j->what = ducky_strdup(what)) || !(j->iss = ducky_strdup(iss)) ||
	    !(j->aud = ducky_strdup(aud)))
		return ducky_fail(err, DUCKY_E_LIMIT, "out of memory");
	return can_sign(j, err);
}

int ducky_jwt_sign(const ducky_jwt *j, ducky_buf *out, ducky_err *err)
{
	ducky_buf input = {0};
	int bad = ducky_buf_adds(&input, j->header_b64) || ducky_buf_adds(&input, ".") ||
	          add_claims(j, &input) || ducky_buf_add(out, input.data, input.len) ||
	          ducky_buf_adds(out, ".") || add_signature(j, &input, out);
	ducky_buf_free(&input);
	return bad ? sign_failed(j, err) : 0;
}

void ducky_jwt_free(ducky_jwt *j)
{
	EVP_PKEY_free(j->key);
	free(j->header_b64);
	free(j->what);
	free(j->iss);
	free(j->aud);
	memset(j, 0, sizeof *j);
}
