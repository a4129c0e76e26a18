#define _GNU_SOURCE /* memmem */
/* luaopen_ducky: the module table, the client object, its options and methods,
 * request building and answers. With client_token.c and client_batch.c the only
 * code that knows Lua's stack for the client; http.c, token.c, store.c and
 * batch.c below it are plain C. */
#include <ctype.h>
#include <float.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>
#include <openssl/evp.h>

#include "client.h"

#ifndef DUCKY_VERSION /* from the build: VERSION, the one place it is kept */
#error "build with -DDUCKY_VERSION=\"x.y.z\" (the Makefile does)"
#endif
#define DEFAULT_BASE_URL  "https://api.ducky.eco/v3"
#define DEFAULT_TOKEN_URL "https://ducky-prod.eu.auth0.com/oauth/token"
#define DEFAULT_AUDIENCE  "ducky-api-prod"

enum { AUTH_JSON, AUTH_FORM, AUTH_BASIC };
static const char *const auth_names[] = {"json", "form", "basic", NULL};

/* ---- small helpers ---------------------------------------------------- */

void cl_wipe_slist(struct curl_slist *l)
{
	for (struct curl_slist *p = l; p; p = p->next)
		memset(p->data, 0, strlen(p->data));
	curl_slist_free_all(l);
}

void cl_free_str(char **p)
{
	free(*p);
	*p = NULL;
}

client *cl_check(lua_State *L)
{
	client *c = luaL_checkudata(L, 1, CLIENT_MT);
	if (c->closed)
		luaL_error(L, "attempt to use a closed ducky client");
	if (c->busy)
		luaL_error(L, "a ducky client cannot be used while one of its calls is under way "
		              "(from its own log or token_cache callbacks, a metamethod or a "
		              "finalizer)");
	return c;
}

static void close_client(lua_State *L, client *c);

/* Runs body with the client (at 1) marked busy from its first argument to its
 * last result: Lua code that runs meanwhile (a callback, a metamethod of an
 * argument, any finalizer the collector calls) cannot reenter the client, and a
 * close() it asks for waits for the call to end. The mark is cleared on every
 * path, raises included: body runs protected and its error is raised again. */
int cl_guarded(lua_State *L, lua_CFunction body)
{
	client *c = cl_check(L);
	lua_pushcfunction(L, body); /* may raise: before the mark */
	lua_insert(L, 1);
	c->busy = 1;
	c->L = L;
	int rc = lua_pcall(L, lua_gettop(L) - 1, LUA_MULTRET, 0);
	c->busy = 0;
	if (c->close_pending)
		close_client(L, c);
	return rc == 0 ? lua_gettop(L) : lua_error(L);
}

/* HTTP token characters (RFC 9110 §5.6.2). */
static int is_token(const char *s, size_t n)
{
	if (n == 0)
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (!(isalnum(ch) || strchr("!#$%&'*+-.^_`|~", ch)) || ch == 0)
			return 0;
	}
	return 1;
}

static int has_ctl(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] == '\r' || s[i] == '\n' || s[i] == '\0')
			return 1;
	return 0;
}

/* Appends a JSON string literal (the secret must not pass through Lua). */
static int add_json_string(ducky_buf *b, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	if (ducky_buf_add(b, "\"", 1))
		return -1;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		char e[6] = {'\\', 'u', '0', '0', hex[ch >> 4], hex[ch & 15]};
		int rc;
		if (ch == '"' || ch == '\\')
			rc = ducky_buf_add(b, e, 1) || ducky_buf_add(b, &s[i], 1);
		else if (ch < 0x20)
			rc = ducky_buf_add(b, e, 6);
		else
			rc = ducky_buf_add(b, &s[i], 1);
		if (rc)
			return -1;
	}
	return ducky_buf_add(b, "\"", 1);
}

/* ---- log events, always called protected and outside libcurl --------- */

static int call_log(lua_State *L)
{
	event *ev = lua_touserdata(L, 1);
	lua_rawgeti(L, LUA_REGISTRYINDEX, ev->c->ref_log);
	lua_createtable(L, 0, 5);
	lua_pushstring(L, ev->event);
	lua_setfield(L, -2, "event");
	if (ev->source) {
		lua_pushstring(L, ev->source);
		lua_setfield(L, -2, "source");
	}
	if (ev->reason) {
		lua_pushstring(L, ev->reason);
		lua_setfield(L, -2, "reason");
	}
	if (ev->seconds_left >= 0) {
		lua_pushnumber(L, ev->seconds_left);
		lua_setfield(L, -2, "seconds_left");
	}
	if (ev->wait >= 0) {
		lua_pushnumber(L, ev->wait);
		lua_setfield(L, -2, "wait");
	}
	if (ev->attempt) {
		lua_pushinteger(L, ev->attempt);
		lua_setfield(L, -2, "attempt");
	}
	if (ev->fingerprint) {
		lua_pushstring(L, ev->fingerprint);
		lua_setfield(L, -2, "fingerprint");
	}
	lua_call(L, 1, 0);
	return 0;
}

void cl_send_event(client *c, event *ev)
{
	if (c->ref_log == LUA_NOREF)
		return;
	if (ducky_cpcall(c->L, call_log, ev) != 0)
		lua_pop(c->L, 1); /* an error inside the user's log function is ignored */
}

void cl_emit(client *c, const char *name, const char *source, const char *reason,
             double seconds_left, int attempt, double wait)
{
	event ev = {c, name, source, reason, seconds_left, wait, attempt, NULL};
	cl_send_event(c, &ev);
}

void cl_on_retry(void *ud, const ducky_retry_event *ev)
{
	client *c = ud;
	c->st.retries++;
	cl_emit(c, "retry", NULL, ev->reason, -1, ev->attempt, ev->wait);
}

/* ---- JSON through lua-cjson ------------------------------------------- */

/* Pushes cjson.decode(s) or, on failure, nothing; returns 1 on success. */
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

static int is_json_type(const char *ct)
{
	if (!ct)
		return 0;
	size_t n = strcspn(ct, ";");
	while (n > 0 && ct[n - 1] == ' ')
		n--;
	return (n == 16 && strncasecmp(ct, "application/json", 16) == 0) ||
	       (n > 5 && strncasecmp(ct + n - 5, "+json", 5) == 0);
}

/* The API headers plus "Authorization: Bearer …", rebuilt only when the token changes. */
struct curl_slist *cl_auth_headers(client *c, ducky_err *err)
{
	if (c->auth_headers && c->auth_gen == c->tok.gen)
		return c->auth_headers;
	cl_wipe_slist(c->auth_headers);
	c->auth_headers = NULL;
	ducky_buf line = {0};
	struct curl_slist *l = NULL, *n;
	int bad = ducky_buf_adds(&line, "Authorization: Bearer ") ||
	          ducky_buf_add(&line, c->tok.token, c->tok.len);
	if (!bad && (l = curl_slist_append(NULL, line.data)) == NULL)
		bad = 1;
	for (struct curl_slist *p = c->api_headers; p && !bad; p = p->next)
		if ((n = curl_slist_append(l, p->data)) == NULL)
			bad = 1;
		else
			l = n;
	ducky_buf_free(&line);
	if (bad) {
		cl_wipe_slist(l);
		ducky_fail(err, DUCKY_E_LIMIT, "out of memory");
		return NULL;
	}
	c->auth_gen = c->tok.gen;
	return c->auth_headers = l;
}

/* ---- responses -------------------------------------------------------- */

static void push_headers(lua_State *L, const ducky_http *h)
{
	const char *pos = NULL, *name, *value;
	lua_createtable(L, 0, (int)h->nheaders);
	while (ducky_http_next_header(h, &pos, &name, &value)) {
		lua_pushstring(L, name); /* pushed once for the lookup and the set */
		lua_pushvalue(L, -1);
		lua_rawget(L, -3);
		if (lua_isstring(L, -1)) { /* repeated: joined with ", " */
			lua_pushliteral(L, ", ");
			lua_pushstring(L, value);
			lua_concat(L, 3);
		} else {
			lua_pop(L, 1);
			lua_pushstring(L, value);
		}
		lua_rawset(L, -3);
	}
}

/* Sets headers, body, json (when decodable) on the table on top. 1 if JSON failed. */
static int add_response(lua_State *L, const client *c, const ducky_http *h)
{
	int bad_json = 0;
	lua_pushinteger(L, (lua_Integer)h->status);
	lua_setfield(L, -2, "status");
	push_headers(L, h);
	lua_setfield(L, -2, "headers");
	lua_pushlstring(L, h->body.data ? h->body.data : "", h->body.len);
	lua_setfield(L, -2, "body");
	if (h->body.len && is_json_type(ducky_http_header(h, "content-type"))) {
		if (cl_json_decode(L, c, h->body.data, h->body.len))
			lua_setfield(L, -2, "json");
		else
			bad_json = 1;
	}
	return bad_json;
}

int cl_push_error(lua_State *L, client *c, ducky_err *err)
{
	c->st.errors++;
	lua_pushnil(L);
	ducky_error_push(L, err);
	ducky_err_clear(err);
	return 2;
}

static int push_http_error(lua_State *L, client *c, const ducky_http *h, ducky_err *err,
                           int replayed, const char *method, const char *url, int bad_json)
{
	long s = h->status;
	err->status = s;
	err->retryable = s == 408 || s == 429 || s == 500 || s == 502 || s == 503 || s == 504;
	err->retry_after = ducky_retry_after(ducky_http_header(h, "retry-after"), ducky_wall());
	if (bad_json)
		ducky_fail(err, DUCKY_E_DECODE, "%s %.300s answered %ld with invalid JSON", method,
		           url, s);
	else if (s == 401)
		ducky_fail(err, DUCKY_E_AUTH, "%s %.300s answered 401%s", method, url,
		           replayed ? " twice, with a fresh token" : "");
	else
		ducky_fail(err, DUCKY_E_HTTP, "%s %.300s answered %ld", method, url, s);
	cl_push_error(L, c, err);
	add_response(L, c, h);
	const char *rid = ducky_http_header(h, "x-request-id");
	if (rid) {
		lua_pushstring(L, rid);
		lua_setfield(L, -2, "request_id");
	}
	lua_getfield(L, -1, "json");
	if (lua_istable(L, -1)) {
		lua_getfield(L, -1, "error");
		if (lua_type(L, -1) == LUA_TSTRING)
			lua_setfield(L, -3, "code");
		else
			lua_pop(L, 1);
		lua_getfield(L, -1, "error_description");
		if (lua_type(L, -1) == LUA_TSTRING)
			lua_setfield(L, -3, "description");
		else
			lua_pop(L, 1);
	}
	lua_pop(L, 1);
	return 2;
}

/* An HTTP answer as `res` (1 value) or `nil, err` (2 values). */
int cl_push_answer(lua_State *L, client *c, const ducky_http *h, ducky_err *err, int attempts,
                   int replayed, const char *method, const char *url)
{
	err->attempts = attempts;
	if (h->status >= 200 && h->status < 300) {
		lua_createtable(L, 0, 5);
		if (!add_response(L, c, h)) {
			lua_pushinteger(L, attempts);
			lua_setfield(L, -2, "attempts");
			return 1;
		}
		lua_pop(L, 1);
		return push_http_error(L, c, h, err, replayed, method, url, 1);
	}
	return push_http_error(L, c, h, err, replayed, method, url, 0);
}

/* ---- one API call: token, send, 401 replay, result -------------------- */

/* Whether list holds a header of the same name as line ("Name: v", "Name:" or
 * libcurl's "Name;"), compared without case. */
static int has_header(const struct curl_slist *list, const char *line)
{
	size_t nl = strcspn(line, ":;");
	for (; list; list = list->next)
		if (strncasecmp(list->data, line, nl) == 0 && strcspn(list->data, ":;") == nl)
			return 1;
	return 0;
}

/* Appends line to *list unless a header of that name is there already (the
 * caller's own wins); -1 when out of memory. */
static int add_default(struct curl_slist **list, const char *line)
{
	struct curl_slist *n;
	if (has_header(*list, line))
		return 0;
	if (!(n = curl_slist_append(*list, line)))
		return -1;
	*list = n;
	return 0;
}

/* extra + base, leaving out base headers that extra overrides. */
struct curl_slist *cl_merge_headers(struct curl_slist *extra, struct curl_slist *base)
{
	struct curl_slist *l = NULL, *n;
	for (int pass = 0; pass < 2; pass++)
		for (struct curl_slist *p = pass ? base : extra; p; p = p->next) {
			if (pass && has_header(extra, p->data))
				continue;
			if (!(n = curl_slist_append(l, p->data))) {
				cl_wipe_slist(l);
				return NULL;
			}
			l = n;
		}
	return l;
}

/* One call: the token, send, a 401 replayed once, the answer. */
static int do_call(lua_State *L, client *c, const call *k)
{
	ducky_err err;
	int attempts = 0, total = 0;
	int idempotent = strcmp(k->method, "POST") != 0 && strcmp(k->method, "PATCH") != 0;

	ducky_err_init(&err);
	c->st.requests++;
	c->deadline = ducky_now() + k->timeout;
	c->call_retries = k->retries;
	for (int replay = 0;; replay++) {
		struct curl_slist *base = c->api_headers, *merged = NULL;
		if (k->auth) {
			if (cl_get_token(c, &err) || !(base = cl_auth_headers(c, &err))) {
				err.attempts += total;
				return cl_push_error(L, c, &err);
			}
		}
		if (k->extra && !(base = merged = cl_merge_headers(k->extra, base))) {
			ducky_fail(&err, DUCKY_E_LIMIT, "out of memory");
			return cl_push_error(L, c, &err);
		}
		ducky_req req = {k->method,   k->url,
		                 base,        k->body,
		                 k->body_len, idempotent,
		                 c->deadline, c->connect_timeout,
		                 k->retries,  c->max_retry_after};
		int rc = ducky_http_send(&c->http, &req, cl_on_retry, c, &attempts, &err);
		cl_wipe_slist(merged);
		total += attempts;
		if (rc) {
			err.attempts = total;
			return cl_push_error(L, c, &err);
		}
		if (c->http.status == 401 && k->auth && replay == 0) {
			ducky_token_ops ops = cl_token_ops(c);
			ducky_token_invalidate(c->key, c->tok.token, &ops);
			c->st.replays_401++;
			cl_emit(c, "replay_401", NULL, NULL, -1, 0, -1);
			continue;
		}
		break;
	}
	err.attempts = total;
	return cl_push_answer(L, c, &c->http, &err, total, k->auth, k->method, k->url);
}

/* ---- URL and request building ----------------------------------------- */

static int add_query_value(lua_State *L, ducky_buf *b, const char *key, size_t klen, int v)
{
	size_t vlen;
	const char *val;
	if (lua_type(L, v) == LUA_TBOOLEAN)
		val = lua_toboolean(L, v) ? "true" : "false";
	else if (lua_type(L, v) == LUA_TSTRING || lua_type(L, v) == LUA_TNUMBER)
		val = lua_tostring(L, v);
	else
		return luaL_error(L,
		                  "query value for '%s' must be a string, number, boolean "
		                  "or an array of them",
		                  key);
	vlen = strlen(val);
	if (lua_type(L, v) == LUA_TSTRING)
		lua_tolstring(L, v, &vlen);
	if (ducky_buf_add(b, b->data && strchr(b->data, '?') ? "&" : "?", 1) ||
	    ducky_buf_add_escaped(b, key, klen) || ducky_buf_add(b, "=", 1) ||
	    ducky_buf_add_escaped(b, val, vlen))
		return luaL_error(L, "out of memory");
	return 0;
}

typedef struct qkey {
	const char *s; /* alive: a key of the query table */
	size_t len;
} qkey;

/* Byte order, NUL included: keys are Lua strings, not C strings. */
static int cmp_key(const void *a, const void *b)
{
	const qkey *x = a, *y = b;
	int c = memcmp(x->s, y->s, x->len < y->len ? x->len : y->len);
	return c ? c : (x->len > y->len) - (x->len < y->len);
}

/* Appends ?k=v&… for the query table at idx, keys sorted, arrays repeated. */
static void add_query(lua_State *L, int idx, ducky_buf *b)
{
	size_t n = 0, i;
	qkey *keys;
	lua_pushnil(L);
	while (lua_next(L, idx)) {
		if (lua_type(L, -2) != LUA_TSTRING)
			luaL_error(L, "query keys must be strings");
		n++;
		lua_pop(L, 1);
	}
	keys = lua_newuserdata(L, n ? n * sizeof *keys : 1);
	lua_pushnil(L);
	for (i = 0; lua_next(L, idx); i++) {
		keys[i].s = lua_tolstring(L, -2, &keys[i].len);
		lua_pop(L, 1);
	}
	qsort(keys, n, sizeof *keys, cmp_key);
	for (i = 0; i < n; i++) {
		lua_pushlstring(L, keys[i].s, keys[i].len);
		lua_rawget(L, idx);
		if (lua_istable(L, -1)) {
			size_t m = ducky_rawlen(L, -1), count = 0;
			lua_pushnil(L);
			while (lua_next(L, -2)) {
				lua_pop(L, 1);
				count++;
			}
			if (count != m)
				luaL_error(L,
				           "query value for '%s' must be a string, number, "
				           "boolean or an array of them",
				           keys[i].s);
			for (size_t j = 1; j <= m; j++) {
				lua_rawgeti(L, -1, (int)j);
				add_query_value(L, b, keys[i].s, keys[i].len, lua_gettop(L));
				lua_pop(L, 1);
			}
		} else {
			add_query_value(L, b, keys[i].s, keys[i].len, lua_gettop(L));
		}
		lua_pop(L, 1);
	}
	lua_pop(L, 1);
}

/* Header table at idx -> curl list appended to *l; raises on bad names or values. */
static void add_headers(lua_State *L, int idx, struct curl_slist **l, const char *what)
{
	lua_pushnil(L);
	while (lua_next(L, idx)) {
		size_t nl, vl;
		const char *name, *value;
		if (lua_type(L, -2) != LUA_TSTRING ||
		    (lua_type(L, -1) != LUA_TSTRING && lua_type(L, -1) != LUA_TNUMBER))
			luaL_error(L, "%s: header names and values must be strings", what);
		name = lua_tolstring(L, -2, &nl);
		lua_pushvalue(L, -1);
		value = lua_tolstring(L, -1, &vl);
		if (!is_token(name, nl))
			luaL_error(L, "%s: invalid header name '%s'", what, name);
		if (has_ctl(value, vl))
			luaL_error(L, "%s: header '%s' holds CR, LF or NUL", what, name);
		lua_pushfstring(L, "%s: %s", name, value);
		struct curl_slist *n = curl_slist_append(*l, lua_tostring(L, -1));
		if (!n)
			luaL_error(L, "out of memory");
		*l = n;
		lua_pop(L, 3);
	}
}

/* Builds c->url = base_url + path (+ query). Returns 0, or -1 with err. */

/* ---- methods ---------------------------------------------------------- */

static int simple_get(lua_State *L, const char *path, int auth)
{
	client *c = cl_self(L);
	ducky_err err;
	ducky_err_init(&err);
	if (ducky_url_join(&c->url, c->base_url, path, strlen(path), &err))
		return cl_push_error(L, c, &err);
	call k = {"GET", c->url.data, NULL, NULL, 0, auth, c->retries, c->timeout};
	return do_call(L, c, &k);
}

static int ping_body(lua_State *L)
{
	return simple_get(L, "ping", 0);
}

static int ping_protected_body(lua_State *L)
{
	return simple_get(L, "ping/protected", 1);
}

static const char *const request_opts[] = {"query",   "json",    "body", "headers",
                                           "timeout", "retries", "auth", NULL};

double cl_opt_number(lua_State *L, int t, const char *name, double dflt, double lo, double hi)
{
	lua_getfield(L, t, name);
	double v = dflt;
	if (!lua_isnil(L, -1)) {
		if (lua_type(L, -1) != LUA_TNUMBER)
			luaL_error(L, "option '%s' must be a number", name);
		v = lua_tonumber(L, -1);
		if (!(v >= lo && v <= hi))
			luaL_error(L, "option '%s' is out of range: %s", name, lua_tostring(L, -1));
	}
	lua_pop(L, 1);
	return v;
}

/* Reads one call's arguments (method at mi, path at pi, options at oi or 0)
 * into k, its headers into *extra and its URL into *url. Raises for misuse
 * (messages start with `what`); returns -1 with err for a URL it refuses.
 * Leaves exactly one value on the stack: the body string (or nil), which must
 * stay alive while the call runs. */
int cl_parse_call(lua_State *L, client *c, int mi, int pi, int oi, const char *what, call *k,
                  char method[32], struct curl_slist **extra, ducky_buf *url, ducky_err *err)
{
	size_t mlen, plen;
	const char *m = luaL_checklstring(L, mi, &mlen);
	const char *path = luaL_checklstring(L, pi, &plen);
	const char *ctype = NULL;
	int top = lua_gettop(L), query = 0;

	if (!is_token(m, mlen) || mlen >= 32)
		luaL_error(L, "%s: not an HTTP method name", what);
	for (size_t i = 0; i <= mlen; i++)
		method[i] = (char)toupper((unsigned char)m[i]);
	*k = (call){method, NULL, NULL, NULL, 0, 1, c->retries, c->timeout};
	lua_pushnil(L); /* the body, replaced below */
	if (oi && !lua_isnil(L, oi)) {
		if (!lua_istable(L, oi))
			luaL_error(L, "%s: options must be a table", what);
		lua_pushnil(L);
		while (lua_next(L, oi)) {
			const char *const *o = request_opts;
			lua_pop(L, 1);
			while (*o && (lua_type(L, -1) != LUA_TSTRING ||
			              strcmp(*o, lua_tostring(L, -1)) != 0))
				o++;
			if (!*o)
				luaL_error(L, "%s: unknown option '%s'", what,
				           lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1)
				                                          : luaL_typename(L, -1));
		}
		k->timeout = cl_opt_number(L, oi, "timeout", c->timeout, 0.001, 1e6);
		k->retries = (int)cl_opt_number(L, oi, "retries", c->retries, 0, 100);
		lua_getfield(L, oi, "auth");
		k->auth = lua_isnil(L, -1) || lua_toboolean(L, -1);
		lua_getfield(L, oi, "query");
		if (!lua_isnil(L, -1)) {
			if (!lua_istable(L, -1))
				luaL_error(L, "%s: query must be a table", what);
			query = lua_gettop(L);
		}
		lua_getfield(L, oi, "json");
		lua_getfield(L, oi, "body");
		if (!lua_isnil(L, -2)) {
			if (!lua_isnil(L, -1))
				luaL_error(L, "%s: json and body exclude each other", what);
			lua_pop(L, 1);
			lua_getfield(L, LUA_REGISTRYINDEX, PRIVATE);
			lua_getfield(L, -1, "encode");
			lua_remove(L, -2);
			lua_insert(L, -2);
			if (lua_pcall(L, 1, 1, 0) != 0)
				luaL_error(L, "%s: json: %s", what, lua_tostring(L, -1));
			ctype = "Content-Type: application/json";
		} else if (!lua_isnil(L, -1)) {
			if (lua_type(L, -1) != LUA_TSTRING)
				luaL_error(L, "%s: body must be a string", what);
			ctype = "Content-Type: application/octet-stream";
		}
		lua_replace(L, top + 1); /* the body (or nil) */
		lua_getfield(L, oi, "headers");
		if (!lua_isnil(L, -1)) {
			if (!lua_istable(L, -1))
				luaL_error(L, "%s: headers must be a table", what);
			add_headers(L, lua_gettop(L), extra, what);
		}
		lua_pop(L, 1);
		/* a body: our Content-Type unless the caller gave one, and no
		 * "Expect: 100-continue" wait (libcurl's for bodies over 1 MiB) */
		if (ctype && (add_default(extra, ctype) || add_default(extra, "Expect:")))
			luaL_error(L, "out of memory");
	}
	if (lua_type(L, top + 1) == LUA_TSTRING)
		k->body = lua_tolstring(L, top + 1, &k->body_len);
	if (has_ctl(path, plen) || memchr(path, ' ', plen))
		luaL_error(L, "%s: path holds a space, CR, LF or NUL", what);
	int rc = ducky_url_join(url, c->base_url, path, plen, err);
	if (rc == 0 && query)
		add_query(L, query, url);
	lua_settop(L, top + 1);
	k->url = url->data;
	k->extra = *extra;
	return rc;
}

static int request_body(lua_State *L)
{
	client *c = cl_self(L);
	char method[32];
	ducky_err err;
	call k;

	lua_settop(L, 4);
	curl_slist_free_all(c->extra);
	c->extra = NULL;
	ducky_err_init(&err);
	if (cl_parse_call(L, c, 2, 3, 4, "request", &k, method, &c->extra, &c->url, &err))
		return cl_push_error(L, c, &err);
	return do_call(L, c, &k);
}

static int token_body(lua_State *L)
{
	client *c = cl_self(L);
	ducky_err err;
	ducky_err_init(&err);
	c->deadline = ducky_now() + c->timeout;
	c->call_retries = c->retries;
	if (cl_get_token(c, &err))
		return cl_push_error(L, c, &err);
	lua_pushlstring(L, c->tok.token, c->tok.len);
	lua_pushnumber(L, c->tok.expires - ducky_now());
	lua_createtable(L, 0, 2);
	lua_pushstring(L, c->source);
	lua_setfield(L, -2, "source");
	lua_pushstring(L, c->fp);
	lua_setfield(L, -2, "fingerprint");
	return 3;
}

static int invalidate_body(lua_State *L)
{
	client *c = cl_self(L);
	ducky_token_ops ops = cl_token_ops(c);
	ducky_token_invalidate(c->key, NULL, &ops);
	return 0;
}

static int stats_body(lua_State *L)
{
	client *c = cl_self(L);
	lua_createtable(L, 0, 10);
#define STAT(name)                                                                                 \
	lua_pushinteger(L, c->st.name);                                                            \
	lua_setfield(L, -2, #name);
	STAT(requests)
	STAT(token_fetches)
	STAT(token_cache_hits)
	STAT(token_store_hits)
	STAT(retries)
	STAT(replays_401)
	STAT(stale_tokens)
	STAT(errors)
#undef STAT
	lua_newtable(L);
	if (c->ref_limits != LUA_NOREF) {
		lua_rawgeti(L, LUA_REGISTRYINDEX, c->ref_limits);
		lua_pushnil(L);
		while (lua_next(L, -2)) {
			lua_pushvalue(L, -2);
			lua_insert(L, -2);
			lua_settable(L, -5);
		}
		lua_pop(L, 1);
	}
	lua_setfield(L, -2, "rate_limit");
	return 1;
}

/* Frees everything the client holds; does nothing the second time. */
static void close_client(lua_State *L, client *c)
{
	if (c->closed)
		return;
	c->closed = 1;
	c->close_pending = 0;
	ducky_http_close(&c->http);
	ducky_buf_free(&c->token_body);
	if (c->secret) {
		memset(c->secret, 0, c->secret_len);
		cl_free_str(&c->secret);
	}
	c->secret_len = 0;
	ducky_buf_free(&c->url);
	cl_wipe_slist(c->token_headers);
	cl_wipe_slist(c->auth_headers);
	curl_slist_free_all(c->api_headers);
	curl_slist_free_all(c->extra);
	c->token_headers = c->auth_headers = c->api_headers = c->extra = NULL;
	ducky_tokref_free(&c->tok);
	cl_free_str(&c->base_url);
	cl_free_str(&c->token_url);
	cl_free_str(&c->client_id);
	cl_free_str(&c->key);
	ducky_store_close(&c->files);
	cl_free_batch(c);
	ducky_pool_close(&c->pool);
	cl_free_str((char **)&c->conf.ca_file);
	cl_free_str((char **)&c->conf.ca_path);
	cl_free_str((char **)&c->conf.proxy);
	luaL_unref(L, LUA_REGISTRYINDEX, c->ref_log);
	luaL_unref(L, LUA_REGISTRYINDEX, c->ref_store);
	luaL_unref(L, LUA_REGISTRYINDEX, c->ref_limits);
	luaL_unref(L, LUA_REGISTRYINDEX, c->ref_decode);
	c->ref_log = c->ref_store = c->ref_limits = c->ref_decode = LUA_NOREF;
}

/* The one closer: close(), __gc and __close. Asked for while a call is under
 * way (from a callback, a metamethod or a finalizer), it happens when the call ends. */
static int c_close(lua_State *L)
{
	client *c = luaL_checkudata(L, 1, CLIENT_MT);
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
static int c_tostring(lua_State *L)
{
	client *c = luaL_checkudata(L, 1, CLIENT_MT);
	if (c->closed) {
		lua_pushfstring(L, "ducky.client (closed): %p", (void *)c);
		return 1;
	}
	lua_settop(L, 1);
	return c->busy ? tostring_body(L) : cl_guarded(L, tostring_body);
}

#define GUARDED(name)                                                                              \
	static int c_##name(lua_State *L)                                                          \
	{                                                                                          \
		return cl_guarded(L, name##_body);                                                 \
	}
GUARDED(ping)
GUARDED(ping_protected)
GUARDED(request)
GUARDED(token)
GUARDED(invalidate)
GUARDED(stats)
#undef GUARDED

/* ---- the constructor -------------------------------------------------- */

/* Every option of the contract, with the Lua types it accepts. */
#define T(t) (1 << (t))
static const struct option {
	const char *name;
	int types;
	const char *what; /* for the error message */
} options[] = {
    {"client_id", T(LUA_TSTRING), "a string"},
    {"client_secret", T(LUA_TSTRING), "a string"},
    {"base_url", T(LUA_TSTRING), "a string"},
    {"token_url", T(LUA_TSTRING), "a string"},
    {"audience", T(LUA_TSTRING), "a string"},
    {"token_auth", T(LUA_TSTRING), "a string"},
    {"timeout", T(LUA_TNUMBER), "a number"},
    {"connect_timeout", T(LUA_TNUMBER), "a number"},
    {"retries", T(LUA_TNUMBER), "a number"},
    {"refresh_margin", T(LUA_TNUMBER), "a number"},
    {"token_cache", T(LUA_TBOOLEAN) | T(LUA_TSTRING) | T(LUA_TTABLE), "false, a path or a table"},
    {"ca_file", T(LUA_TSTRING), "a string"},
    {"ca_path", T(LUA_TSTRING), "a string"},
    {"insecure", T(LUA_TBOOLEAN), "a boolean"},
    {"proxy", T(LUA_TSTRING), "a string"},
    {"user_agent", T(LUA_TSTRING), "a string"},
    {"headers", T(LUA_TTABLE), "a table"},
    {"max_body", T(LUA_TNUMBER), "a number"},
    {"token_params", T(LUA_TTABLE), "a table"},
    {"auth_backoff", T(LUA_TNUMBER), "a number"},
    {"max_exchanges_per_hour", T(LUA_TNUMBER), "a number"},
    {"max_retry_after", T(LUA_TNUMBER), "a number"},
    {"log", T(LUA_TFUNCTION), "a function"},
    {"http_version", T(LUA_TSTRING), "a string"},
    {NULL, 0, NULL},
};
#undef T

static void check_options(lua_State *L)
{
	lua_pushnil(L);
	while (lua_next(L, 1)) {
		const struct option *o = options;
		if (lua_type(L, -2) != LUA_TSTRING)
			luaL_error(L, "ducky.client: option names must be strings");
		while (o->name && strcmp(o->name, lua_tostring(L, -2)) != 0)
			o++;
		if (!o->name)
			luaL_error(L, "ducky.client: unknown option '%s'", lua_tostring(L, -2));
		if (!(o->types & (1 << lua_type(L, -1))))
			luaL_error(L, "ducky.client: option '%s' must be %s, not %s", o->name,
			           o->what, luaL_typename(L, -1));
		lua_pop(L, 1);
	}
}

/* A string option, else $env, else dflt; NULL if none. */
static const char *opt_string(lua_State *L, const char *name, const char *env, const char *dflt)
{
	const char *v;
	lua_getfield(L, 1, name);
	v = lua_tostring(L, -1);
	lua_pop(L, 1); /* the options table keeps it alive */
	if (!v && env && (v = getenv(env)) != NULL && !*v)
		v = NULL;
	return v ? v : dflt;
}

/* The index of string option `name` among choices (NULL-terminated), dflt when
 * unset; anything else raises naming the option and the choices. */
static int opt_choice(lua_State *L, const char *name, const char *const choices[], const char *dflt)
{
	const char *v = opt_string(L, name, NULL, dflt);
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

/* Token request body and headers; they hold the secret, so they live in C only. */
static void build_token_request(lua_State *L, client *c, int auth, const char *id,
                                const char *secret, const char *audience, const char *ua_line)
{
	ducky_buf *b = &c->token_body;
	ducky_buf basic = {0};
	int bad;
	const char *ctype = auth == AUTH_JSON ? "Content-Type: application/json"
	                                      : "Content-Type: application/x-www-form-urlencoded";

	if (auth == AUTH_JSON) {
		bad = ducky_buf_adds(b, "{\"client_id\":") || add_json_string(b, id, strlen(id)) ||
		      ducky_buf_adds(b, ",\"client_secret\":") ||
		      add_json_string(b, secret, strlen(secret)) ||
		      ducky_buf_adds(b, ",\"audience\":") ||
		      add_json_string(b, audience, strlen(audience)) ||
		      ducky_buf_adds(b, ",\"grant_type\":\"client_credentials\"");
	} else {
		bad = ducky_buf_adds(b, "grant_type=client_credentials&audience=") ||
		      ducky_buf_add_escaped(b, audience, strlen(audience));
		if (auth == AUTH_FORM)
			bad = bad || ducky_buf_adds(b, "&client_id=") ||
			      ducky_buf_add_escaped(b, id, strlen(id)) ||
			      ducky_buf_adds(b, "&client_secret=") ||
			      ducky_buf_add_escaped(b, secret, strlen(secret));
	}
	lua_getfield(L, 1, "token_params");
	if (lua_istable(L, -1)) {
		int t = lua_gettop(L);
		lua_pushnil(L);
		while (!bad && lua_next(L, t)) {
			size_t kl, vl;
			if (lua_type(L, -2) != LUA_TSTRING ||
			    (lua_type(L, -1) != LUA_TSTRING && lua_type(L, -1) != LUA_TNUMBER))
				luaL_error(L, "ducky.client: token_params must map strings to "
				              "strings or numbers");
			const char *k = lua_tolstring(L, -2, &kl);
			const char *v = lua_tolstring(L, -1, &vl);
			if (auth == AUTH_JSON)
				bad = ducky_buf_adds(b, ",") || add_json_string(b, k, kl) ||
				      ducky_buf_adds(b, ":") || add_json_string(b, v, vl);
			else
				bad = ducky_buf_adds(b, "&") || ducky_buf_add_escaped(b, k, kl) ||
				      ducky_buf_adds(b, "=") || ducky_buf_add_escaped(b, v, vl);
			lua_pop(L, 1);
		}
	}
	lua_pop(L, 1);
	if (auth == AUTH_JSON)
		bad = bad || ducky_buf_adds(b, "}");
	if (auth == AUTH_BASIC) { /* RFC 6749 §2.3.1: form-encode, then base64 */
		ducky_buf raw = {0};
		unsigned char *enc = NULL;
		bad = bad || ducky_buf_add_escaped(&raw, id, strlen(id)) ||
		      ducky_buf_add(&raw, ":", 1) ||
		      ducky_buf_add_escaped(&raw, secret, strlen(secret)) ||
		      !(enc = malloc(4 * ((raw.len + 2) / 3) + 1));
		if (!bad) {
			int n = EVP_EncodeBlock(enc, (unsigned char *)raw.data, (int)raw.len);
			bad = ducky_buf_adds(&basic, "Authorization: Basic ") ||
			      ducky_buf_add(&basic, enc, (size_t)n);
			memset(enc, 0, (size_t)n);
		}
		free(enc);
		ducky_buf_free(&raw);
	}
	struct curl_slist *l = NULL, *n;
	const char *lines[] = {
	    ctype,   "Accept: application/json",       "Expect:",
	    ua_line, "Accept-Encoding: gzip, deflate", auth == AUTH_BASIC ? basic.data : NULL};
	for (size_t i = 0; i < sizeof lines / sizeof *lines && !bad; i++)
		if (lines[i]) {
			if ((n = curl_slist_append(l, lines[i])) == NULL)
				bad = 1;
			else
				l = n;
		}
	c->token_headers = l;
	ducky_buf_free(&basic);
	if (bad)
		luaL_error(L, "out of memory");
}

/* The cache key: a SHA-256 over everything that makes a token request. */
static void make_key(lua_State *L, client *c, int auth)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) &&
	         EVP_DigestUpdate(ctx, c->token_url, strlen(c->token_url) + 1) &&
	         EVP_DigestUpdate(ctx, auth_names[auth], strlen(auth_names[auth]) + 1) &&
	         EVP_DigestUpdate(ctx, c->token_body.data, c->token_body.len + 1);
	for (struct curl_slist *p = c->token_headers; ok && p; p = p->next)
		ok = EVP_DigestUpdate(ctx, p->data, strlen(p->data) + 1);
	ok = ok && EVP_DigestFinal_ex(ctx, md, &mdlen);
	EVP_MD_CTX_free(ctx);
	if (!ok || !(c->key = malloc(2 * mdlen + 1)))
		luaL_error(L, "cannot compute the token cache key");
	for (unsigned i = 0; i < mdlen; i++)
		sprintf(c->key + 2 * i, "%02x", md[i]);
}

static int ref_option(lua_State *L, const char *name)
{
	lua_getfield(L, 1, name);
	return lua_isnil(L, -1) ? (lua_pop(L, 1), LUA_NOREF) : luaL_ref(L, LUA_REGISTRYINDEX);
}

static int l_client(lua_State *L)
{
	client *c;
	ducky_err err;
	char ua[96];

	if (lua_isnoneornil(L, 1)) {
		lua_settop(L, 0);
		lua_newtable(L);
	}
	luaL_checktype(L, 1, LUA_TTABLE);
	lua_settop(L, 1);
	check_options(L);

	/* a safe, closable empty object first */
	c = ducky_newuserdata(L, sizeof *c);
	memset(c, 0, sizeof *c);
	c->closed = 1;
	c->ref_log = c->ref_store = c->ref_limits = c->ref_decode = LUA_NOREF;
	c->files.dirfd = c->files.lockfd = -1; /* no descriptor is ours yet, not even 0 */
	luaL_getmetatable(L, CLIENT_MT);
	lua_setmetatable(L, -2);
	c->closed = 0;
	c->L = L;

	const char *base = opt_string(L, "base_url", "DUCKY_BASE_URL", DEFAULT_BASE_URL);
	const char *turl = opt_string(L, "token_url", "DUCKY_TOKEN_URL", DEFAULT_TOKEN_URL);
	const char *aud = opt_string(L, "audience", "DUCKY_AUDIENCE", DEFAULT_AUDIENCE);
	const char *id = opt_string(L, "client_id", "DUCKY_CLIENT_ID", NULL);
	const char *secret = opt_string(L, "client_secret", "DUCKY_CLIENT_SECRET", NULL);
	int auth = opt_choice(L, "token_auth", auth_names, "json");
	if (!ducky_url_check(base))
		return luaL_error(L, "ducky.client: base_url is not an http(s) URL: %s", base);
	if (!ducky_url_check(turl))
		return luaL_error(L, "ducky.client: token_url is not an http(s) URL: %s", turl);
	c->base_url = dup_or_raise(L, base);
	for (size_t n = strlen(c->base_url); n > 0 && c->base_url[n - 1] == '/'; n--)
		c->base_url[n - 1] = '\0';
	c->token_url = dup_or_raise(L, turl);
	c->client_id = dup_or_raise(L, id);
	c->has_credentials = id && secret;
	if (secret && *secret) {
		c->secret = dup_or_raise(L, secret);
		c->secret_len = strlen(secret);
	}

	/* User-Agent, Accept and Accept-Encoding go in the header lists we build
	 * once, not through libcurl options it would format on every request */
	snprintf(ua, sizeof ua, "ducky-lua/%s libcurl/%s", DUCKY_VERSION,
	         curl_version_info(CURLVERSION_NOW)->version);
	const char *agent = opt_string(L, "user_agent", NULL, ua);
	if (has_ctl(agent, strlen(agent)))
		return luaL_error(L, "ducky.client: user_agent holds CR, LF or NUL");
	const char *ua_line = lua_pushfstring(L, "User-Agent: %s", agent); /* kept on the stack */

	c->timeout = cl_opt_number(L, 1, "timeout", 30, 0.001, 1e6);
	c->connect_timeout = cl_opt_number(L, 1, "connect_timeout", 10, 0.001, 1e6);
	c->retries = (int)cl_opt_number(L, 1, "retries", 2, 0, 100);
	c->refresh_margin = cl_opt_number(L, 1, "refresh_margin", 60, 0, 1e9);
	c->auth_backoff = cl_opt_number(L, 1, "auth_backoff", 60, 0, 1e9);
	c->max_per_hour = (int)cl_opt_number(L, 1, "max_exchanges_per_hour", 20, 1, 1e6);
	c->max_retry_after = cl_opt_number(L, 1, "max_retry_after", 30, 0, 1e6);
	double max_body = cl_opt_number(L, 1, "max_body", 64.0 * 1024 * 1024, 1, 1e15);

	build_token_request(L, c, auth, id ? id : "", secret ? secret : "", aud, ua_line);
	make_key(L, c, auth);

	lua_getfield(L, 1, "headers");
	if (lua_istable(L, -1))
		add_headers(L, lua_gettop(L), &c->api_headers, "ducky.client");
	lua_pop(L, 1);
	/* libcurl adds its own Accept header; "Expect:" goes only with a body */
	if (add_default(&c->api_headers, ua_line) ||
	    add_default(&c->api_headers, "Accept-Encoding: gzip, deflate"))
		return luaL_error(L, "out of memory");

	lua_getfield(L, 1, "token_cache");
	if (lua_istable(L, -1)) {
		lua_getfield(L, -1, "load");
		lua_getfield(L, -2, "store");
		if (lua_type(L, -1) != LUA_TFUNCTION || lua_type(L, -2) != LUA_TFUNCTION)
			return luaL_error(L, "ducky.client: token_cache table needs load and "
			                     "store functions");
		lua_getfield(L, -3, "lock");
		lua_getfield(L, -4, "unlock");
		c->store_locks = lua_type(L, -2) == LUA_TFUNCTION;
		if (c->store_locks != (lua_type(L, -1) == LUA_TFUNCTION))
			return luaL_error(L,
			                  "ducky.client: token_cache lock and unlock go together");
		lua_pop(L, 4);
		c->ref_store = luaL_ref(L, LUA_REGISTRYINDEX);
		c->store_kind = STORE_LUA;
	} else {
		int on = lua_isnil(L, -1) || lua_type(L, -1) == LUA_TSTRING;
		const char *path = lua_tostring(L, -1);
		c->store_kind = STORE_MEMORY;
		if (on && ducky_store_init(&c->files, path, &c->store_problem) == 0)
			c->store_kind = STORE_FILE;
		lua_pop(L, 1);
	}
	c->ref_log = ref_option(L, "log");
	lua_getfield(L, LUA_REGISTRYINDEX, PRIVATE);
	lua_getfield(L, -1, "decode");
	c->ref_decode = luaL_ref(L, LUA_REGISTRYINDEX);
	lua_pop(L, 1);

	lua_getfield(L, 1, "insecure");
	int insecure = lua_toboolean(L, -1);
	lua_pop(L, 1);
	static const char *const versions[] = {"2", "1.1", "2-prior-knowledge", NULL};
	static const long curl_versions[] = {CURL_HTTP_VERSION_2TLS, CURL_HTTP_VERSION_1_1,
	                                     CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE};
	int v = opt_choice(L, "http_version", versions, "2");
	ducky_http_conf conf = {opt_string(L, "ca_file", NULL, NULL),
	                        opt_string(L, "ca_path", NULL, NULL),
	                        opt_string(L, "proxy", NULL, NULL),
	                        insecure,
	                        (size_t)max_body,
	                        curl_versions[v]};
	c->conf = conf; /* kept for the batch pool's handles */
	c->conf.ca_file = dup_or_raise(L, conf.ca_file);
	c->conf.ca_path = dup_or_raise(L, conf.ca_path);
	c->conf.proxy = dup_or_raise(L, conf.proxy);
	ducky_err_init(&err);
	if (ducky_http_open(&c->http, &conf, &err)) {
		lua_pushstring(L, err.message ? err.message : "out of memory");
		ducky_err_clear(&err);
		return lua_error(L);
	}
	lua_pushvalue(L, 2); /* the client */
	return 1;
}

/* ---- the module ------------------------------------------------------- */

static const luaL_Reg client_methods[] = {
    {"ping", c_ping},       {"ping_protected", c_ping_protected},
    {"request", c_request}, {"batch", c_batch},
    {"token", c_token},     {"invalidate", c_invalidate},
    {"stats", c_stats},     {"close", c_close},
    {NULL, NULL},
};

static const luaL_Reg client_metamethods[] = {
    {"__gc", c_close},
    {"__close", c_close},
    {"__tostring", c_tostring},
    {NULL, NULL},
};

static const luaL_Reg module_functions[] = {
    {"client", l_client},
    {"is_error", ducky_is_error},
    {"error", ducky_error_new},
    {NULL, NULL},
};

__attribute__((visibility("default"))) int luaopen_ducky(lua_State *L);
int luaopen_ducky(lua_State *L)
{
	lua_newtable(L); /* the private table: cjson's encode and decode */
	lua_getglobal(L, "require");
	lua_pushliteral(L, "cjson");
	lua_call(L, 1, 1);
	lua_getfield(L, -1, "encode");
	lua_setfield(L, -3, "encode");
	lua_getfield(L, -1, "decode");
	lua_setfield(L, -3, "decode");
	lua_pop(L, 1);
	lua_setfield(L, LUA_REGISTRYINDEX, PRIVATE);

	ducky_error_open(L);
	luaL_newmetatable(L, CLIENT_MT);
	ducky_setfuncs(L, client_metamethods, 0);
	lua_newtable(L);
	ducky_setfuncs(L, client_methods, 0);
	lua_setfield(L, -2, "__index");
	lua_pop(L, 1);

	lua_newtable(L);
	ducky_setfuncs(L, module_functions, 0);
	lua_pushliteral(L, DUCKY_VERSION);
	lua_setfield(L, -2, "_VERSION");
	lua_pushliteral(L, DEFAULT_BASE_URL);
	lua_setfield(L, -2, "BASE_URL");
	lua_pushliteral(L, DEFAULT_TOKEN_URL);
	lua_setfield(L, -2, "TOKEN_URL");
	lua_pushliteral(L, DEFAULT_AUDIENCE);
	lua_setfield(L, -2, "AUDIENCE");
	return 1;
}
