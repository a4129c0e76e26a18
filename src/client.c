/* The client: the guard, log events, JSON, options, the constructor, close,
 * tostring and stats. */
#include <ctype.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "lua_error.h"
#include "url.h"
#include "version.h"

const char *const cl_source_names[SRC_COUNT] = {"memory", "exchange", "file", "store"};

/* ---- the guard ------------------------------------------------------- */

client *cl_client(lua_State *L, const char *method)
{
	client *c = ducky_testudata(L, 1, CLIENT_MT);
	if (!c)
		luaL_error(L, "client:%s: call it on a ducky.client, as client:%s(…), not on a %s",
		           method, method, luaL_typename(L, 1));
	return c;
}

client *cl_check(lua_State *L, const char *method)
{
	client *c = cl_client(L, method);
	if (c->closed)
		luaL_error(L, "client:%s: attempt to use a closed ducky client", method);
	if (c->busy)
		luaL_error(L,
		           "client:%s: a ducky client cannot be used while one of its calls is "
		           "under way (from its own log or token_cache callbacks, a metamethod "
		           "or a finalizer)",
		           method);
	return c;
}

static void close_client(lua_State *L, client *c);

/* Runs body with the client (at 1) marked busy from its first argument to its
 * last result: Lua code that runs meanwhile (a callback, a metamethod of an
 * argument, any finalizer the collector calls) cannot reenter the client, and a
 * close() it asks for waits for the call to end. The mark is cleared on every
 * path, raises included: body runs protected and its error is raised again. */
int cl_guarded(lua_State *L, lua_CFunction body, const char *method)
{
	client *c = cl_check(L, method);
	lua_pushcfunction(L, body); /* may raise: before the mark */
	lua_insert(L, 1);
	c->busy = 1;
	int rc = lua_pcall(L, lua_gettop(L) - 1, LUA_MULTRET, 0);
	c->busy = 0;
	if (c->close_pending)
		close_client(L, c);
	return rc == 0 ? lua_gettop(L) : lua_error(L);
}

/* ---- log events, called protected and outside libcurl ----------------- */

static void set_str(lua_State *L, const char *k, const char *v)
{
	if (v) {
		lua_pushstring(L, v);
		lua_setfield(L, -2, k);
	}
}

static void set_num(lua_State *L, const char *k, const double *v)
{
	if (v) {
		lua_pushnumber(L, *v);
		lua_setfield(L, -2, k);
	}
}

static int call_log(lua_State *L)
{
	const cl_run *r = lua_touserdata(L, 1);
	const event *ev = lua_touserdata(L, 2);
	lua_rawgeti(L, LUA_REGISTRYINDEX, r->c->ref_log);
	lua_createtable(L, 0, 5);
	set_str(L, "event", ev->event);
	set_str(L, "source", ev->source);
	set_str(L, "reason", ev->reason);
	set_str(L, "fingerprint", ev->fingerprint);
	set_num(L, "seconds_left", ev->seconds_left);
	set_num(L, "wait", ev->wait);
	if (ev->attempt) {
		lua_pushinteger(L, ev->attempt);
		lua_setfield(L, -2, "attempt");
	}
	lua_call(L, 1, 0);
	return 0;
}

void cl_emit(const cl_run *r, const event *ev)
{
	lua_State *L = r->L;
	if (r->c->ref_log == LUA_NOREF)
		return;
	lua_pushcfunction(L, call_log);
	lua_pushlightuserdata(L, (void *)r);
	lua_pushlightuserdata(L, (void *)ev);
	if (lua_pcall(L, 2, 0, 0) != 0)
		lua_pop(L, 1); /* an error inside the user's log function is ignored */
}

void cl_on_retry(void *run, const ducky_retry_event *ev)
{
	const cl_run *r = run;
	r->c->st.retries++;
	cl_emit(r, &(event){.event = "retry",
	                    .reason = ev->reason,
	                    .attempt = ev->attempt,
	                    .wait = &ev->wait});
}

/* ---- JSON through lua-cjson ------------------------------------------- */

int cl_json_decode(lua_State *L, const client *c, const char *s, size_t n)
{
	lua_rawgeti(L, LUA_REGISTRYINDEX, c->ref_decode);
	lua_pushlstring(L, s, n);
	if (lua_pcall(L, 1, 1, 0) != 0) {
		lua_pop(L, 1);
		return 0;
	}
	return 1;
}

int cl_push_error(lua_State *L, client *c, ducky_err *err)
{
	c->st.errors++;
	lua_pushnil(L);
	ducky_error_push(L, err);
	ducky_err_clear(err);
	return 2;
}

/* ---- the constructor -------------------------------------------------- */

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

#define S CL_T(LUA_TSTRING)
#define N CL_T(LUA_TNUMBER)
#define O(name, types, env, lo, hi, field)                                                         \
	{                                                                                          \
		name, types, env, lo, hi, offsetof(options, field)                                 \
	}
/* Every option of the contract: its types, its DUCKY_* variable, its range. */
static const cl_opt client_opts[] = {
    O("client_id", S, "DUCKY_CLIENT_ID", 0, 0, client_id),
    O("client_secret", S, "DUCKY_CLIENT_SECRET", 0, 0, client_secret),
    O("client_secret_file", S, "DUCKY_CLIENT_SECRET_FILE", 0, 0, client_secret_file),
    O("base_url", S, "DUCKY_BASE_URL", 0, 0, base_url),
    O("token_url", S, "DUCKY_TOKEN_URL", 0, 0, token_url),
    O("audience", S, "DUCKY_AUDIENCE", 0, 0, audience),
    O("token_auth", S, "DUCKY_TOKEN_AUTH", 0, 0, token_auth),
    O("timeout", N, "DUCKY_TIMEOUT", 0.001, 1e6, timeout),
    O("connect_timeout", N, "DUCKY_CONNECT_TIMEOUT", 0.001, 1e6, connect_timeout),
    O("retries", N, "DUCKY_RETRIES", 0, 100, retries),
    O("refresh_margin", N, NULL, 0, 1e9, refresh_margin),
    O("token_cache", CL_T(LUA_TBOOLEAN) | S | CL_T(LUA_TTABLE), NULL, 0, 0, token_cache),
    O("ca_file", S, "DUCKY_CA_FILE", 0, 0, ca_file),
    O("ca_path", S, "DUCKY_CA_PATH", 0, 0, ca_path),
    O("insecure", CL_T(LUA_TBOOLEAN), "DUCKY_INSECURE", 0, 0, insecure),
    O("proxy", S, "DUCKY_PROXY", 0, 0, proxy),
    O("user_agent", S, NULL, 0, 0, user_agent),
    O("headers", CL_T(LUA_TTABLE), NULL, 0, 0, headers),
    O("max_body", N, "DUCKY_MAX_BODY", 1, 1e15, max_body),
    O("token_params", CL_T(LUA_TTABLE), NULL, 0, 0, token_params),
    O("auth_backoff", N, NULL, 0, 1e9, auth_backoff),
    O("max_exchanges_per_hour", N, NULL, 1, 1e6, max_per_hour),
    O("max_retry_after", N, NULL, 0, 1e6, max_retry_after),
    O("log", CL_T(LUA_TFUNCTION), NULL, 0, 0, log),
    O("http_version", S, NULL, 0, 0, http_version),
    O("private_key", S, NULL, 0, 0, private_key),
    O("private_key_file", S, "DUCKY_PRIVATE_KEY_FILE", 0, 0, private_key_file),
    O("key_id", S, "DUCKY_KEY_ID", 0, 0, key_id),
    O("signing_alg", S, "DUCKY_SIGNING_ALG", 0, 0, signing_alg),
    O("assertion_audience", S, "DUCKY_ASSERTION_AUDIENCE", 0, 0, assertion_audience),
    O("client_cert", S, "DUCKY_CLIENT_CERT", 0, 0, client_cert),
    O("client_key", S, "DUCKY_CLIENT_KEY", 0, 0, client_key),
    O("client_key_password", S, "DUCKY_CLIENT_KEY_PASSWORD", 0, 0, client_key_password),
    {NULL, 0, NULL, 0, 0, 0},
};
#undef O
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

/* Byte order of Lua strings, NUL included. */
static int cmp_param(const void *a, const void *b)
{
	const ducky_param *x = a, *y = b;
	size_t n = x->name_len < y->name_len ? x->name_len : y->name_len;
	int c = memcmp(x->name, y->name, n);
	return c ? c : (x->name_len > y->name_len) - (x->name_len < y->name_len);
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
	c->ref_log = c->ref_store = c->ref_limits = c->ref_encode = c->ref_decode = LUA_NOREF;
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
	if (o->client_key_password || !o->client_key || c->creds.cert_refused)
		return o->client_key_password;
	return "";
}

/* The transport: TLS, proxy, HTTP version, body limit; the handle for single calls. */
static void setup_http(lua_State *L, client *c, const options *o)
{
	static const char *const versions[] = {"2", "1.1", "2-prior-knowledge", NULL};
	static const long curl_versions[] = {CURL_HTTP_VERSION_2TLS, CURL_HTTP_VERSION_1_1,
	                                     CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE};
	c->conf = (ducky_http_conf){
	    .ca_file = dup_or_raise(L, o->ca_file),
	    .ca_path = dup_or_raise(L, o->ca_path),
	    .proxy = dup_or_raise(L, o->proxy),
	    .insecure = o->insecure,
	    .max_body = (size_t)o->max_body,
	    /* a refused certificate or key is not presented (calls that need a token
	     * give the config error); a key without a password gets "": OpenSSL
	     * must not prompt on the terminal for one */
	    .client_cert = c->creds.cert_refused ? NULL : dup_or_raise(L, o->client_cert),
	    .client_key = c->creds.cert_refused ? NULL : dup_or_raise(L, o->client_key),
	    .key_password = dup_or_raise(L, key_password(c, o)),
	    .http_version = curl_versions[choice(L, "http_version", versions, o->http_version)],
	};
	ducky_err err;
	ducky_err_init(&err);
	if (ducky_http_open(&c->http, &c->conf, &err)) {
		lua_pushstring(L, err.message ? err.message : "out of memory");
		ducky_err_clear(&err);
		lua_error(L);
	}
}

/* A registry reference to the value of field k of the table on top. */
static int ref_field(lua_State *L, const char *k)
{
	lua_getfield(L, -1, k);
	return luaL_ref(L, LUA_REGISTRYINDEX);
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
	lua_getfield(L, LUA_REGISTRYINDEX, CL_JSON);
	c->ref_encode = ref_field(L, "encode");
	c->ref_decode = ref_field(L, "decode");
	lua_pushvalue(L, self);
	return 1;
}

/* ---- close, tostring, stats --------------------------------------------- */

static void free_str(char **p)
{
	free(*p);
	*p = NULL;
}

/* Frees everything the client holds and wipes what may hold a secret or a
 * token; does nothing the second time. */
static void close_client(lua_State *L, client *c)
{
	if (c->closed)
		return;
	c->closed = 1;
	c->close_pending = 0;
	ducky_http_close(&c->http);
	ducky_pool_close(&c->pool);
	ducky_creds_free(&c->creds);
	ducky_tokref_free(&c->tok);
	ducky_store_close(&c->files);
	ducky_buf_free(&c->url);
	ducky_headers_free(c->auth_headers);
	ducky_headers_free(c->api_headers);
	ducky_headers_free(c->extra);
	c->auth_headers = c->api_headers = c->extra = NULL;
	free_str(&c->base_url);
	free_str(&c->client_id);
	free_str((char **)&c->conf.ca_file);
	free_str((char **)&c->conf.ca_path);
	free_str((char **)&c->conf.proxy);
	free_str((char **)&c->conf.client_cert);
	free_str((char **)&c->conf.client_key);
	ducky_wipe_str((char *)c->conf.key_password);
	c->conf.key_password = NULL;
	int *refs[] = {&c->ref_log, &c->ref_store, &c->ref_limits, &c->ref_encode, &c->ref_decode};
	for (size_t i = 0; i < sizeof refs / sizeof *refs; i++) {
		luaL_unref(L, LUA_REGISTRYINDEX, *refs[i]);
		*refs[i] = LUA_NOREF;
	}
}

/* The one closer: close(), __gc and __close. Asked for while a call is under
 * way (from a callback, a metamethod or a finalizer), it happens when the call ends. */
int cl_close(lua_State *L)
{
	client *c = cl_client(L, "close");
	if (c->busy)
		c->close_pending = 1;
	else
		close_client(L, c);
	return 0;
}

static int tostring_body(lua_State *L)
{
	client *c = cl_self(L);
	lua_pushfstring(L, "ducky.client (%s @ %s): %p",
	                c->client_id ? c->client_id : "no credentials", c->base_url, (void *)c);
	return 1;
}

/* Readable in every state: closed, idle, or from inside one of its own calls
 * (whose fields stay put: a close waits for the call to end). */
int cl_tostring(lua_State *L)
{
	client *c = cl_client(L, "tostring");
	if (c->closed) {
		lua_pushfstring(L, "ducky.client (closed): %p", (void *)c);
		return 1;
	}
	lua_settop(L, 1);
	return c->busy ? tostring_body(L) : cl_guarded(L, tostring_body, "tostring");
}

/* t[k] = a fresh or reused table (the one t has at k, emptied), on top. */
static void reuse_table(lua_State *L, int t, const char *k)
{
	lua_getfield(L, t, k);
	if (!lua_istable(L, -1)) {
		lua_pop(L, 1);
		lua_newtable(L);
		lua_pushvalue(L, -1);
		lua_setfield(L, t, k);
		return;
	}
	for (lua_pushnil(L); lua_next(L, -2); lua_pop(L, 1)) {
		lua_pushvalue(L, -2);
		lua_pushnil(L);
		lua_rawset(L, -5); /* clearing a field during next is allowed */
	}
}

/* stats() or stats(t): the counters in a new table, or written into t (a
 * caller that reads them on every call reuses one). */
static int stats_body(lua_State *L)
{
	client *c = cl_self(L);
	if (!lua_istable(L, 2)) {
		lua_settop(L, 1);
		lua_createtable(L, 0, 12);
	}
	lua_settop(L, 2);
#define STAT(name)                                                                                 \
	lua_pushinteger(L, c->st.name);                                                            \
	lua_setfield(L, 2, #name);
	STAT(requests)
	STAT(token_fetches)
	STAT(token_cache_hits)
	STAT(token_store_hits)
	STAT(retries)
	STAT(replays_401)
	STAT(stale_tokens)
	STAT(errors)
#undef STAT
	reuse_table(L, 2, "tokens"); /* by source, in token()'s and the events' words */
	for (int i = 0; i < SRC_COUNT; i++) {
		lua_pushinteger(L, c->st.tokens[i]);
		lua_setfield(L, -2, cl_source_names[i]);
	}
	reuse_table(L, 2, "rate_limit");
	if (c->ref_limits != LUA_NOREF) {
		lua_rawgeti(L, LUA_REGISTRYINDEX, c->ref_limits);
		for (lua_pushnil(L); lua_next(L, -2); lua_pop(L, 1)) {
			lua_pushvalue(L, -2);
			lua_pushvalue(L, -2);
			lua_rawset(L, 4);
		}
	}
	lua_settop(L, 2);
	return 1;
}

/* cache_key(): the hex key the token cache keeps this client's token under
 * (for integrations that share it, like ducky.ngx's shared dict). */
static int cache_key_body(lua_State *L)
{
	lua_pushstring(L, cl_self(L)->creds.key);
	return 1;
}

int cl_cache_key(lua_State *L)
{
	return cl_guarded(L, cache_key_body, "cache_key");
}

int cl_stats(lua_State *L)
{
	return cl_guarded(L, stats_body, "stats");
}
