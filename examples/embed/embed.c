/* An application that embeds Lua 5.4 with ducky linked in (no ducky.so on disk):
 *   embed SCRIPT [ARG...]   -- runs SCRIPT with `arg` set, exits 0 on success.
 * Build: see the `embed` target of the Makefile (the module's objects + Lua + libcurl). */
#include <stdio.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "ducky.h" /* luaopen_ducky */

static int report(lua_State *L, int status)
{
	if (status != LUA_OK) {
		fprintf(stderr, "embed: %s\n", lua_tostring(L, -1));
		lua_pop(L, 1);
	}
	return status;
}

int main(int argc, char **argv)
{
	int status;
	if (argc < 2) {
		fprintf(stderr, "usage: %s SCRIPT [ARG...]\n", argv[0]);
		return 2;
	}
	lua_State *L = luaL_newstate();
	if (!L)
		return 1;
	luaL_openlibs(L);
	/* package.loaded.ducky = luaopen_ducky(): `require "ducky"` finds it there */
	luaL_requiref(L, "ducky", luaopen_ducky, 0);
	lua_pop(L, 1);
	lua_createtable(L, argc, 0); /* the script's arg table, as lua.c makes it */
	for (int i = 0; i < argc; i++) {
		lua_pushstring(L, argv[i]);
		lua_rawseti(L, -2, i - 1);
	}
	lua_setglobal(L, "arg");
	status = report(L, luaL_dofile(L, argv[1]));
	lua_close(L); /* runs __gc: every client closes, its secret is wiped */
	return status == LUA_OK ? 0 : 1;
}
