#!/bin/sh
# Runs the busted suite against the module in build dir $1 (further arguments go
# to busted) and prints "N passed, N failed" from busted's TAP output.
# $DUCKY_PRELOAD, if set, is preloaded into the Lua interpreter only (sanitizer runtimes).
set -eu
build=${1:-build}
[ $# -gt 0 ] && shift
out=$(mktemp)
cache=$(mktemp -d) # the default file token cache of specs, never the user's own
trap 'rm -rf "$out" "$cache"' EXIT
export XDG_CACHE_HOME="$cache"
# Lua 5.2-5.4 would read these before LUA_CPATH (make standin prints one): the build under test only
unset LUA_CPATH_5_2 LUA_CPATH_5_3 LUA_CPATH_5_4
status=0
DUCKY_BUILD="$build" LUA_CPATH="./$build/?.so;;" LD_PRELOAD="${DUCKY_PRELOAD:-}" \
	${DUCKY_LUA:-lua5.4} /usr/bin/busted --output=TAP "$@" >"$out" || status=$?
lua5.4 tools/summary.lua "$out" ${DUCKY_COUNTS:+"$DUCKY_COUNTS"} || status=1
exit $status
