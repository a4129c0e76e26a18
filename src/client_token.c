/* token(), start_token()'s blocking twin, and invalidate(). */
#include <string.h>

#include "answer.h"
#include "client_engine.h"
#include "client_token.h"

static int token_body(lua_State *L)
{
	client *c = cl_self(L);
	ducky_engine *e = cl_engine(L, c);
	ducky_err err;
	ducky_call k = {.method = "TOKEN",
	                .url = c->creds.token_url,
	                .token_only = 1,
	                .retries = c->lim.retries,
	                .timeout = c->lim.timeout};
	ducky_err_init(&err);
	ducky_op *op = ducky_op_start(e, &k, &err);
	if (!op)
		return cl_push_error(L, c, &err);
	cl_wait(c, op);
	int n = cl_push_result(L, c, ducky_op_result(op));
	ducky_op_release(op);
	return n;
}

int cl_token(lua_State *L)
{
	return cl_guarded(L, token_body, "token");
}

/* invalidate([token]): the key's token dropped from memory and the store; with
 * a token, only if the cache still holds that very one (as after a 401). */
static int invalidate_body(lua_State *L)
{
	client *c = cl_self(L);
	const char *only = luaL_optstring(L, 2, NULL);
	int rc = ducky_engine_drop_token(cl_engine(L, c), only, ducky_now() + c->lim.timeout);
	lua_pushboolean(L, rc > 0);
	return 1;
}

int cl_invalidate(lua_State *L)
{
	return cl_guarded(L, invalidate_body, "invalidate");
}
