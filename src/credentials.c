/* The token request, the cache key, fingerprints, masking (see credentials.h). */
#include "credentials.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "http.h"
#include "url.h"

const char *const ducky_auth_names[DUCKY_NAUTHS + 1] = {
#define DUCKY_AUTH_NAME(e, s) s,
    DUCKY_AUTHS(DUCKY_AUTH_NAME)
#undef DUCKY_AUTH_NAME
        NULL};

/* One field of the body: ,"k":"v" in JSON, &k=v in a form. */
static int add_field(ducky_buf *b, int json, const char *k, size_t kl, const char *v, size_t vl)
{
	if (json)
		return ducky_buf_adds(b, b->len > 1 ? "," : "") || ducky_buf_add_json(b, k, kl) ||
		       ducky_buf_adds(b, ":") || ducky_buf_add_json(b, v, vl);
	return ducky_buf_adds(b, b->len ? "&" : "") || ducky_buf_add_escaped(b, k, kl) ||
	       ducky_buf_adds(b, "=") || ducky_buf_add_escaped(b, v, vl);
}

static int add_str(ducky_buf *b, int json, const char *k, const char *v)
{
	return add_field(b, json, k, strlen(k), v, strlen(v));
}

#define ASSERTION_TYPE "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

/* The body: the grant, the audience, the client's credentials where they go in
 * the body, token_params (private_key_jwt: all but the assertion, in form). */
static int build_body(ducky_creds *c, const ducky_creds_conf *conf)
{
	int json = conf->auth == DUCKY_AUTH_JSON, jwt = conf->auth == DUCKY_AUTH_JWT;
	ducky_buf *b = jwt ? &c->form : &c->body;
	const char *id = conf->client_id ? conf->client_id : "";
	const char *secret = conf->secret ? conf->secret : "";
	int bad = json && ducky_buf_adds(b, "{");
	if (json)
		bad = bad || add_str(b, 1, "client_id", id) ||
		      add_str(b, 1, "client_secret", secret) ||
		      add_str(b, 1, "audience", conf->audience) ||
		      add_str(b, 1, "grant_type", "client_credentials");
	else
		bad = bad || add_str(b, 0, "grant_type", "client_credentials") ||
		      add_str(b, 0, "audience", conf->audience) ||
		      (conf->auth != DUCKY_AUTH_BASIC && add_str(b, 0, "client_id", id)) ||
		      (conf->auth == DUCKY_AUTH_FORM && add_str(b, 0, "client_secret", secret)) ||
		      (jwt && add_str(b, 0, "client_assertion_type", ASSERTION_TYPE));
	for (size_t i = 0; i < conf->nparams && !bad; i++) {
		const ducky_param *p = &conf->params[i];
		bad = add_field(b, json, p->name, p->name_len, p->value, p->value_len);
	}
	return bad || (json && ducky_buf_adds(b, "}"));
}

#define MAX_KEY 65536 /* bytes of a PEM private key file */

/* private_key_jwt: the key, from its text or its file, read once. A problem
 * with it is kept in c->problem for every exchange to give (ping needs none of
 * it); only running out of memory fails here. */
static int load_key(ducky_creds *c, const ducky_creds_conf *conf)
{
	ducky_buf pem = {0}, aud = {0};
	const char *problem = NULL, *file = conf->private_key_file;
	char *origin = NULL;
	int bad = 0;
	c->complete = 0;
	if (!conf->private_key && !file) {
		ducky_fail(&c->problem, DUCKY_E_CONFIG,
		           "no credentials: set client_id and private_key_file (or private_key, "
		           "or DUCKY_PRIVATE_KEY_FILE)");
		return 0;
	}
	if (file && ducky_read_private(file, MAX_KEY, &pem, 0, &problem)) {
		ducky_fail(&c->problem, DUCKY_E_CONFIG, "private_key_file %s %s",
		           ducky_path_shown(file, problem), problem);
		ducky_buf_free(&pem);
		return 0;
	}
	if (conf->assertion_audience) /* else Auth0's: the token URL's origin and "/" */
		bad = ducky_buf_adds(&aud, conf->assertion_audience);
	else
		bad = !(origin = ducky_url_origin(conf->token_url)) ||
		      ducky_buf_adds(&aud, origin) || ducky_buf_adds(&aud, "/");
	/* without a client id the key is still read and checked (ping needs
	 * neither; calls that need a token give "no credentials") */
	if (!bad && ducky_jwt_init(&c->jwt, file ? pem.data : conf->private_key,
	                           file ? pem.len : conf->private_key_len, file, conf->signing_alg,
	                           conf->key_id, conf->client_id ? conf->client_id : "", aud.data,
	                           &c->problem) == 0)
		c->complete = conf->client_id != NULL;
	bad = bad || c->problem.kind == DUCKY_E_LIMIT;
	free(origin);
	ducky_buf_free(&pem);
	ducky_buf_free(&aud);
	return bad;
}

/* The key's password for OpenSSL: the one given, or a failure (never a
 * prompt on the terminal); notes that the key asked for one. */
typedef struct key_password {
	const char *given;
	int asked;
} key_password;

static int give_password(char *buf, int size, int rwflag, void *u)
{
	key_password *p = u;
	size_t n = p->given ? strlen(p->given) : 0;
	(void)rwflag;
	p->asked = 1;
	if (!p->given || n > (size_t)size)
		return -1;
	memcpy(buf, p->given, n);
	return (int)n;
}

/* The certificate in cert (PEM text), or NULL. */
static X509 *parse_cert(const ducky_buf *cert)
{
	BIO *bio = cert->data ? BIO_new_mem_buf(cert->data, (int)cert->len) : NULL;
	X509 *x = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
	BIO_free(bio);
	return x;
}

/* The private key in pem (a PEM text), or NULL with *pw saying whether it
 * wanted a password. */
static EVP_PKEY *parse_key(const ducky_buf *pem, key_password *pw)
{
	BIO *bio = pem->data ? BIO_new_mem_buf(pem->data, (int)pem->len) : NULL;
	EVP_PKEY *key = bio ? PEM_read_bio_PrivateKey(bio, NULL, give_password, pw) : NULL;
	BIO_free(bio);
	return key;
}

/* The client key, from client_key (read into c->key_pem) or (without one)
 * from the certificate's own file, which must then be private too; NULL with
 * c->problem set. */
static EVP_PKEY *client_key(ducky_creds *c, const ducky_creds_conf *conf)
{
	const char *problem = NULL, *file = conf->client_key ? conf->client_key : conf->client_cert;
	const char *what = conf->client_key ? "client_key" : "client_cert";
	key_password pw = {.given = conf->client_key_password};
	EVP_PKEY *key = NULL;
	if (!conf->client_key || ducky_read_private(file, MAX_KEY, &c->key_pem, 0, &problem) == 0)
		key = parse_key(conf->client_key ? &c->key_pem : &c->cert_pem, &pw);
	if (problem)
		ducky_fail(&c->problem, DUCKY_E_CONFIG, "client_key %s %s",
		           ducky_path_shown(file, problem), problem);
	else if (!key && pw.asked)
		ducky_fail(&c->problem, DUCKY_E_CONFIG, "%s %s %s", what, file,
		           pw.given ? "cannot be decrypted with client_key_password"
		                    : "holds an encrypted key: set client_key_password");
	else if (!key)
		ducky_fail(&c->problem, DUCKY_E_CONFIG, "%s %s holds no PEM private key%s", what,
		           file, conf->client_key ? "" : ": set client_key to the key's file");
	else if (!conf->client_key && ducky_read_private(file, MAX_KEY, NULL, 1, &problem))
		ducky_fail(&c->problem, DUCKY_E_CONFIG,
		           "client_cert %s holds the private key, and %s", file, problem);
	if (c->problem.kind == DUCKY_OK)
		return key;
	EVP_PKEY_free(key);
	return NULL;
}

/* Any client presenting a certificate: the certificate and its key are read
 * once, into c->cert_pem and c->key_pem, and matched here, before any
 * handshake, so that a pair libcurl could not use is a config error naming
 * the file at fault. libcurl is given them from memory (its own reading of a
 * key file left the PEM text in a freed stdio buffer, never wiped). A key
 * must be the user's alone, as a key file is. */
static void check_client_key(ducky_creds *c, const ducky_creds_conf *conf)
{
	const char *problem = NULL, *cert_file = conf->client_cert;
	ducky_buf *pem = &c->cert_pem;
	X509 *cert = NULL;
	EVP_PKEY *key = NULL;
	if (!cert_file)
		ducky_fail(&c->problem, DUCKY_E_CONFIG, "client_key %s is set without client_cert",
		           conf->client_key);
	else if (ducky_read_private(cert_file, MAX_KEY, pem, 2, &problem))
		ducky_fail(&c->problem, DUCKY_E_CONFIG, "client_cert %s %s",
		           ducky_path_shown(cert_file, problem), problem);
	else if (!(cert = parse_cert(pem)) || !X509_digest(cert, EVP_sha256(), c->cert_hash, NULL))
		ducky_fail(&c->problem, DUCKY_E_CONFIG, "client_cert %s holds no PEM certificate",
		           cert_file);
	else if ((key = client_key(c, conf)) && X509_check_private_key(cert, key) != 1)
		ducky_fail(&c->problem, DUCKY_E_CONFIG,
		           "client_key %s is not the key of client_cert %s",
		           conf->client_key ? conf->client_key : cert_file, cert_file);
	EVP_PKEY_free(key);
	X509_free(cert);
	ERR_clear_error(); /* nothing of this for libcurl to read as its own error */
	if (c->problem.kind != DUCKY_OK) {
		c->complete = 0;
		c->cert_refused = 1;
		ducky_buf_free(&c->cert_pem); /* nothing to present */
		ducky_buf_free(&c->key_pem);
	}
}

/* base64(form(client_id) ":" form(secret)): the Basic credentials (RFC 6749
 * §2.3.1), into masks[3] whatever token_auth is (a server may quote any form). */
static int basic_mask(ducky_creds *c, const ducky_creds_conf *conf)
{
	ducky_buf raw = {0};
	unsigned char *enc = NULL;
	const char *id = conf->client_id ? conf->client_id : "";
	const char *secret = conf->secret ? conf->secret : "";
	int bad = ducky_buf_add_escaped(&raw, id, strlen(id)) || ducky_buf_add(&raw, ":", 1) ||
	          ducky_buf_add_escaped(&raw, secret, strlen(secret)) ||
	          !(enc = malloc(4 * ((raw.len + 2) / 3) + 1));
	if (!bad) {
		int n = EVP_EncodeBlock(enc, (unsigned char *)raw.data, (int)raw.len);
		bad = ducky_buf_add(&c->masks[3], enc, (size_t)n);
		ducky_wipe(enc, (size_t)n);
	}
	free(enc);
	ducky_buf_free(&raw);
	return bad;
}

static int build_headers(ducky_creds *c, const ducky_creds_conf *conf)
{
	ducky_buf basic = {0};
	int bad = conf->auth == DUCKY_AUTH_BASIC &&
	          (ducky_buf_adds(&basic, "Authorization: Basic ") ||
	           ducky_buf_add(&basic, c->masks[3].data, c->masks[3].len));
	const char *lines[] = {conf->auth == DUCKY_AUTH_JSON
	                           ? "Content-Type: application/json"
	                           : "Content-Type: application/x-www-form-urlencoded",
	                       "Accept: application/json",
	                       "Expect:",
	                       conf->ua_line,
	                       "Accept-Encoding: gzip, deflate",
	                       basic.data};
	for (size_t i = 0; i < sizeof lines / sizeof *lines && !bad; i++)
		if (lines[i])
			bad = ducky_headers_append(&c->headers, lines[i]);
	ducky_buf_free(&basic);
	return bad;
}

/* The secret as given, and as each token_auth sends it: JSON-escaped,
 * form-encoded, in the Basic credentials. A server that quotes any of them
 * back has it masked. */
static int build_masks(ducky_creds *c, const ducky_creds_conf *conf)
{
	const char *secret = conf->secret ? conf->secret : "";
	size_t n = strlen(secret);
	int bad = basic_mask(c, conf);
	if (n == 0 || bad)
		return bad;
	bad = ducky_buf_add(&c->masks[0], secret, n) ||
	      ducky_buf_add_json(&c->masks[1], secret, n) ||
	      ducky_buf_add_escaped(&c->masks[2], secret, n);
	if (!bad && c->masks[1].len >= 2) { /* without its quotes */
		memmove(c->masks[1].data, c->masks[1].data + 1, c->masks[1].len - 2);
		c->masks[1].len -= 2;
		c->masks[1].data[c->masks[1].len] = '\0';
	}
	return bad;
}

/* The cache key: a SHA-256 over the token URL, token_auth and everything the
 * request says about the credential (its body and its Authorization line),
 * the public key of private_key_jwt (never the private one) and its alg and
 * audience, the client certificate presented (itself, not its path: a file
 * renewed in place, or another at the same relative path, is another
 * certificate, and a token may be bound to it, RFC 8705 §3). */
static int make_key(ducky_creds *c, const ducky_creds_conf *conf)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	const char *auth = ducky_auth_names[conf->auth];
	const ducky_buf *body = conf->auth == DUCKY_AUTH_JWT ? &c->form : &c->body;
	const char *aud = c->jwt.aud ? c->jwt.aud : "";
	const char *kid_part = c->jwt.header_b64 ? c->jwt.header_b64 : ""; /* alg and kid */
	int ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) &&
	         EVP_DigestUpdate(ctx, conf->token_url, strlen(conf->token_url) + 1) &&
	         EVP_DigestUpdate(ctx, auth, strlen(auth) + 1) &&
	         EVP_DigestUpdate(ctx, body->data ? body->data : "", body->len + 1) &&
	         EVP_DigestUpdate(ctx, c->masks[3].data ? c->masks[3].data : "", c->masks[3].len) &&
	         EVP_DigestUpdate(ctx, c->jwt.pub_hash, sizeof c->jwt.pub_hash) &&
	         EVP_DigestUpdate(ctx, &c->jwt.alg, sizeof c->jwt.alg) &&
	         EVP_DigestUpdate(ctx, kid_part, strlen(kid_part) + 1) &&
	         EVP_DigestUpdate(ctx, aud, strlen(aud) + 1) &&
	         EVP_DigestUpdate(ctx, c->cert_hash, sizeof c->cert_hash) &&
	         EVP_DigestFinal_ex(ctx, md, &mdlen) && mdlen == 32;
	EVP_MD_CTX_free(ctx);
	if (ok)
		ducky_hex(md, mdlen, c->key);
	return !ok;
}

/* Everything of the request and the key; 0, or -1 out of memory. */
static int build(ducky_creds *c, const ducky_creds_conf *conf)
{
	/* json, form, basic: a client_id and a secret; tls_client_auth: a client_id
	 * (the certificate is the server's to judge); private_key_jwt: a key too */
	c->complete = conf->client_id && (conf->secret || conf->auth == DUCKY_AUTH_MTLS);
	int with_secret = conf->auth <= DUCKY_AUTH_BASIC;
	int bad = !(c->token_url = ducky_strdup(conf->token_url)) || build_body(c, conf) ||
	          (with_secret && build_masks(c, conf)) || build_headers(c, conf) ||
	          (conf->auth == DUCKY_AUTH_JWT && load_key(c, conf));
	if (!bad && (conf->client_cert || conf->client_key)) /* any client presenting one */
		check_client_key(c, conf);
	if (!c->complete && c->problem.kind == DUCKY_OK)
		ducky_fail(&c->problem, DUCKY_E_CONFIG, "no credentials: set client_id%s",
		           conf->auth >= DUCKY_AUTH_JWT /* the key or certificate is there */
		               ? " (or DUCKY_CLIENT_ID)"
		               : " and client_secret (or DUCKY_CLIENT_ID and DUCKY_CLIENT_SECRET)");
	return bad || make_key(c, conf);
}

/* client_secret_file: the secret read into secret (C memory, wiped by the
 * caller); 0, or -1 with a problem kept for the exchanges. */
static int read_secret(ducky_creds *c, const char *file, ducky_buf *secret)
{
	const char *problem;
	if (ducky_read_private(file, MAX_KEY, secret, 0, &problem) == 0) {
		while (secret->len && (secret->data[secret->len - 1] == '\n' ||
		                       secret->data[secret->len - 1] == '\r'))
			secret->data[--secret->len] = '\0'; /* the file's last line break */
		if (secret->data && strlen(secret->data) == secret->len)
			return 0;
		problem = secret->data ? "holds NUL" : "is empty";
	}
	ducky_fail(&c->problem, DUCKY_E_CONFIG, "client_secret_file %s %s",
	           ducky_path_shown(file, problem), problem);
	return -1;
}

int ducky_creds_init(ducky_creds *c, const ducky_creds_conf *given, ducky_err *err)
{
	ducky_creds_conf conf = *given;
	ducky_buf secret = {0};
	memset(c, 0, sizeof *c);
	ducky_err_init(&c->problem);
	c->auth = conf.auth;
	if (!conf.secret && conf.secret_file && read_secret(c, conf.secret_file, &secret) == 0)
		conf.secret = secret.data;
	int bad = build(c, &conf);
	ducky_buf_free(&secret);
	if (bad) {
		ducky_creds_free(c);
		return ducky_fail(err, DUCKY_E_LIMIT, "out of memory");
	}
	return 0;
}

int ducky_creds_next(ducky_creds *c, ducky_err *err)
{
	if (c->problem.kind != DUCKY_OK) {
		ducky_err_copy(err, &c->problem);
		return -1;
	}
	if (c->auth != DUCKY_AUTH_JWT)
		return 0;
	c->body.len = 0;
	if (ducky_buf_add(&c->body, c->form.data, c->form.len) ||
	    ducky_buf_adds(&c->body, "&client_assertion="))
		return ducky_fail(err, DUCKY_E_LIMIT, "out of memory");
	size_t at = c->body.len;
	if (ducky_jwt_sign(&c->jwt, &c->body, err)) /* base64url: nothing to escape */
		return -1;
	/* a server that quotes the assertion back has it masked, like a secret */
	c->masks[0].len = 0;
	return ducky_buf_add(&c->masks[0], c->body.data + at, c->body.len - at)
	           ? ducky_fail(err, DUCKY_E_LIMIT, "out of memory")
	           : 0;
}

void ducky_creds_free(ducky_creds *c)
{
	free(c->token_url);
	c->token_url = NULL;
	ducky_buf_free(&c->body);
	ducky_headers_free(c->headers);
	c->headers = NULL;
	for (int i = 0; i < DUCKY_MASKS; i++)
		ducky_buf_free(&c->masks[i]);
	ducky_buf_free(&c->form);
	ducky_buf_free(&c->cert_pem);
	ducky_buf_free(&c->key_pem);
	ducky_jwt_free(&c->jwt);
	ducky_err_clear(&c->problem);
	c->complete = 0;
}

/* Masks every occurrence of each form of the secret in s. */
char *ducky_creds_scrub(const ducky_creds *c, const char *text)
{
	char *out = ducky_strdup(text);
	size_t n = out ? strlen(out) : 0;
	for (int m = 0; m < DUCKY_MASKS; m++) {
		size_t k = c->masks[m].len;
		for (size_t i = 0; k && i + k <= n; i++)
			if (memcmp(out + i, c->masks[m].data, k) == 0)
				memset(out + i, '*', k);
	}
	return out;
}

void ducky_fingerprint(const char *token, size_t len, char out[13])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	out[0] = '\0';
	if (EVP_Digest(token, len, md, &n, EVP_sha256(), NULL) && n >= 6)
		ducky_hex(md, 6, out);
}
