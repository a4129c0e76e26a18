/* res.headers: names lower-case, lookups in any case, repeated headers joined
 * with ", ". On Lua 5.2 and later the table is filled from the answer's raw
 * header block on its first lookup or pairs(); Lua 5.1 and LuaJIT fill it at
 * once, since their pairs() would not see the fill. */
#include <ctype.h>
#include <string.h>

#include "lua_headers.h"
#include "http.h"

#define HEADERS_MT "ducky.headers"
#define PENDING    "ducky.headers.pending" /* weak-keyed: headers table -> raw block */

#if LUA_VERSION_NUM >= 502
#define LAZY 1
#else
#define LAZY 0
#endif

/* Sets the pairs of block into the table at t. */
static void fill(lua_State *L, int t, const char *block, size_t len)
{
	const char *pos = NULL, *name, *value;
	while (ducky_headers_next(block, len, &pos, &name, &value)) {
		lua_pushstring(L, name); /* pushed once for the lookup and the set */
		lua_pushvalue(L, -1);
		lua_rawget(L, t);
		if (lua_isstring(L, -1)) { /* repeated: joined with ", " */
			lua_pushliteral(L, ", ");
			lua_pushstring(L, value);
			lua_concat(L, 3);
		} else {
			lua_pop(L, 1);
			lua_pushstring(L, value);
		}
		lua_rawset(L, t);
	}
}

/* Fills the headers table at t from its pending block, if it has one. */
static void settle(lua_State *L, int t)
{
	lua_getfield(L, LUA_REGISTRYINDEX, PENDING);
	lua_pushvalue(L, t);
	lua_rawget(L, -2);
	if (lua_type(L, -1) == LUA_TSTRING) {
		size_t len;
		const char *block = lua_tolstring(L, -1, &len);
		fill(L, t, block, len);
		lua_pushvalue(L, t);
		lua_pushnil(L);
		lua_rawset(L, -4);
	}
	lua_pop(L, 2);
}

/* headers[name]: the lower-case name's value. */
static int h_index(lua_State *L)
{
	size_t n;
	const char *k = lua_tolstring(L, 2, &n);
	if (lua_type(L, 2) != LUA_TSTRING)
		return 0;
	settle(L, 1);
	lua_pushvalue(L, 2);
	lua_rawget(L, 1);
	if (!lua_isnil(L, -1))
		return 1;
	lua_pop(L, 1);
	ducky_buf lower = {0};
	for (size_t i = 0; i < n; i++) {
		char c = (char)tolower((unsigned char)k[i]);
		if (ducky_buf_add(&lower, &c, 1)) {
			ducky_buf_free(&lower);
			return luaL_error(L, "out of memory");
		}
	}
	lua_pushlstring(L, lower.data ? lower.data : "", lower.len);
	ducky_buf_free(&lower);
	lua_rawget(L, 1);
	return 1;
}

static int h_pairs(lua_State *L)
{
	settle(L, 1);
	lua_getglobal(L, "next");
	lua_pushvalue(L, 1);
	lua_pushnil(L);
	return 3;
}

void cl_headers_open(lua_State *L)
{
	if (luaL_newmetatable(L, HEADERS_MT)) {
		lua_pushcfunction(L, h_index);
		lua_setfield(L, -2, "__index");
		lua_pushcfunction(L, h_pairs);
		lua_setfield(L, -2, "__pairs");
	}
	lua_pop(L, 1);
	lua_newtable(L);
	lua_createtable(L, 0, 1);
	lua_pushliteral(L, "k");
	lua_setfield(L, -2, "__mode");
	lua_setmetatable(L, -2);
	lua_setfield(L, LUA_REGISTRYINDEX, PENDING);
}

void cl_headers_push(lua_State *L, const char *block, size_t len)
{
	lua_newtable(L);
	if (LAZY && len) {
		lua_getfield(L, LUA_REGISTRYINDEX, PENDING);
		lua_pushvalue(L, -2);
		lua_pushlstring(L, block, len);
		lua_rawset(L, -3);
		lua_pop(L, 1);
	} else {
		fill(L, lua_gettop(L), block, len);
	}
	luaL_getmetatable(L, HEADERS_MT);
	lua_setmetatable(L, -2);
}

int cl_headers_new(lua_State *L)
{
	if (!lua_istable(L, 1))
		return luaL_error(L, "ducky.headers: expects a table, not %s", luaL_typename(L, 1));
	lua_settop(L, 1);
	luaL_getmetatable(L, HEADERS_MT);
	lua_setmetatable(L, 1);
	return 1;
}
