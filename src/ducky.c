/* luaopen_ducky: the module table, the client's metatable and methods. */
#include <curl/curl.h>

#include "call.h"
#include "http.h"
#include "client.h"
#include "client_batch.h"
#include "client_token.h"
#include "exports.h"
#include "headers.h"
#include "lua_error.h"
#include "version.h"

static const luaL_Reg client_methods[] = {
    {"ping", cl_ping},       {"ping_protected", cl_ping_protected},
    {"request", cl_request}, {"batch", cl_batch},
    {"token", cl_token},     {"invalidate", cl_invalidate},
    {"stats", cl_stats},     {"cache_key", cl_cache_key},
    {"close", cl_close},     {NULL, NULL},
};

static const luaL_Reg client_metamethods[] = {
    {"__gc", cl_close},
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

/* encode and decode of ducky's own lua-cjson instance (its settings are not
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
	lua_setfield(L, -3, "encode");
	lua_getfield(L, -1, "decode");
	lua_setfield(L, -3, "decode");
	lua_pop(L, 1);
	lua_setfield(L, LUA_REGISTRYINDEX, CL_JSON);
}

__attribute__((visibility("default"))) int luaopen_ducky(lua_State *L);
int luaopen_ducky(lua_State *L)
{
	ducky_err err;
	ducky_err_init(&err);
	if (ducky_http_global_init(&err)) {
		lua_pushstring(L, err.message ? err.message : "curl_global_init failed");
		ducky_err_clear(&err);
		return lua_error(L);
	}
	open_json(L);
	ducky_error_open(L);
	cl_batch_open(L);
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
	return 1;
}
