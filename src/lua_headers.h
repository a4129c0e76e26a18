/* res.headers (lua_headers.c): a table with lower-case names whose lookups ignore
 * case; on Lua 5.2 and later filled on first use (most callers never read it). */
#ifndef DUCKY_LUA_HEADERS_H
#define DUCKY_LUA_HEADERS_H

#include "compat.h"

void cl_headers_open(lua_State *L); /* its metatable; leaves nothing on the stack */
/* Pushes the headers table of a block of "name\0value\0" pairs (names lower-case). */
void cl_headers_push(lua_State *L, const char *block, size_t len);
int cl_headers_new(lua_State *L); /* ducky.headers(t): t, with the metatable */

#endif
