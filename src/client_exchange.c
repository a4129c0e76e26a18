/* The token exchange's answer, read for the engine (its read_token callback):
 * decoded by lua-cjson, the token and its lifetime checked, the refusal as an
 * error (answer.c builds it), the rate-limit and quota headers kept. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "answer.h"
#include "client_exchange.h"

typedef struct exchange_ctx {
	client *c;
	const ducky_answer *a;
	ducky_fresh *out;
	ducky_err *err;
} exchange_ctx;

static const char *string_field(lua_State *L, int t, const char *name)
{
	lua_getfield(L, t, name);
	const char *s = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
	lua_pop(L, 1); /* the table keeps the string alive */
	return s;
}

/* The number that is all of v[0..n), or NAN. */
static double number_of(const char *v, size_t n)
{
	char buf[32], *end;
	if (n == 0 || n >= sizeof buf)
		return NAN;
	memcpy(buf, v, n);
	buf[n] = '\0';
	double d = strtod(buf, &end);
	return *end == '\0' && isfinite(d) && fabs(d) < 1e15 ? d : NAN;
}

static void push_number(lua_State *L, double n)
{
	if (n == floor(n))
		lua_pushinteger(L, (lua_Integer)n);
	else
		lua_pushnumber(L, n);
}

/* One bucket of Auth0-Client-Quota-Limit, "b=per_hour;q=10;r=9;t=3581", set
 * as t.per_hour = { q = 10, r = 9, t = 3581 } in the table on top; buckets
 * of other names and fields that are not numbers are left out. */
static void add_bucket(lua_State *L, const char *s, size_t n)
{
	static const char *const names[] = {"per_hour", "per_day", NULL};
	const char *name = NULL;
	lua_newtable(L);
	for (const char *end = s + n; s < end;) {
		size_t f = strcspn(s, ";,"), k = strcspn(s, "=");
		const char *v = s + k + 1;
		size_t vn = k < f ? f - k - 1 : 0;
		for (int i = 0; k == 1 && *s == 'b' && names[i]; i++)
			if (strlen(names[i]) == vn && memcmp(names[i], v, vn) == 0)
				name = names[i];
		if (k == 1 && strchr("qrt", *s) && !isnan(number_of(v, vn))) {
			push_number(L, number_of(v, vn));
			lua_setfield(L, -2, (char[2]){*s, '\0'});
		}
		s += f + (s + f < end);
	}
	if (name)
		lua_setfield(L, -2, name);
	else
		lua_pop(L, 1);
}

/* The token endpoint's rate-limit and quota headers, numbers only: a server
 * that echoes anything else (the secret, say) has it dropped. */
static void keep_rate_limit(lua_State *L, const char *name, const char *value)
{
	if (strcmp(name, "auth0-client-quota-limit") == 0) {
		lua_newtable(L);
		for (const char *b = value; *b; b += *b == ',') {
			size_t n = strcspn(b, ",");
			add_bucket(L, b, n);
			b += n;
		}
		lua_pushnil(L);
		if (!lua_next(L, -2)) { /* no bucket of a known name: nothing kept */
			lua_pop(L, 1);
			return;
		}
		lua_pop(L, 2);
	} else if (!isnan(number_of(value, strlen(value)))) {
		push_number(L, number_of(value, strlen(value)));
	} else {
		return;
	}
	lua_setfield(L, -2, name);
}

static void keep_rate_limits(lua_State *L, client *c, const ducky_answer *a)
{
	const char *pos = NULL, *p, *value;
	while (ducky_answer_next_header(a, &pos, &p, &value)) {
		if (strncmp(p, "x-ratelimit-", 12) != 0 &&
		    strcmp(p, "auth0-client-quota-limit") != 0)
			continue;
		if (c->ref_limits == LUA_NOREF) {
			lua_newtable(L);
			c->ref_limits = luaL_ref(L, LUA_REGISTRYINDEX);
		}
		lua_rawgeti(L, LUA_REGISTRYINDEX, c->ref_limits);
		keep_rate_limit(L, p, value);
		lua_pop(L, 1);
	}
}

/* A 2xx answer: the token and its lifetime, checked. */
static void read_token(lua_State *L, int t, exchange_ctx *x)
{
	size_t len = 0;
	lua_getfield(L, t, "access_token");
	const char *tok = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &len) : NULL;
	lua_getfield(L, t, "expires_in");
	double expires_in = lua_type(L, -1) == LUA_TNUMBER ? lua_tonumber(L, -1) : -1;
	/* a token_type that is not Bearer is quoted in the error: masked, as the
	 * server may quote the secret back (masking leaves it not Bearer) */
	const char *type = string_field(L, t, "token_type");
	char *masked = NULL;
	if (type && strcasecmp(type, "bearer") != 0 &&
	    !(type = masked = ducky_creds_scrub(&x->c->creds, type))) {
		ducky_fail(x->err, DUCKY_E_LIMIT, "out of memory");
		return;
	}
	int bad = ducky_token_validate(tok, len, type, expires_in, x->err);
	free(masked);
	if (bad)
		return;
	if (!(x->out->token = ducky_strndup(tok, len))) {
		ducky_fail(x->err, DUCKY_E_LIMIT, "out of memory");
		return;
	}
	x->out->lifetime = ducky_token_lifetime(expires_in);
	x->out->expires_at = ducky_wall() + x->out->lifetime;
}

/* Reads the token endpoint's answer (protected: may raise on memory). */
static int read_answer(lua_State *L)
{
	exchange_ctx *x = lua_touserdata(L, 1);
	const ducky_answer *a = x->a;
	keep_rate_limits(L, x->c, a);
	if (a->status < 200 || a->status >= 300) {
		cl_answer_error(L, x->c, a, &(answer_of){0}, 0, x->err);
		return 0;
	}
	if (!cl_json_decode(L, a->body.data ? a->body.data : "", a->body.len) ||
	    lua_type(L, -1) != LUA_TTABLE)
		ducky_fail(x->err, DUCKY_E_DECODE,
		           "token endpoint answered %ld with a body that is not a JSON object",
		           a->status);
	else
		read_token(L, lua_gettop(L), x);
	return 0;
}

int cl_read_token(void *ud, const ducky_answer *a, ducky_fresh *out, ducky_err *err)
{
	client *c = ud;
	lua_State *L = c->L;
	exchange_ctx x = {.c = c, .a = a, .out = out, .err = err};
	if (ducky_cpcall(L, read_answer, &x) != 0) {
		if (err->kind == DUCKY_OK)
			ducky_fail(err, DUCKY_E_DECODE, "reading the token answer: %s",
			           lua_isstring(L, -1) ? lua_tostring(L, -1) : "error");
		lua_pop(L, 1);
	}
	return err->kind == DUCKY_OK ? 0 : -1;
}
