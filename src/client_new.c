/* The client's constructor: one options table ({name, types, DUCKY_* variable,
 * range}) drives checking, defaults and the environment; then the
 * credentials, the headers, the token store and the transport, in that order,
 * onto a client that is safe to close at every step. */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "client.h"
#include "exports.h"
#include "url.h"
#include "version.h"

/* What the options say, before the client takes it over. */
typedef struct options {
	const char *client_id, *client_secret, *client_secret_file, *base_url, *token_url,
	    *audience, *token_auth;
	const char *ca_file, *ca_path, *proxy, *user_agent, *http_version;
	const char *private_key, *private_key_file, *key_id, *signing_alg, *assertion_audience;
	const char *client_cert, *client_key, *client_key_password;
	double timeout, connect_timeout, retries, refresh_margin, auth_backoff, max_per_hour,
	    max_retry_after, max_body;
	int insecure;
	int headers, token_params, token_cache, log; /* stack indexes, 0: unset */
} options;

#define S  CL_T(LUA_TSTRING)
#define N  CL_T(LUA_TNUMBER)
#define SD (S | CL_SHOWN) /* shown by ducky.defaults() */
#define ND (N | CL_SHOWN)
#define O(name, types, env, lo, hi, field)                                                         \
	{                                                                                          \
		name, types, env, lo, hi, offsetof(options, field)                                 \
	}
/* Every option of the contract: its types, its DUCKY_* variable, its range. */
static const cl_opt client_opts[] = {
    O("client_id", S | CL_BLANK, "DUCKY_CLIENT_ID", 0, 0, client_id),
    O("client_secret", S | CL_BLANK, "DUCKY_CLIENT_SECRET", 0, 0, client_secret),
    O("client_secret_file", S | CL_BLANK, "DUCKY_CLIENT_SECRET_FILE", 0, 0, client_secret_file),
    O("base_url", SD, "DUCKY_BASE_URL", 0, 0, base_url),
    O("token_url", SD, "DUCKY_TOKEN_URL", 0, 0, token_url),
    O("audience", SD, "DUCKY_AUDIENCE", 0, 0, audience),
    O("token_auth", SD, "DUCKY_TOKEN_AUTH", 0, 0, token_auth),
    O("timeout", ND, "DUCKY_TIMEOUT", 0.001, 1e6, timeout),
    O("connect_timeout", ND, "DUCKY_CONNECT_TIMEOUT", 0.001, 1e6, connect_timeout),
    O("retries", ND | CL_INT, "DUCKY_RETRIES", 0, 100, retries),
    O("refresh_margin", ND, NULL, 0, 1e9, refresh_margin),
    O("token_cache", CL_T(LUA_TBOOLEAN) | S | CL_T(LUA_TTABLE), NULL, 0, 0, token_cache),
    O("ca_file", S, "DUCKY_CA_FILE", 0, 0, ca_file),
    O("ca_path", S, "DUCKY_CA_PATH", 0, 0, ca_path),
    O("insecure", CL_T(LUA_TBOOLEAN), "DUCKY_INSECURE", 0, 0, insecure),
    O("proxy", S, "DUCKY_PROXY", 0, 0, proxy),
    O("user_agent", S, NULL, 0, 0, user_agent),
    O("headers", CL_T(LUA_TTABLE), NULL, 0, 0, headers),
    O("max_body", ND | CL_INT, "DUCKY_MAX_BODY", 1, 1e15, max_body),
    O("token_params", CL_T(LUA_TTABLE), NULL, 0, 0, token_params),
    O("auth_backoff", ND, NULL, 0, 1e9, auth_backoff),
    O("max_exchanges_per_hour", ND | CL_INT, NULL, 1, 1e6, max_per_hour),
    O("max_retry_after", ND, NULL, 0, 1e6, max_retry_after),
    O("log", CL_T(LUA_TFUNCTION), NULL, 0, 0, log),
    O("http_version", SD, NULL, 0, 0, http_version),
    O("private_key", S | CL_BLANK, NULL, 0, 0, private_key),
    O("private_key_file", S | CL_BLANK, "DUCKY_PRIVATE_KEY_FILE", 0, 0, private_key_file),
    O("key_id", S, "DUCKY_KEY_ID", 0, 0, key_id),
    O("signing_alg", SD, "DUCKY_SIGNING_ALG", 0, 0, signing_alg),
    O("assertion_audience", S, "DUCKY_ASSERTION_AUDIENCE", 0, 0, assertion_audience),
    O("client_cert", S, "DUCKY_CLIENT_CERT", 0, 0, client_cert),
    O("client_key", S, "DUCKY_CLIENT_KEY", 0, 0, client_key),
    O("client_key_password", S, "DUCKY_CLIENT_KEY_PASSWORD", 0, 0, client_key_password),
    {NULL, 0, NULL, 0, 0, 0},
};
#undef O
#undef ND
#undef SD
#undef N
#undef S

static const options defaults = {
    .base_url = DEFAULT_BASE_URL,
    .token_url = DEFAULT_TOKEN_URL,
    .audience = DEFAULT_AUDIENCE,
    .token_auth = "json",
    .http_version = "2",
    .signing_alg = "RS256",
    .timeout = 30,
    .connect_timeout = 10,
    .retries = 2,
    .refresh_margin = 60,
    .auth_backoff = 60,
    .max_per_hour = 20,
    .max_retry_after = 30,
    .max_body = 64.0 * 1024 * 1024,
};

static const char *const http_versions[] = {"2", "1.1", "2-prior-knowledge", NULL};

/* The index of v among choices (NULL-terminated); else raises naming them. */
static int choice(lua_State *L, const char *name, const char *const choices[], const char *v)
{
	int i, n = 0;
	for (i = 0; choices[i]; i++)
		if (strcmp(choices[i], v) == 0)
			return i;
	for (i = 0; choices[i]; i++, n++)
		lua_pushfstring(L, "%s\"%s\"", i ? (choices[i + 1] ? ", " : " or ") : "",
		                choices[i]);
	lua_concat(L, n);
	return luaL_error(L, "ducky.client: option '%s' must be %s, not \"%s\"", name,
	                  lua_tostring(L, -1), v);
}

static char *dup_or_raise(lua_State *L, const char *s)
{
	char *d = ducky_strdup(s);
	if (s && !d)
		luaL_error(L, "out of memory");
	return d;
}

static int cmp_param(const void *a, const void *b)
{
	const ducky_param *x = a, *y = b;
	return cl_cmp_lstr(x->name, x->name_len, y->name, y->name_len);
}

/* token_params as a sorted array, so equal tables make equal requests and
 * cache keys. The array and the strings of number values are kept alive by a
 * table left on the stack. */
static ducky_param *read_params(lua_State *L, int t, size_t *n)
{
	size_t count = 0, i = 0;
	*n = 0;
	if (!t)
		return NULL;
	lua_pushnil(L);
	while (lua_next(L, t)) {
		if (lua_type(L, -2) != LUA_TSTRING ||
		    (lua_type(L, -1) != LUA_TSTRING && lua_type(L, -1) != LUA_TNUMBER))
			luaL_error(L, "ducky.client: token_params must map strings to strings or "
			              "numbers");
		lua_pop(L, 1);
		count++;
	}
	lua_createtable(L, (int)count + 1, 0);
	ducky_param *p = ducky_newuserdata(L, count ? count * sizeof *p : 1);
	lua_rawseti(L, -2, (int)count + 1);
	for (lua_pushnil(L); lua_next(L, t); i++) {
		p[i].name = lua_tolstring(L, -2, &p[i].name_len);
		p[i].value = lua_tolstring(L, -1, &p[i].value_len); /* a number: a string now */
		lua_rawseti(L, -3, (int)i + 1);                     /* kept in the holder */
	}
	qsort(p, count, sizeof *p, cmp_param);
	*n = count;
	return p;
}

/* A safe, closable empty client on top, before anything is allocated for it. */
static client *new_client(lua_State *L)
{
	client *c = ducky_newuserdata(L, sizeof *c);
	memset(c, 0, sizeof *c);
	c->ref_log = c->ref_store = c->ref_limits = LUA_NOREF;
	c->files.dirfd = c->files.lockfd = -1; /* no descriptor is ours yet, not even 0 */
	luaL_getmetatable(L, CLIENT_MT);
	lua_setmetatable(L, -2);
	return c;
}

/* The URLs, the credentials and the token request. */
static void setup_credentials(lua_State *L, client *c, const options *o, const char *ua_line)
{
	if (!ducky_url_check(o->base_url))
		luaL_error(L, "ducky.client: base_url is not an http(s) URL: %s", o->base_url);
	if (!ducky_url_check(o->token_url))
		luaL_error(L, "ducky.client: token_url is not an http(s) URL: %s", o->token_url);
	/* a secret or a token in clear across the network only when asked for */
	if (!o->insecure && ducky_url_cleartext(o->token_url))
		luaL_error(L,
		           "ducky.client: token_url is plain http to another machine: the client "
		           "credentials would cross the network unencrypted (use https; "
		           "insecure = true allows it)");
	if (!o->insecure && ducky_url_cleartext(o->base_url))
		luaL_error(L,
		           "ducky.client: base_url is plain http to another machine: the bearer "
		           "token would cross the network unencrypted (use https; insecure = true "
		           "allows it)");
	int auth = choice(L, "token_auth", ducky_auth_names, o->token_auth);
	int alg = choice(L, "signing_alg", ducky_jwt_alg_names, o->signing_alg);
	c->base_url = dup_or_raise(L, o->base_url);
	for (size_t n = strlen(c->base_url); n > 0 && c->base_url[n - 1] == '/'; n--)
		c->base_url[n - 1] = '\0';
	c->client_id = dup_or_raise(L, o->client_id);
	size_t nparams;
	const ducky_param *params = read_params(L, o->token_params, &nparams);
	ducky_creds_conf cc = {
	    .auth = (ducky_auth)auth,
	    .token_url = o->token_url,
	    .audience = o->audience,
	    .ua_line = ua_line,
	    .client_id = o->client_id,
	    .secret = o->client_secret,
	    .secret_file = o->client_secret_file,
	    .params = params,
	    .nparams = nparams,
	    .private_key = o->private_key,
	    .private_key_len = o->private_key ? strlen(o->private_key) : 0,
	    .private_key_file = o->private_key_file,
	    .key_id = o->key_id,
	    .assertion_audience = o->assertion_audience,
	    .signing_alg = (ducky_jwt_alg)alg,
	    .client_cert = o->client_cert,
	    .client_key = o->client_key,
	    .client_key_password = o->client_key_password,
	};
	ducky_err err;
	ducky_err_init(&err);
	if (ducky_creds_init(&c->creds, &cc, &err)) {
		ducky_err_clear(&err);
		luaL_error(L, "out of memory");
	}
}

/* The headers of every API request: the user's, then User-Agent and
 * Accept-Encoding unless given (libcurl adds Accept; "Expect:" goes with a body). */
static void setup_headers(lua_State *L, client *c, const options *o, const char *ua_line)
{
	if (o->headers)
		cl_add_headers(L, o->headers, &c->api_headers, "ducky.client");
	if (ducky_headers_has(c->api_headers, "Authorization:"))
		luaL_error(L,
		           "ducky.client: headers: Authorization is ducky's to send (the token); "
		           "send your own on a request with auth = false");
	if (ducky_headers_add_default(&c->api_headers, ua_line) ||
	    ducky_headers_add_default(&c->api_headers, "Accept-Encoding: gzip, deflate"))
		luaL_error(L, "out of memory");
}

/* token_cache: nil, the per-user file store; a path; false, memory only; a table. */
static void setup_store(lua_State *L, client *c, const options *o)
{
	int t = o->token_cache;
	if (t && lua_istable(L, t)) {
		lua_getfield(L, t, "load");
		lua_getfield(L, t, "store");
		if (lua_type(L, -1) != LUA_TFUNCTION || lua_type(L, -2) != LUA_TFUNCTION)
			luaL_error(
			    L, "ducky.client: token_cache table needs load and store functions");
		lua_getfield(L, t, "lock");
		lua_getfield(L, t, "unlock");
		c->store_locks = lua_type(L, -2) == LUA_TFUNCTION;
		if (c->store_locks != (lua_type(L, -1) == LUA_TFUNCTION))
			luaL_error(L, "ducky.client: token_cache lock and unlock go together");
		lua_pop(L, 4);
		lua_pushvalue(L, t);
		c->ref_store = luaL_ref(L, LUA_REGISTRYINDEX);
		c->store_kind = STORE_LUA;
		return;
	}
	size_t len;
	if (t && lua_type(L, t) == LUA_TSTRING && strlen(lua_tolstring(L, t, &len)) != len)
		luaL_error(L, "ducky.client: option 'token_cache' holds NUL");
	if (t && lua_toboolean(L, t) && !lua_isstring(L, t))
		luaL_error(L,
		           "ducky.client: option 'token_cache' must be false, a path or a table, "
		           "not true");
	c->store_kind = STORE_MEMORY;
	if ((!t || lua_type(L, t) == LUA_TSTRING) &&
	    ducky_store_init(&c->files, t ? lua_tostring(L, t) : NULL, &c->store_problem) == 0)
		c->store_kind = STORE_FILE;
}

/* The client key's password: "" for a key given without one, so that OpenSSL
 * fails instead of prompting on the terminal. */
static const char *key_password(const client *c, const options *o)
{
	if (o->client_key_password || !c->creds.cert_pem.len)
		return o->client_key_password;
	return "";
}

/* The proxy's exceptions. A plain-http URL is allowed because it stays on
 * this machine (localhost, 127/8, [::1]); a proxy, from the environment's
 * http_proxy or the proxy option, may be another machine, and would carry the
 * client secret or the token there in clear: such a URL never goes through
 * one. The environment's no_proxy is kept ("*", no proxy at all, as it is).
 * NULL: nothing to add, libcurl reads no_proxy itself. */
static char *no_proxy_list(lua_State *L, const options *o)
{
	const char *env = getenv("no_proxy");
	ducky_buf hosts = {0}, list = {0};
	if (!env || !*env)
		env = getenv("NO_PROXY");
	int bad = ducky_url_add_local_http_host(&hosts, o->token_url) ||
	          ducky_url_add_local_http_host(&hosts, o->base_url);
	if (!bad && hosts.len && !(env && strcmp(env, "*") == 0))
		bad = (env && *env && (ducky_buf_adds(&list, env) || ducky_buf_adds(&list, ","))) ||
		      ducky_buf_add(&list, hosts.data, hosts.len);
	ducky_buf_free(&hosts);
	if (bad) {
		ducky_buf_free(&list);
		luaL_error(L, "out of memory");
	}
	return list.data; /* the client frees it */
}

/* The transport: TLS, proxy, HTTP version, body limit (the engine's handles
 * are made when the first call needs them). */
static void setup_http(lua_State *L, client *c, const options *o)
{
	static const long curl_versions[] = {CURL_HTTP_VERSION_2TLS, CURL_HTTP_VERSION_1_1,
	                                     CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE};
	c->ca_file = dup_or_raise(L, o->ca_file);
	c->ca_path = dup_or_raise(L, o->ca_path);
	c->proxy = dup_or_raise(L, o->proxy);
	c->no_proxy = no_proxy_list(L, o);
	/* the certificate and key as read by the credentials (a refused pair is
	 * not presented: calls that need a token give the config error); a key
	 * without a password gets "": OpenSSL must not prompt on the terminal for one */
	c->key_password = dup_or_raise(L, key_password(c, o));
	c->conf = (ducky_http_conf){
	    .ca_file = c->ca_file,
	    .ca_path = c->ca_path,
	    .proxy = c->proxy,
	    .no_proxy = c->no_proxy,
	    .client_cert = &c->creds.cert_pem,
	    .client_key = &c->creds.key_pem,
	    .key_password = c->key_password,
	    .insecure = o->insecure,
	    .max_body = (size_t)o->max_body,
	    .http_version =
	        curl_versions[choice(L, "http_version", http_versions, o->http_version)],
	};
	ducky_err err;
	ducky_err_init(&err);
	if (ducky_global_init(&err)) {
		lua_pushstring(L, err.message ? err.message : "out of memory");
		ducky_err_clear(&err);
		lua_error(L);
	}
}

int cl_new(lua_State *L)
{
	options o = defaults;
	if (lua_isnoneornil(L, 1)) {
		lua_settop(L, 0);
		lua_newtable(L);
	}
	if (!lua_istable(L, 1))
		return luaL_error(L, "ducky.client: options must be a table, not %s",
		                  luaL_typename(L, 1));
	lua_settop(L, 1);
	cl_read_options(L, 1, client_opts, &o, "ducky.client");
	const char *agent = o.user_agent
	                        ? o.user_agent
	                        : lua_pushfstring(L, "ducky-lua/%s libcurl/%s", DUCKY_VERSION,
	                                          curl_version_info(CURLVERSION_NOW)->version);
	if (cl_has_ctl(agent, strlen(agent)))
		return luaL_error(L, "ducky.client: user_agent holds CR, LF or NUL");
	const char *ua_line = lua_pushfstring(L, "User-Agent: %s", agent);

	client *c = new_client(L);
	int self = lua_gettop(L);
	c->lim = (limits){
	    .timeout = o.timeout,
	    .connect_timeout = o.connect_timeout,
	    .refresh_margin = o.refresh_margin,
	    .auth_backoff = o.auth_backoff,
	    .max_retry_after = o.max_retry_after,
	    .retries = (int)o.retries,
	    .max_per_hour = (int)o.max_per_hour,
	};
	setup_credentials(L, c, &o, ua_line);
	setup_headers(L, c, &o, ua_line);
	setup_store(L, c, &o);
	setup_http(L, c, &o);
	if (o.log) {
		lua_pushvalue(L, o.log);
		c->ref_log = luaL_ref(L, LUA_REGISTRYINDEX);
	}
	lua_pushvalue(L, self);
	return 1;
}

/* n as an integer when it is one (retries = 2, not 2.0). */
static void push_number(lua_State *L, double n)
{
	if (n == (double)(lua_Integer)n && n > -9007199254740992.0 && n < 9007199254740992.0)
		lua_pushinteger(L, (lua_Integer)n);
	else
		lua_pushnumber(L, n);
}

/* ducky.defaults(): what a client made without options would use, the
 * DUCKY_* variables applied and checked as ducky.client checks them; the
 * options marked CL_SHOWN, from the one table and the one set of defaults. */
int cl_defaults(lua_State *L)
{
	options o = defaults;
	lua_settop(L, 0);
	lua_newtable(L);
	cl_read_options(L, 1, client_opts, &o, "ducky.defaults");
	choice(L, "token_auth", ducky_auth_names, o.token_auth);
	choice(L, "signing_alg", ducky_jwt_alg_names, o.signing_alg);
	choice(L, "http_version", http_versions, o.http_version);
	lua_newtable(L);
	for (const cl_opt *op = client_opts; op->name; op++) {
		const char *at = (const char *)&o + op->off;
		if (!(op->types & CL_SHOWN))
			continue;
		if (CL_TYPES(op) == CL_T(LUA_TSTRING))
			lua_pushstring(L, *(const char *const *)(const void *)at);
		else
			push_number(L, *(const double *)(const void *)at);
		lua_setfield(L, -2, op->name);
	}
	return 1;
}
