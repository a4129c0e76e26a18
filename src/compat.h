/* The few things Lua 5.1/LuaJIT lack that ducky uses; nothing else. */
#ifndef DUCKY_COMPAT_H
#define DUCKY_COMPAT_H

#include <lauxlib.h>
#include <lua.h>

#if LUA_VERSION_NUM < 502
/* luaL_setfuncs: the functions share the nup values on the stack top. */
static inline void ducky_setfuncs(lua_State *L, const luaL_Reg *l, int nup)
{
	for (; l->name; l++) {
		for (int i = 0; i < nup; i++)
			lua_pushvalue(L, -nup);
		lua_pushcclosure(L, l->func, nup);
		lua_setfield(L, -(nup + 2), l->name);
	}
	lua_pop(L, nup);
}
#define ducky_rawlen lua_objlen
/* The userdata at ud if its metatable is tname's, else NULL (luaL_testudata). */
static inline void *ducky_testudata(lua_State *L, int ud, const char *tname)
{
	void *p = lua_touserdata(L, ud);
	int same = 0;
	if (p && lua_getmetatable(L, ud)) {
		lua_getfield(L, LUA_REGISTRYINDEX, tname);
		same = lua_rawequal(L, -1, -2);
		lua_pop(L, 2);
	}
	return same ? p : NULL;
}
#define ducky_newuserdata(L, sz) lua_newuserdata(L, sz)
#define ducky_cpcall             lua_cpcall
#else
#define ducky_setfuncs  luaL_setfuncs
#define ducky_testudata luaL_testudata
#define ducky_rawlen    lua_rawlen
#if LUA_VERSION_NUM >= 504
#define ducky_newuserdata(L, sz) lua_newuserdatauv(L, sz, 0)
#else
#define ducky_newuserdata(L, sz) lua_newuserdata(L, sz)
#endif
/* Run f(L) with ud as its only argument, catching every error. */
static inline int ducky_cpcall(lua_State *L, lua_CFunction f, void *ud)
{
	lua_pushcfunction(L, f);
	lua_pushlightuserdata(L, ud);
	return lua_pcall(L, 1, 0, 0);
}
#endif

#endif
