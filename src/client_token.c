/* token(), start_token()'s blocking twin, and invalidate(). */
#include <string.h>

#include "client_engine.h"
#include "client_token.h"

static int token_body(lua_State *L)
{
	client *c = cl_self(L);
	ducky_call k = cl_token_call(c);
	return cl_call(L, c, &k);
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
