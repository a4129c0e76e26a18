/* The Lua error object: the "ducky.error" metatable over a table of fields. */
#ifndef DUCKY_LUA_ERROR_H
#define DUCKY_LUA_ERROR_H

#include "compat.h"
#include "err.h"

void ducky_error_open(lua_State *L);                       /* leaves nothing on the stack */
void ducky_error_push(lua_State *L, const ducky_err *err); /* pushes the table */
void ducky_error_set(lua_State *L, const ducky_err *err);  /* onto the table on top */
int ducky_error_is(lua_State *L, int idx);
int ducky_is_error(lua_State *L);  /* ducky.is_error(v) */
int ducky_error_new(lua_State *L); /* ducky.error(t) */

#endif
