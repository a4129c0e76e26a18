#!/bin/sh
# make rock: `luarocks make` of the checkout's rockspec (its build is the Makefile)
# for one Lua, into TREE or luarocks' default tree.
#   tools/rock.sh LUA ABI ROCKSPEC [TREE]       (LUA: lua5.1 ... lua5.4 or luajit)
# luarocks runs with the user's own configuration plus what this build knows, in a
# temporary file (LUAROCKS_CONFIG_<abi>):
# - lua-cjson as provided when LUA loads it: Debian's lua-cjson is no rock luarocks
#   can see, and luarocks would end with "Missing dependencies ... (not installed)";
# - for LuaJIT, its interpreter: luarocks --lua-version=5.1 would take lua5.1, and
#   the installed command would run there, not under the Lua the module is built for.
set -eu
lua=$1 abi=$2 rockspec=$3 tree=${4:-}
var=LUAROCKS_CONFIG_$(echo "$abi" | tr . _)
eval "user=\${$var:-\${LUAROCKS_CONFIG:-}}"
if [ -z "$user" ]; then
	user=${XDG_CONFIG_HOME:-${HOME:-/nonexistent}/.config}/luarocks/config-$abi.lua
	[ -f "$user" ] || user=${HOME:-/nonexistent}/.luarocks/config-$abi.lua
fi
cfg=$(mktemp)
trap 'rm -f "$cfg"' EXIT
cjson=$("$lua" -e 'io.write(require("cjson")._VERSION or "")' 2>/dev/null) || cjson=
{
	if [ -f "$user" ]; then
		cat "$user"
		echo
	fi
	if [ -n "$cjson" ]; then
		echo "rocks_provided = rocks_provided or {}"
		echo "rocks_provided[\"lua-cjson\"] = \"$cjson-1\""
	fi
	[ "$lua" != luajit ] || echo 'lua_interpreter = "luajit"'
} >"$cfg"
set -- --lua-version="$abi"
[ -z "$tree" ] || set -- "$@" --tree "$tree"
set -- "$@" make --deps-mode=none "$rockspec"
if [ "$lua" = luajit ]; then # its headers, not lua5.1's
	inc=$(${PKG_CONFIG:-pkg-config} --cflags-only-I luajit | sed 's/^ *-I//; s/ .*//')
	set -- "$@" LUA_INCDIR="$inc"
fi
status=0
env "$var=$cfg" luarocks "$@" || status=$?
exit $status
