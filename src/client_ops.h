/* Pollable operations (client_ops.c): client:start, start_token, step,
 * pollfd, events, timeout, and the ducky.op object. */
#ifndef DUCKY_CLIENT_OPS_H
#define DUCKY_CLIENT_OPS_H

#include "client.h"

void cl_ops_open(lua_State *L);   /* the op metatable; leaves nothing on the stack */
int cl_start(lua_State *L);       /* client:start(method, path, opts) -> op */
int cl_start_token(lua_State *L); /* client:start_token() -> op */
int cl_step(lua_State *L);        /* client:step() -> operations ended */
int cl_pollfd(lua_State *L);      /* client:pollfd() -> descriptor */
int cl_events(lua_State *L);      /* client:events() -> "r" */
int cl_timeout(lua_State *L);     /* client:timeout() -> seconds or nil */

#endif
