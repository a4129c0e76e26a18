/* The error object: a C record while the core works, a Lua table for the caller. */
#include "lua_error.h"

#include "util.h"

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
	ducky_error_set(L, err);
}

void ducky_error_set(lua_State *L, const ducky_err *err)
{
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
	if (!lua_istable(L, 1))
		return luaL_error(L, "ducky.error: expects a table, not %s", luaL_typename(L, 1));
	lua_getfield(L, 1, "kind");
	if (ducky_kind_of(lua_tostring(L, -1)) == DUCKY_OK)
		return luaL_error(L, "ducky.error: kind is not an error kind");
	lua_getfield(L, 1, "message");
	if (lua_type(L, -1) != LUA_TSTRING)
		return luaL_error(L, "ducky.error: message must be a string");
	lua_settop(L, 1);
	luaL_getmetatable(L, ERROR_MT);
	lua_setmetatable(L, 1);
	return 1;
}

/* Field k of the table at 1, made printable, onto b ("?" if not a string). */
static int add_field(lua_State *L, ducky_buf *b, const char *k)
{
	size_t n;
	lua_getfield(L, 1, k);
	const char *v = lua_isstring(L, -1) ? lua_tolstring(L, -1, &n) : NULL;
	int bad = v ? ducky_buf_add_printable(b, v, n) : ducky_buf_adds(b, "?");
	lua_pop(L, 1);
	return bad;
}

/* "ducky http error: GET /v3/x answered 503 [request id …]": one line, every
 * control byte from the server written as \xNN. */
static int error_tostring(lua_State *L)
{
	ducky_buf b = {0};
	luaL_checktype(L, 1, LUA_TTABLE);
	lua_getfield(L, 1, "request_id");
	int rid = lua_isstring(L, -1);
	lua_pop(L, 1);
	int bad = ducky_buf_adds(&b, "ducky ") || add_field(L, &b, "kind") ||
	          ducky_buf_adds(&b, " error: ") || add_field(L, &b, "message") ||
	          (rid && (ducky_buf_adds(&b, " [request id ") || add_field(L, &b, "request_id") ||
	                   ducky_buf_adds(&b, "]")));
	if (!bad)
		lua_pushlstring(L, b.data, b.len);
	ducky_buf_free(&b);
	return bad ? luaL_error(L, "out of memory") : 1;
}

/* "failed: " .. err, and err .. "\n": an error joins strings as its one line. */
static int error_concat(lua_State *L)
{
	for (int i = 1; i <= 2; i++)
		if (ducky_error_is(L, i)) {
			lua_pushcfunction(L, error_tostring);
			lua_pushvalue(L, i);
			lua_call(L, 1, 1);
			lua_replace(L, i);
		}
	for (int i = 1; i <= 2; i++)
		if (!lua_isstring(L, i))
			return luaL_error(L, "attempt to concatenate a %s value",
			                  luaL_typename(L, i));
	lua_concat(L, 2);
	return 1;
}

void ducky_error_open(lua_State *L)
{
	if (luaL_newmetatable(L, ERROR_MT)) {
		lua_pushcfunction(L, error_tostring);
		lua_setfield(L, -2, "__tostring");
		lua_pushcfunction(L, error_concat);
		lua_setfield(L, -2, "__concat");
	}
	lua_pop(L, 1);
}
