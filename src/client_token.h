/* The client's side of the token cache (client_token.c). */
#ifndef DUCKY_CLIENT_TOKEN_H
#define DUCKY_CLIENT_TOKEN_H

#include "client.h"

/* Makes r->c->tok a usable token (fetching it if needed) and emits the token event. */
int cl_get_token(const cl_run *r, token_source *src, ducky_err *err);
/* After a 401: drops the client's current token from every cache level, if the
 * cache still holds that very token. */
void cl_drop_token(const cl_run *r);

int cl_token(lua_State *L);      /* client:token() */
int cl_invalidate(lua_State *L); /* client:invalidate() */

#endif
