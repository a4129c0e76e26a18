/* token() and invalidate() (client_token.c). */
#ifndef DUCKY_CLIENT_TOKEN_H
#define DUCKY_CLIENT_TOKEN_H

#include "client.h"

int cl_token(lua_State *L);      /* client:token() */
int cl_invalidate(lua_State *L); /* client:invalidate([token]) */

#endif
