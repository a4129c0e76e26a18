/* luaopen_ducky: the module table, the client's metatable and methods. */
#include <curl/curl.h>

#include "alloc.h"
#include "call.h"
#include "client.h"
#include "client_batch.h"
#include "client_ops.h"
#include "client_token.h"
#include "ducky.h"
#include "exports.h"
#include "lua_error.h"
#include "lua_headers.h"
#include "token.h"
#include "version.h"

static const luaL_Reg client_methods[] = {
    {"ping", cl_ping},
    {"ping_protected", cl_ping_protected},
    {"request", cl_request},
    {"batch", cl_batch},
    {"token", cl_token},
    {"invalidate", cl_invalidate},
    {"stats", cl_stats},
    {"cache_key", cl_cache_key},
    {"close", cl_close},
    {"start", cl_start},
    {"start_token", cl_start_token},
    {"step", cl_step},
    {"pollfd", cl_pollfd},
    {"events", cl_events},
    {"timeout", cl_timeout},
    {NULL, NULL},
};

static const luaL_Reg client_metamethods[] = {
    {"__gc", cl_gc},
    {"__close", cl_close},
    {"__tostring", cl_tostring},
    {NULL, NULL},
};

static const luaL_Reg module_functions[] = {
    {"client", cl_new},
    {"is_error", ducky_is_error},
    {"error", ducky_error_new},
    {"headers", cl_headers_new},
    {NULL, NULL},
};

/* encode (at 1) and decode (at 2) of ducky's own lua-cjson instance (its settings are not
 * the caller's), where every client finds them. It takes JSON numbers only:
 * no hex, inf or nan. */
static void open_json(lua_State *L)
{
	lua_newtable(L);
	lua_getglobal(L, "require");
	lua_pushliteral(L, "cjson");
	lua_call(L, 1, 1);
	lua_getfield(L, -1, "new");
	lua_call(L, 0, 1);
	lua_remove(L, -2);
	lua_getfield(L, -1, "decode_invalid_numbers");
	lua_pushboolean(L, 0);
	lua_call(L, 1, 0);
	lua_getfield(L, -1, "encode");
	lua_rawseti(L, -3, 1);
	lua_getfield(L, -1, "decode");
	lua_rawseti(L, -3, 2);
	lua_pop(L, 1);
	lua_setfield(L, LUA_REGISTRYINDEX, CL_JSON);
}

#ifdef DUCKY_TEST_HOOKS
/* ducky._test.shift_clock(seconds): test builds only (make check); a spec
 * moves time forward, and back to where it was when it is done. */
static int shift_clock(lua_State *L)
{
	lua_pushnumber(L, ducky_clock_shift(luaL_checknumber(L, 1)));
	return 1;
}

/* ducky._test.fix_jitter(fraction): every token back-off step that fraction of
 * its cap (nil: random again), so specs know when the next try may go. */
static int fix_jitter(lua_State *L)
{
	ducky_token_fix_jitter(luaL_optnumber(L, 1, -1));
	return 0;
}

static void open_test_hooks(lua_State *L)
{
	lua_newtable(L);
	lua_pushcfunction(L, shift_clock);
	lua_setfield(L, -2, "shift_clock");
	lua_pushcfunction(L, fix_jitter);
	lua_setfield(L, -2, "fix_jitter");
	lua_setfield(L, -2, "_test");
}
#else
static void open_test_hooks(lua_State *L)
{
	(void)L;
}
#endif

__attribute__((visibility("default"))) int luaopen_ducky(lua_State *L); /* ducky.h */
int luaopen_ducky(lua_State *L)
{
	ducky_err err;
	ducky_err_init(&err);
	if (ducky_global_init(&err)) {
		lua_pushstring(L, err.message ? err.message : "curl_global_init failed");
		ducky_err_clear(&err);
		return lua_error(L);
	}
	open_json(L);
	ducky_error_open(L);
	cl_batch_open(L);
	cl_ops_open(L);
	cl_headers_open(L);
	luaL_newmetatable(L, CLIENT_MT);
	ducky_setfuncs(L, client_metamethods, 0);
	lua_newtable(L);
	ducky_setfuncs(L, client_methods, 0);
	lua_setfield(L, -2, "__index");
	lua_pop(L, 1);

	lua_newtable(L);
	ducky_setfuncs(L, module_functions, 0);
	cl_exports_open(L);
	lua_pushliteral(L, DUCKY_VERSION);
	lua_setfield(L, -2, "_VERSION");
	lua_pushliteral(L, DEFAULT_BASE_URL);
	lua_setfield(L, -2, "BASE_URL");
	lua_pushliteral(L, DEFAULT_TOKEN_URL);
	lua_setfield(L, -2, "TOKEN_URL");
	lua_pushliteral(L, DEFAULT_AUDIENCE);
	lua_setfield(L, -2, "AUDIENCE");
	cl_push_call_options(L);
	lua_setfield(L, -2, "REQUEST_OPTIONS");
	open_test_hooks(L);
	return 1;
}
