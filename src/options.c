/* Options read from tables by a list of names, types, ranges and DUCKY_*
 * variables; header tables. The binding's one validator. */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "options.h"

static const char *type_words(int types)
{
	switch (types) {
	case CL_T(LUA_TSTRING):
		return "a string";
	case CL_T(LUA_TNUMBER):
		return "a number";
	case CL_T(LUA_TBOOLEAN):
		return "a boolean";
	case CL_T(LUA_TTABLE):
		return "a table";
	case CL_T(LUA_TFUNCTION):
		return "a function";
	default:
		return "false, a path or a table"; /* token_cache, the one mixed option */
	}
}

static const cl_opt *find_opt(const cl_opt *opts, lua_State *L, int key)
{
	if (lua_type(L, key) != LUA_TSTRING)
		return NULL;
	for (; opts->name; opts++)
		if (strcmp(opts->name, lua_tostring(L, key)) == 0)
			return opts;
	return NULL;
}

/* Names and types of every key, before anything is read. */
static void check_keys(lua_State *L, int idx, const cl_opt *opts, const char *what)
{
	lua_pushnil(L);
	while (lua_next(L, idx)) {
		const cl_opt *o = find_opt(opts, L, -2);
		if (!o)
			luaL_error(L, "%s: unknown option '%s'", what,
			           lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2)
			                                          : luaL_typename(L, -2));
		if (!(CL_TYPES(o) & CL_T(lua_type(L, -1))))
			luaL_error(L, "%s: option '%s' must be %s, not %s", what, o->name,
			           type_words(CL_TYPES(o)), luaL_typename(L, -1));
		lua_pop(L, 1);
	}
}

/* The one reader of a number in a DUCKY_* variable: decimal digits, and for a
 * number that need not be whole a fraction after a dot; nothing else (no
 * sign, space, exponent, hex, inf or nan), whatever the locale. 0 with *out
 * set, or -1. */
static int strict_number(const char *v, int whole, double *out)
{
	static const char digits[] = "0123456789";
	size_t n = strspn(v, digits), f = 0;
	double d = 0, scale = 1;
	if (n && v[n] == '.' && !whole)
		f = strspn(v + n + 1, digits);
	if (n == 0 || v[n + (f ? f + 1 : 0)] != '\0')
		return -1;
	for (size_t k = 0; k < n; k++)
		d = d * 10 + (v[k] - '0');
	for (size_t k = 0; k < f; k++)
		d += (v[n + 1 + k] - '0') * (scale /= 10);
	*out = d;
	return 0;
}

static void number_from_env(lua_State *L, const cl_opt *o, const char *v, char *out,
                            const char *what)
{
	double d = 0;
	char lo[32], hi[32];
	int whole = (o->types & CL_INT) != 0;
	if (strict_number(v, whole, &d) == 0 && d >= o->lo && d <= o->hi) {
		*(double *)(void *)(out + o->off) = d;
		return;
	}
	snprintf(lo, sizeof lo, "%.15g", o->lo);
	snprintf(hi, sizeof hi, "%.15g", o->hi);
	luaL_error(L, "%s: %s must be %s from %s to %s, for option '%s'", what, o->env,
	           whole ? "a whole number (digits only)"
	                 : "a number (digits, and a fraction after a dot)",
	           lo, hi, o->name);
}

/* Stores o's environment variable, when set, at out + o->off, without making
 * it a Lua value (DUCKY_CLIENT_SECRET never enters Lua's heap); values are not
 * echoed in errors (a secret may be pasted in the wrong place). An empty
 * variable counts as unset, but for a number: there it is an error. */
static void from_env(lua_State *L, const cl_opt *o, char *out, const char *what)
{
	const char *v = o->env ? getenv(o->env) : NULL;
	if (!v || (!*v && CL_TYPES(o) != CL_T(LUA_TNUMBER)))
		return;
	if (CL_TYPES(o) == CL_T(LUA_TNUMBER)) {
		number_from_env(L, o, v, out, what);
	} else if (CL_TYPES(o) == CL_T(LUA_TBOOLEAN)) {
		int on = !strcmp(v, "1") || !strcmp(v, "true") || !strcmp(v, "yes");
		if (!on && strcmp(v, "0") && strcmp(v, "false") && strcmp(v, "no"))
			luaL_error(L, "%s: %s must be 1, true, yes, 0, false or no", what, o->env);
		*(int *)(void *)(out + o->off) = on;
	} else {
		*(const char **)(void *)(out + o->off) = v; /* the environment keeps it */
	}
}

/* Stores the value on top at out + o->off (see cl_opt); pops it unless it stays. */
static void store_opt(lua_State *L, const cl_opt *o, char *out, const char *what)
{
	if (o->types & CL_KEEP) {
		*(int *)(void *)(out + o->off) = lua_gettop(L);
		return;
	} else if (CL_TYPES(o) == CL_T(LUA_TSTRING)) {
		size_t len;
		const char *v = lua_tolstring(L, -1, &len);
		if (strlen(v) != len) /* C would cut it short there, silently */
			luaL_error(L, "%s: option '%s' holds NUL", what, o->name);
		*(const char **)(void *)(out + o->off) = v;
	} else if (CL_TYPES(o) == CL_T(LUA_TNUMBER)) {
		double v = lua_tonumber(L, -1);
		if (!(v >= o->lo && v <= o->hi))
			luaL_error(L, "%s: option '%s' is out of range: %s", what, o->name,
			           lua_tostring(L, -1));
		if ((o->types & CL_INT) && v != floor(v))
			luaL_error(L, "%s: option '%s' must be a whole number, not %s", what,
			           o->name, lua_tostring(L, -1));
		*(double *)(void *)(out + o->off) = v;
	} else if (CL_TYPES(o) == CL_T(LUA_TBOOLEAN)) {
		*(int *)(void *)(out + o->off) = lua_toboolean(L, -1);
	} else {
		*(int *)(void *)(out + o->off) = lua_gettop(L);
		return; /* tables and functions stay on the stack */
	}
	lua_pop(L, 1); /* strings stay alive: the options table holds them */
}

void cl_read_options(lua_State *L, int idx, const cl_opt *opts, void *out, const char *what)
{
	check_keys(L, idx, opts, what);
	for (const cl_opt *o = opts; o->name; o++) {
		lua_getfield(L, idx, o->name);
		int blank = (o->types & CL_BLANK) && lua_type(L, -1) == LUA_TSTRING &&
		            ducky_rawlen(L, -1) == 0;
		if (!lua_isnil(L, -1) && !blank) {
			store_opt(L, o, out, what);
		} else {
			lua_pop(L, 1);
			from_env(L, o, out, what); /* unset: out keeps its default */
		}
	}
}

int cl_has_ctl(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] == '\r' || s[i] == '\n' || s[i] == '\0')
			return 1;
	return 0;
}

int cl_is_token(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (!(isalnum(ch) || strchr("!#$%&'*+-.^_`|~", ch)) || ch == 0)
			return 0;
	}
	return n > 0;
}

void cl_add_headers(lua_State *L, int idx, struct curl_slist **l, const char *what)
{
	lua_pushnil(L);
	while (lua_next(L, idx)) {
		size_t nl, vl;
		if (lua_type(L, -2) != LUA_TSTRING ||
		    (lua_type(L, -1) != LUA_TSTRING && lua_type(L, -1) != LUA_TNUMBER))
			luaL_error(L, "%s: header names and values must be strings", what);
		const char *name = lua_tolstring(L, -2, &nl);
		lua_pushvalue(L,
		              -1); /* a number becomes a string in the copy, not the key's value */
		const char *value = lua_tolstring(L, -1, &vl);
		if (!cl_is_token(name, nl))
			luaL_error(L, "%s: invalid header name '%s'", what, name);
		if (cl_has_ctl(value, vl))
			luaL_error(L, "%s: header '%s' holds CR, LF or NUL", what, name);
		lua_pushfstring(L, "%s: %s", name, value);
		if (ducky_headers_append(l, lua_tostring(L, -1)))
			luaL_error(L, "out of memory");
		lua_pop(L, 3);
	}
}

int cl_cmp_lstr(const char *a, size_t an, const char *b, size_t bn)
{
	int c = memcmp(a, b, an < bn ? an : bn);
	return c ? c : (an > bn) - (an < bn);
}
