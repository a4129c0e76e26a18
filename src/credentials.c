/* The token request, the cache key, fingerprints, masking (see credentials.h). */
#include "credentials.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "http.h"

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

/* The body: the grant, the audience, the client's credentials where they go in
 * the body, token_params. */
static int build_body(ducky_creds *c, const ducky_creds_conf *conf)
{
	ducky_buf *b = &c->body;
	int json = conf->auth == DUCKY_AUTH_JSON;
	int in_body = conf->auth != DUCKY_AUTH_BASIC;
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
		      (in_body &&
		       (add_str(b, 0, "client_id", id) || add_str(b, 0, "client_secret", secret)));
	for (size_t i = 0; i < conf->nparams && !bad; i++) {
		const ducky_param *p = &conf->params[i];
		bad = add_field(b, json, p->name, p->name_len, p->value, p->value_len);
	}
	return bad || (json && ducky_buf_adds(b, "}"));
}

/* "Authorization: Basic base64(form(id):form(secret))" (RFC 6749 §2.3.1) in
 * line, its base64 part kept as a mask. */
static int basic_line(ducky_creds *c, const ducky_creds_conf *conf, ducky_buf *line)
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
		bad = ducky_buf_adds(line, "Authorization: Basic ") ||
		      ducky_buf_add(line, enc, (size_t)n) ||
		      ducky_buf_add(&c->masks[3], enc, (size_t)n);
		ducky_wipe(enc, (size_t)n);
	}
	free(enc);
	ducky_buf_free(&raw);
	return bad;
}

static int build_headers(ducky_creds *c, const ducky_creds_conf *conf)
{
	ducky_buf basic = {0};
	int bad = conf->auth == DUCKY_AUTH_BASIC && basic_line(c, conf, &basic);
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

/* The secret as given, JSON-escaped and form-encoded (the Basic form is added
 * by basic_line): a server that quotes any of them back has it masked. */
static int build_masks(ducky_creds *c, const char *secret)
{
	size_t n = strlen(secret);
	if (n == 0)
		return 0;
	int bad = ducky_buf_add(&c->masks[0], secret, n) ||
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
 * request says about the credential (its body and its Authorization line). */
static int make_key(ducky_creds *c, const ducky_creds_conf *conf)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	const char *auth = ducky_auth_names[conf->auth];
	int ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) &&
	         EVP_DigestUpdate(ctx, conf->token_url, strlen(conf->token_url) + 1) &&
	         EVP_DigestUpdate(ctx, auth, strlen(auth) + 1) &&
	         EVP_DigestUpdate(ctx, c->body.data, c->body.len + 1) &&
	         EVP_DigestUpdate(ctx, c->masks[3].data ? c->masks[3].data : "", c->masks[3].len) &&
	         EVP_DigestFinal_ex(ctx, md, &mdlen) && mdlen == 32;
	EVP_MD_CTX_free(ctx);
	if (ok)
		ducky_hex(md, mdlen, c->key);
	return !ok;
}

int ducky_creds_init(ducky_creds *c, const ducky_creds_conf *conf, ducky_err *err)
{
	memset(c, 0, sizeof *c);
	c->auth = conf->auth;
	c->complete = conf->client_id && conf->secret;
	if (!(c->token_url = ducky_strdup(conf->token_url)) || build_body(c, conf) ||
	    build_masks(c, conf->secret ? conf->secret : "") || build_headers(c, conf) ||
	    make_key(c, conf)) {
		ducky_creds_free(c);
		return ducky_fail(err, DUCKY_E_LIMIT, "out of memory");
	}
	return 0;
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
