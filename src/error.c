/* The error object: a C record while the core works, a Lua table for the caller. */
#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#define ERROR_MT "ducky.error"

static const char *const kind_names[] = {"ok",
#define DUCKY_KIND_NAME(e, s) s,
                                         DUCKY_KINDS(DUCKY_KIND_NAME)
#undef DUCKY_KIND_NAME
};

const char *ducky_kind_name(ducky_kind kind)
{
	return kind_names[kind];
}

char *ducky_strndup(const char *s, size_t n)
{
	char *d = malloc(n + 1);
	if (d) {
		memcpy(d, s, n);
		d[n] = '\0';
	}
	return d;
}

char *ducky_strdup(const char *s)
{
	return s ? ducky_strndup(s, strlen(s)) : NULL;
}

void ducky_err_init(ducky_err *err)
{
	memset(err, 0, sizeof *err);
	err->retry_after = -1;
}

void ducky_err_clear(ducky_err *err)
{
	free(err->message);
	free(err->code);
	free(err->description);
	ducky_err_init(err);
}

int ducky_fail(ducky_err *err, ducky_kind kind, const char *fmt, ...)
{
	va_list ap;
	int n;

	free(err->message);
	err->message = NULL;
	err->kind = kind;
	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n >= 0 && (err->message = malloc((size_t)n + 1)) != NULL) {
		va_start(ap, fmt);
		vsnprintf(err->message, (size_t)n + 1, fmt, ap);
		va_end(ap);
		/* one readable line, whatever a server put in its description */
		for (char *p = err->message; *p; p++)
			if ((unsigned char)*p < 0x20 || *p == 0x7f)
				*p = ' ';
	}
	return -1;
}

void ducky_err_copy(ducky_err *dst, const ducky_err *src)
{
	*dst = *src;
	dst->message = ducky_strdup(src->message);
	dst->code = ducky_strdup(src->code);
	dst->description = ducky_strdup(src->description);
}

static void set_string(lua_State *L, const char *field, const char *value)
{
	if (value) {
		lua_pushstring(L, value);
		lua_setfield(L, -2, field);
	}
}

static void set_number(lua_State *L, const char *field, double value)
{
	lua_pushnumber(L, value);
	lua_setfield(L, -2, field);
}

static void set_integer(lua_State *L, const char *field, long value)
{
	lua_pushinteger(L, (lua_Integer)value);
	lua_setfield(L, -2, field);
}

void ducky_error_push(lua_State *L, const ducky_err *err)
{
	lua_createtable(L, 0, 12);
	set_string(L, "kind", ducky_kind_name(err->kind));
	set_string(L, "message", err->message ? err->message : "out of memory");
	if (err->status)
		set_integer(L, "status", err->status);
	if (err->code)
		set_string(L, "code", err->code);
	else if (err->curl_code)
		set_integer(L, "code", err->curl_code);
	set_string(L, "description", err->description);
	if (err->retry_after >= 0)
		set_number(L, "retry_after", err->retry_after);
	if (err->attempts)
		set_integer(L, "attempts", err->attempts);
	lua_pushboolean(L, err->retryable);
	lua_setfield(L, -2, "retryable");
	luaL_getmetatable(L, ERROR_MT);
	lua_setmetatable(L, -2);
}

int ducky_error_is(lua_State *L, int idx)
{
	int is = 0;
	if (lua_type(L, idx) == LUA_TTABLE && lua_getmetatable(L, idx)) {
		luaL_getmetatable(L, ERROR_MT);
		is = lua_rawequal(L, -1, -2);
		lua_pop(L, 2);
	}
	return is;
}

int ducky_is_error(lua_State *L)
{
	lua_pushboolean(L, ducky_error_is(L, 1));
	return 1;
}

/* ducky.error(t): makes t, a table with a known kind and a message, an error
 * object (for errors that crossed a boundary as plain data, say a thread). */
int ducky_error_new(lua_State *L)
{
	static const char *const kinds[] = {
#define DUCKY_KIND_OPTION(e, s) s,
	    DUCKY_KINDS(DUCKY_KIND_OPTION)
#undef DUCKY_KIND_OPTION
	        NULL};
	int k = 0;
	luaL_checktype(L, 1, LUA_TTABLE);
	lua_getfield(L, 1, "kind");
	while (kinds[k] && (!lua_isstring(L, -1) || strcmp(kinds[k], lua_tostring(L, -1)) != 0))
		k++;
	luaL_argcheck(L, kinds[k] != NULL, 1, "kind is not an error kind");
	lua_getfield(L, 1, "message");
	luaL_argcheck(L, lua_type(L, -1) == LUA_TSTRING, 1, "message must be a string");
	lua_settop(L, 1);
	luaL_getmetatable(L, ERROR_MT);
	lua_setmetatable(L, 1);
	return 1;
}

/* "ducky http error: GET /v3/x answered 503 [request id …]": one line. The
 * parts are pushed first and concatenated once (no luaL_Buffer across pops). */
static int error_tostring(lua_State *L)
{
	int n = 0;
	luaL_checktype(L, 1, LUA_TTABLE);
	lua_pushliteral(L, "ducky ");
	lua_getfield(L, 1, "kind");
	lua_pushliteral(L, " error: ");
	lua_getfield(L, 1, "message");
	lua_getfield(L, 1, "request_id");
	for (int i = 2; i <= 5; i++)
		if (!lua_isstring(L, i)) {
			lua_pushliteral(L, "?");
			lua_replace(L, i);
		}
	if (lua_isstring(L, 6)) {
		lua_pushliteral(L, " [request id ");
		lua_insert(L, 6);
		lua_pushliteral(L, "]");
		n = 3;
	} else {
		lua_pop(L, 1);
	}
	lua_concat(L, 4 + n);
	return 1;
}

void ducky_error_open(lua_State *L)
{
	if (luaL_newmetatable(L, ERROR_MT)) {
		lua_pushcfunction(L, error_tostring);
		lua_setfield(L, -2, "__tostring");
	}
	lua_pop(L, 1);
}
