/* The error object: a C record while the core works, a Lua table for the caller. */
#include "lua_error.h"

#define ERROR_MT "ducky.error"

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
	luaL_checktype(L, 1, LUA_TTABLE);
	lua_getfield(L, 1, "kind");
	luaL_argcheck(L, ducky_kind_of(lua_tostring(L, -1)) != DUCKY_OK, 1,
	              "kind is not an error kind");
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
