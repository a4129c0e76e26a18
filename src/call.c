/* One API call: its arguments read and checked, then started on the engine
 * and waited for (request, ping, ping_protected). */
#include <ctype.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "call.h"
#include "client_engine.h"
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
    O("retries", CL_T(LUA_TNUMBER) | CL_INT, 0, 100, retries),
    O("auth", CL_T(LUA_TBOOLEAN), 0, 0, auth),
    {NULL, 0, NULL, 0, 0, 0},
};
#undef O

void cl_push_call_options(lua_State *L)
{
	lua_newtable(L);
	for (int i = 0; call_options[i].name; i++) {
		lua_pushstring(L, call_options[i].name);
		lua_rawseti(L, -2, i + 1);
	}
}

/* The body (json encoded, or as given) on top, or nil; its type's header into *ctype. */
static void push_body(lua_State *L, const call_opts *o, const char *what, const char **ctype)
{
	*ctype = NULL;
	if (o->json && o->body)
		luaL_error(L, "%s: json and body exclude each other", what);
	if (o->json) {
		lua_getfield(L, LUA_REGISTRYINDEX, CL_JSON);
		lua_rawgeti(L, -1, 1); /* encode */
		lua_remove(L, -2);
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

int cl_parse_call(lua_State *L, client *c, call *k, ducky_err *err)
{
	struct curl_slist **extra = k->extra;
	ducky_buf *url = k->url;
	size_t mlen, plen;
	const int *at = k->at;
	const char *what = k->what;
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
	push_body(L, &o, what, &ctype);
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
	k->k = (ducky_call){.method = k->method,
	                    .url = url->data,
	                    .extra = *extra,
	                    .auth = o.auth,
	                    .retries = (int)o.retries,
	                    .timeout = o.timeout};
	if (lua_type(L, -1) == LUA_TSTRING)
		k->k.body = lua_tolstring(L, -1, &k->k.body_len);
	return rc;
}

/* ---- the blocking calls ------------------------------------------------- */

static int simple_get(lua_State *L, const char *path, int auth)
{
	client *c = cl_self(L);
	ducky_err err;
	ducky_err_init(&err);
	if (ducky_url_join(&c->url, c->base_url, path, strlen(path), &err))
		return cl_push_error(L, c, &err);
	ducky_call k = {.method = "GET",
	                .url = c->url.data,
	                .auth = auth,
	                .retries = c->lim.retries,
	                .timeout = c->lim.timeout};
	return cl_call(L, c, &k);
}

static int ping_body(lua_State *L)
{
	return simple_get(L, "ping", 0);
}

static int ping_protected_body(lua_State *L)
{
	return simple_get(L, "ping/protected", 1);
}

int cl_parse_single(lua_State *L, client *c, call *k, ducky_err *err)
{
	lua_settop(L, 4);
	ducky_headers_free(c->extra);
	c->extra = NULL;
	k->at[0] = 2;
	k->at[1] = 3;
	k->at[2] = 4;
	k->extra = &c->extra;
	k->url = &c->url;
	return cl_parse_call(L, c, k, err);
}

static int request_body(lua_State *L)
{
	client *c = cl_self(L);
	ducky_err err;
	call k = {.what = "client:request"};
	ducky_err_init(&err);
	if (cl_parse_single(L, c, &k, &err))
		return cl_push_error(L, c, &err);
	return cl_call(L, c, &k.k);
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
