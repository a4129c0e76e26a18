/* Answers as Lua values: `res` for a success, and the one builder of an error
 * from an HTTP answer (the API's and the token endpoint's). */
#include <string.h>
#include <strings.h>

#include "answer.h"
#include "lua_error.h"
#include "lua_headers.h"

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

/* The string at t[k] (t a table at index t), or NULL; alive while t is. */
static const char *string_field(lua_State *L, int t, const char *k)
{
	const char *v = NULL;
	if (lua_istable(L, t)) {
		lua_getfield(L, t, k);
		v = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
		lua_pop(L, 1);
	}
	return v;
}

void cl_answer_error(lua_State *L, client *c, const ducky_answer *a, const answer_of *of,
                     int bad_json, ducky_err *err)
{
	long s = a->status;
	int token = !of->method, t;
	if (bad_json || !(token || is_json_type(ducky_answer_header(a, "content-type"))) ||
	    !cl_json_decode(L, a->body.data ? a->body.data : "", a->body.len))
		lua_pushnil(L);
	t = lua_gettop(L);
	const char *code = string_field(L, t, "error"),
	           *desc = string_field(L, t, "error_description");
	err->status = s;
	err->retryable = ducky_retryable(s, 0);
	err->retry_after = ducky_retry_after(ducky_answer_header(a, "retry-after"), ducky_wall());
	/* the token endpoint may quote the secret back: masked */
	err->code = token ? ducky_creds_scrub(&c->creds, code) : ducky_strdup(code);
	err->description = token ? ducky_creds_scrub(&c->creds, desc) : ducky_strdup(desc);
	code = err->code;
	desc = err->description;
	if (token)
		ducky_fail(err, s == 400 || s == 401 || s == 403 ? DUCKY_E_AUTH : DUCKY_E_HTTP,
		           "token endpoint answered %ld%s%.*s%s%.*s", s, code ? " " : "",
		           ducky_utf8_fit(code ? code : "", 100), code ? code : "",
		           desc ? ": " : "", ducky_utf8_fit(desc ? desc : "", 300),
		           desc ? desc : "");
	else
		ducky_fail(err,
		           bad_json   ? DUCKY_E_DECODE
		           : s == 401 ? DUCKY_E_AUTH
		                      : DUCKY_E_HTTP,
		           "%s %.300s answered %ld%s%s%s%.*s", of->method, of->url, s,
		           bad_json ? " with invalid JSON" : "",
		           s == 401 && of->replayed ? " twice, with a fresh token" : "",
		           desc ? ": " : "", ducky_utf8_fit(desc ? desc : "", 300),
		           desc ? desc : "");
}

/* Sets status, headers, body, json (when decodable) on the table on top. 1 if JSON failed. */
static int add_response(lua_State *L, const ducky_answer *a)
{
	int bad_json = 0;
	lua_pushinteger(L, (lua_Integer)a->status);
	lua_setfield(L, -2, "status");
	cl_headers_push(L, a->head.data, a->head.len);
	lua_setfield(L, -2, "headers");
	lua_pushlstring(L, a->body.data ? a->body.data : "", a->body.len);
	if (a->body.len && is_json_type(ducky_answer_header(a, "content-type"))) {
		lua_pushvalue(L, -1); /* decoded from the body's own string, not a second copy */
		if (cl_json_decode_top(L))
			lua_setfield(L, -3, "json");
		else
			bad_json = 1;
	}
	lua_setfield(L, -2, "body");
	return bad_json;
}

/* nil and the error for an answer that is not a success: the answer's fields
 * (status, headers, body, json) and the request id besides. */
static int push_http_error(lua_State *L, client *c, const ducky_answer *a, const answer_of *of,
                           int bad_json, int attempts)
{
	ducky_err err;
	ducky_err_init(&err);
	err.attempts = attempts;
	lua_pushnil(L);
	lua_createtable(L, 0, 16);
	add_response(L, a);
	cl_answer_error(L, c, a, of, bad_json, &err);
	lua_pop(L, 1); /* the decoded body */
	ducky_error_set(L, &err);
	ducky_err_clear(&err);
	const char *rid = ducky_answer_header(a, "x-request-id");
	if (rid) {
		lua_pushstring(L, rid);
		lua_setfield(L, -2, "request_id");
	}
	return 2;
}

int cl_push_answer(lua_State *L, client *c, const ducky_answer *a, const answer_of *of,
                   int attempts)
{
	if (a->status >= 200 && a->status < 300) {
		lua_createtable(L, 0, 5);
		if (!add_response(L, a)) {
			lua_pushinteger(L, attempts);
			lua_setfield(L, -2, "attempts");
			return 1;
		}
		lua_pop(L, 1);
		c->st.errors++; /* a success that does not decode: an error after all */
		return push_http_error(L, c, a, of, 1, attempts);
	}
	return push_http_error(L, c, a, of, 0, attempts);
}

int cl_push_result(lua_State *L, client *c, const ducky_result *r)
{
	if (r->err.kind != DUCKY_OK) {
		ducky_err err;
		ducky_err_init(&err);
		ducky_err_copy(&err, &r->err);
		return cl_push_err(L, &err);
	}
	if (!r->token) {
		answer_of of = {.method = r->method, .url = r->url, .replayed = r->replayed};
		return cl_push_answer(L, c, &r->ans, &of, r->attempts);
	}
	lua_pushlstring(L, r->token, r->token_len);
	lua_pushnumber(L, r->expires - ducky_now());
	lua_createtable(L, 0, 2);
	lua_pushstring(L, ducky_from_names[r->from]);
	lua_setfield(L, -2, "source");
	lua_pushstring(L, r->fingerprint);
	lua_setfield(L, -2, "fingerprint");
	return 3;
}
