/* ducky for C programs that embed Lua and link the module in (libducky.a):
 *
 *   #include "ducky.h"
 *   luaL_requiref(L, "ducky", luaopen_ducky, 0);  // then require("ducky") finds it
 *   lua_pop(L, 1);
 *
 * Needs lua-cjson where require("cjson") finds it, and libcurl and libcrypto
 * at link time (README "Embedding in a C application"). One process may open
 * and close any number of lua_States, in any threads: they share the token
 * cache, which lives as long as the process. */
#ifndef DUCKY_H
#define DUCKY_H

#include <lua.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Pushes the module table: the lua_CFunction for luaL_requiref or
 * package.preload. The only symbol the module exports. */
int luaopen_ducky(lua_State *L);

#ifdef __cplusplus
}
#endif

#endif
