/* client:batch() (client_batch.c). */
#ifndef DUCKY_CLIENT_BATCH_H
#define DUCKY_CLIENT_BATCH_H

#include "client.h"

void cl_batch_open(lua_State *L); /* its metatables; leaves nothing on the stack */
int cl_batch(lua_State *L);       /* client:batch(list, opts) */

#endif
