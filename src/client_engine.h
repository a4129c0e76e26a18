/* The client's engine (client_engine.c): made on first use, with the host
 * callbacks the engine runs (the log, the token answer, the store). */
#ifndef DUCKY_CLIENT_ENGINE_H
#define DUCKY_CLIENT_ENGINE_H

#include "client.h"

/* The client's engine, made on first use; raises when it cannot be made. */
ducky_engine *cl_engine(lua_State *L, client *c);
/* Runs the engine until op is done: the blocking calls. */
void cl_wait(client *c, ducky_op *op);
/* A blocking call: starts k, waits for it, pushes what it gives (returns the count). */
int cl_call(lua_State *L, client *c, const ducky_call *k);

/* token() as a call: the token, and no request. */
static inline ducky_call cl_token_call(const client *c)
{
	return (ducky_call){.method = "TOKEN",
	                    .url = c->creds.token_url,
	                    .token_only = 1,
	                    .retries = c->lim.retries,
	                    .timeout = c->lim.timeout};
}

#endif
