/* One API call: arguments -> headers -> send -> 401 replay -> answer. */
#include <ctype.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "call.h"
#include "client_token.h"
#include "headers.h"
#include "lua_error.h"
#include "url.h"

/* ---- arguments ---------------------------------------------------------- */

static int add_query_value(lua_State *L, ducky_buf *b, const char *key, size_t klen, int v,
                           const char *what)
{
	size_t vlen;
	const char *val;
	if (lua_type(L, v) == LUA_TBOOLEAN)
		val = lua_toboolean(L, v) ? "true" : "false";
	else if (lua_type(L, v) == LUA_TSTRING || lua_type(L, v) == LUA_TNUMBER)
		val = lua_tostring(L, v);
	else
		return luaL_error(L,
		                  "%s: query value for '%s' must be a string, number, boolean "
		                  "or an array of them",
		                  what, key);
	vlen = strlen(val);
	if (lua_type(L, v) == LUA_TSTRING)
		lua_tolstring(L, v, &vlen);
	if (ducky_buf_add(b, b->data && strchr(b->data, '?') ? "&" : "?", 1) ||
	    ducky_buf_add_escaped(b, key, klen) || ducky_buf_add(b, "=", 1) ||
	    ducky_buf_add_escaped(b, val, vlen))
		return luaL_error(L, "out of memory");
	return 0;
}

/* One key of the query: its value, or each value of its array. */
static void add_query_key(lua_State *L, ducky_buf *b, const char *key, size_t klen,
                          const char *what)
{
	if (!lua_istable(L, -1)) {
		add_query_value(L, b, key, klen, lua_gettop(L), what);
		return;
	}
	size_t m = ducky_rawlen(L, -1), count = 0;
	lua_pushnil(L);
	while (lua_next(L, -2)) {
		lua_pop(L, 1);
		count++;
	}
	if (count != m)
		luaL_error(L,
		           "%s: query value for '%s' must be a string, number, boolean or an "
		           "array of them",
		           what, key);
	for (size_t j = 1; j <= m; j++) {
		lua_rawgeti(L, -1, (int)j);
		add_query_value(L, b, key, klen, lua_gettop(L), what);
		lua_pop(L, 1);
	}
}

typedef struct qkey {
	const char *s; /* alive: a key of the query table */
	size_t len;
} qkey;

static int cmp_key(const void *a, const void *b)
{
	const qkey *x = a, *y = b;
	return cl_cmp_lstr(x->s, x->len, y->s, y->len);
}

/* Appends ?k=v&… for the query table at idx, keys sorted, arrays repeated. */
static void add_query(lua_State *L, int idx, ducky_buf *b, const char *what)
{
	size_t n = 0, i;
	qkey *keys;
	lua_pushnil(L);
	while (lua_next(L, idx)) {
		if (lua_type(L, -2) != LUA_TSTRING)
			luaL_error(L, "%s: query keys must be strings", what);
		n++;
		lua_pop(L, 1);
	}
	keys = ducky_newuserdata(L, n ? n * sizeof *keys : 1);
	lua_pushnil(L);
	for (i = 0; lua_next(L, idx); i++) {
		keys[i].s = lua_tolstring(L, -2, &keys[i].len);
		lua_pop(L, 1);
	}
	qsort(keys, n, sizeof *keys, cmp_key);
	for (i = 0; i < n; i++) {
		lua_pushlstring(L, keys[i].s, keys[i].len);
		lua_rawget(L, idx);
		add_query_key(L, b, keys[i].s, keys[i].len, what);
		lua_pop(L, 1);
	}
	lua_pop(L, 1);
}

/* What a call's options table says. */
typedef struct call_opts {
	double timeout, retries;
	int auth;
	int query, json, body, headers; /* stack indexes, 0: unset */
} call_opts;

#define O(name, types, lo, hi, field)                                                              \
	{                                                                                          \
		name, types, NULL, lo, hi, offsetof(call_opts, field)                              \
	}
static const cl_opt call_options[] = {
    O("query", CL_T(LUA_TTABLE), 0, 0, query),
    O("json", CL_ANY, 0, 0, json),
    O("body", CL_T(LUA_TSTRING) | CL_KEEP, 0, 0, body),
    O("headers", CL_T(LUA_TTABLE), 0, 0, headers),
    O("timeout", CL_T(LUA_TNUMBER), 0.001, 1e6, timeout),
    O("retries", CL_T(LUA_TNUMBER), 0, 100, retries),
    O("auth", CL_T(LUA_TBOOLEAN), 0, 0, auth),
    {NULL, 0, NULL, 0, 0, 0},
};
#undef O

/* The body (json encoded, or as given) on top, or nil; its type's header into *ctype. */
static void push_body(lua_State *L, client *c, const call_opts *o, const char *what,
                      const char **ctype)
{
	*ctype = NULL;
	if (o->json && o->body)
		luaL_error(L, "%s: json and body exclude each other", what);
	if (o->json) {
		lua_rawgeti(L, LUA_REGISTRYINDEX, c->ref_encode);
		lua_pushvalue(L, o->json);
		if (lua_pcall(L, 1, 1, 0) != 0)
			luaL_error(L, "%s: json: %s", what, lua_tostring(L, -1));
		*ctype = "Content-Type: application/json";
	} else if (o->body) {
		lua_pushvalue(L, o->body);
		*ctype = "Content-Type: application/octet-stream";
	} else {
		lua_pushnil(L);
	}
}

int cl_parse_call(lua_State *L, client *c, const int at[3], const char *what, call *k,
                  struct curl_slist **extra, ducky_buf *url, ducky_err *err)
{
	size_t mlen, plen;
	if (lua_type(L, at[0]) != LUA_TSTRING || lua_type(L, at[1]) != LUA_TSTRING)
		luaL_error(L, "%s: the method and the path must be strings, not %s and %s", what,
		           luaL_typename(L, at[0]), luaL_typename(L, at[1]));
	const char *m = lua_tolstring(L, at[0], &mlen);
	const char *path = lua_tolstring(L, at[1], &plen);
	const char *ctype;
	int top = lua_gettop(L);
	call_opts o = {.timeout = c->lim.timeout, .retries = c->lim.retries, .auth = 1};

	if (!cl_is_token(m, mlen) || mlen >= sizeof k->method)
		luaL_error(L, "%s: not an HTTP method name", what);
	for (size_t i = 0; i <= mlen; i++)
		k->method[i] = (char)toupper((unsigned char)m[i]);
	if (at[2] && !lua_isnil(L, at[2])) {
		if (!lua_istable(L, at[2]))
			luaL_error(L, "%s: options must be a table", what);
		cl_read_options(L, at[2], call_options, &o, what);
	}
	push_body(L, c, &o, what, &ctype);
	if (o.headers)
		cl_add_headers(L, o.headers, extra, what);
	if (o.auth && ducky_headers_has(*extra, "Authorization:"))
		luaL_error(L, "%s: an Authorization header of your own needs auth = false", what);
	/* a body: our Content-Type unless the caller gave one, and no
	 * "Expect: 100-continue" wait (libcurl's for bodies over 1 MiB) */
	if (ctype && (ducky_headers_add_default(extra, ctype) ||
	              ducky_headers_add_default(extra, "Expect:")))
		luaL_error(L, "out of memory");
	if (cl_has_ctl(path, plen) || memchr(path, ' ', plen))
		luaL_error(L, "%s: path holds a space, CR, LF or NUL", what);
	int rc = ducky_url_join(url, c->base_url, path, plen, err);
	if (rc == 0 && o.query)
		add_query(L, o.query, url, what);
	lua_replace(L, top + 1); /* the body (or nil) */
	lua_settop(L, top + 1);
	k->body = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &k->body_len) : NULL;
	k->url = url->data;
	k->extra = *extra;
	k->auth = o.auth;
	k->timeout = o.timeout;
	k->retries = (int)o.retries;
	return rc;
}

/* ---- headers ------------------------------------------------------------ */

struct curl_slist *cl_auth_headers(client *c, ducky_err *err)
{
	if (c->auth_headers && c->auth_gen == c->tok.gen)
		return c->auth_headers;
	ducky_headers_free(c->auth_headers);
	c->auth_headers = NULL;
	ducky_buf line = {0};
	struct curl_slist *l = NULL;
	int bad = ducky_buf_adds(&line, "Authorization: Bearer ") ||
	          ducky_buf_add(&line, c->tok.token, c->tok.len) ||
	          ducky_headers_append(&l, line.data);
	for (struct curl_slist *p = c->api_headers; p && !bad; p = p->next)
		bad = ducky_headers_append(&l, p->data);
	ducky_buf_free(&line);
	if (bad) {
		ducky_headers_free(l);
		ducky_fail(err, DUCKY_E_LIMIT, "out of memory");
		return NULL;
	}
	c->auth_gen = c->tok.gen;
	return c->auth_headers = l;
}

/* ---- answers ------------------------------------------------------------- */

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

/* Sets status, headers, body, json (when decodable) on the table on top. 1 if JSON failed. */
static int add_response(lua_State *L, const client *c, const ducky_http *h)
{
	int bad_json = 0;
	lua_pushinteger(L, (lua_Integer)h->status);
	lua_setfield(L, -2, "status");
	cl_headers_push(L, h->head.data, h->head.len);
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

/* The string at json[k] of the table on top, or NULL (alive while the table is). */
static const char *json_string(lua_State *L, const char *k)
{
	const char *v = NULL;
	lua_getfield(L, -1, "json");
	if (lua_istable(L, -1)) {
		lua_getfield(L, -1, k);
		v = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
		lua_pop(L, 1);
	}
	lua_pop(L, 1);
	return v;
}

/* nil and the error for an answer that is not a success: the answer's fields
 * (status, headers, body, json), the request id, and the OAuth-style error and
 * description when its JSON has them, the description in the message too. */
static int push_http_error(lua_State *L, client *c, const ducky_http *h, const call *k,
                           int replayed, int bad_json, ducky_err *err)
{
	long s = h->status;
	c->st.errors++;
	lua_pushnil(L);
	lua_createtable(L, 0, 16);
	add_response(L, c, h);
	const char *desc = bad_json ? NULL : json_string(L, "error_description");
	err->status = s;
	err->retryable = ducky_retryable_status(s);
	err->retry_after = ducky_retry_after(ducky_http_header(h, "retry-after"), ducky_wall());
	err->code = ducky_strdup(bad_json ? NULL : json_string(L, "error"));
	err->description = ducky_strdup(desc);
	ducky_fail(err,
	           bad_json   ? DUCKY_E_DECODE
	           : s == 401 ? DUCKY_E_AUTH
	                      : DUCKY_E_HTTP,
	           "%s %.300s answered %ld%s%s%s%.300s", k->method, k->url, s,
	           bad_json ? " with invalid JSON" : "",
	           s == 401 && replayed ? " twice, with a fresh token" : "", desc ? ": " : "",
	           desc ? desc : "");
	ducky_error_set(L, err);
	ducky_err_clear(err);
	const char *rid = ducky_http_header(h, "x-request-id");
	if (rid) {
		lua_pushstring(L, rid);
		lua_setfield(L, -2, "request_id");
	}
	return 2;
}

int cl_push_answer(lua_State *L, client *c, const ducky_http *h, const call *k, int attempts,
                   int replayed, ducky_err *err)
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
		return push_http_error(L, c, h, k, replayed, 1, err);
	}
	return push_http_error(L, c, h, k, replayed, 0, err);
}

/* ---- one call: the token, send, a 401 replayed once, the answer ---------- */

static int do_call(lua_State *L, client *c, const call *k)
{
	cl_run r = cl_start(L, c, k->timeout, k->retries);
	ducky_err err;
	int attempts = 0, total = 0, replay = 0;
	ducky_err_init(&err);
	c->st.requests++;
	for (;; replay++) {
		struct curl_slist *base = c->api_headers, *merged = NULL;
		token_source src;
		if (k->auth &&
		    (cl_get_token(&r, &src, &err) || !(base = cl_auth_headers(c, &err)))) {
			err.attempts += total;
			return cl_push_error(L, c, &err);
		}
		if (k->extra && !(base = merged = ducky_headers_merge(k->extra, base))) {
			ducky_fail(&err, DUCKY_E_LIMIT, "out of memory");
			return cl_push_error(L, c, &err);
		}
		ducky_req req = {.method = k->method,
		                 .url = k->url,
		                 .headers = base,
		                 .body = k->body,
		                 .body_len = k->body_len,
		                 .idempotent = ducky_idempotent(k->method),
		                 .deadline = r.deadline,
		                 .connect_timeout = c->lim.connect_timeout,
		                 .retries = k->retries,
		                 .max_retry_after = c->lim.max_retry_after};
		int rc = ducky_http_send(&c->http, &req, cl_on_retry, &r, &attempts, &err);
		ducky_headers_free(merged);
		total += attempts;
		if (rc) {
			err.attempts = total;
			return cl_push_error(L, c, &err);
		}
		if (c->http.status != 401 || !k->auth || replay)
			break;
		cl_drop_token(&r);
		c->st.replays_401++;
		cl_emit(&r, &(event){.event = "replay_401"});
	}
	return cl_push_answer(L, c, &c->http, k, total, replay, &err);
}

/* ---- the methods --------------------------------------------------------- */

static int simple_get(lua_State *L, const char *path, int auth)
{
	client *c = cl_self(L);
	ducky_err err;
	ducky_err_init(&err);
	if (ducky_url_join(&c->url, c->base_url, path, strlen(path), &err))
		return cl_push_error(L, c, &err);
	call k = {.method = "GET",
	          .url = c->url.data,
	          .auth = auth,
	          .retries = c->lim.retries,
	          .timeout = c->lim.timeout};
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

static int request_body(lua_State *L)
{
	client *c = cl_self(L);
	static const int at[3] = {2, 3, 4};
	ducky_err err;
	call k;
	lua_settop(L, 4);
	ducky_headers_free(c->extra);
	c->extra = NULL;
	ducky_err_init(&err);
	if (cl_parse_call(L, c, at, "client:request", &k, &c->extra, &c->url, &err))
		return cl_push_error(L, c, &err);
	return do_call(L, c, &k);
}

int cl_ping(lua_State *L)
{
	return cl_guarded(L, ping_body, "ping");
}

int cl_ping_protected(lua_State *L)
{
	return cl_guarded(L, ping_protected_body, "ping_protected");
}

int cl_request(lua_State *L)
{
	return cl_guarded(L, request_body, "request");
}
