/* A C host that opens and closes three lua_States in turn, each running
 *   local c = require("ducky").client{ token_cache = false }; assert(c:token())
 * with the ducky.so that LUA_CPATH finds. The process-wide token cache must
 * outlive each lua_close (the module is linked with -z nodelete), so the three
 * states make one token exchange between them (spec/build_spec.lua). */
#include <stdio.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

static const char script[] =
    "local ducky = require('ducky')\n"
    "local c = ducky.client{ token_cache = false, ca_file = os.getenv('DUCKY_CA_FILE') }\n"
    "local token, err = c:token()\n"
    "assert(token, tostring(err))\n"
    "c:close()\n";

int main(void)
{
	for (int i = 1; i <= 3; i++) {
		lua_State *L = luaL_newstate();
		if (!L)
			return 1;
		luaL_openlibs(L);
		if (luaL_dostring(L, script) != 0) {
			fprintf(stderr, "states: state %d: %s\n", i, lua_tostring(L, -1));
			lua_close(L);
			return 1;
		}
		lua_close(L);
	}
	puts("states: 3 states done");
	return 0;
}
