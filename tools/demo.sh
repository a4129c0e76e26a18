#!/bin/sh
# make demo: starts the local stand-in (tools/standin-env.sh) and runs the examples
# against it. Against the real service only the DUCKY_* variables change.
#   tools/demo.sh [BUILD [LUA]]     ($DUCKY_RUNNER, e.g. valgrind, runs each example)
# The examples run on LUA (lua5.4), the Lua BUILD is for: make demo LUA=luajit.
set -eu
build=${1:-build}
lua=${2:-lua5.4}
. tools/standin-env.sh
export XDG_CACHE_HOME="$standin_dir/cache" # the demo's tokens, not your own cache
RUN=${DUCKY_RUNNER:-}
echo "== stand-in on $DUCKY_BASE_URL"
echo "== $lua examples/ping.lua"
$RUN "$lua" examples/ping.lua
echo "== $lua examples/request.lua GET '/footprints?site=berlin'"
$RUN "$lua" examples/request.lua GET '/footprints?site=berlin'
echo "== $lua examples/request.lua POST /footprints"
$RUN "$lua" examples/request.lua POST /footprints
echo "== $lua examples/batch.lua"
$RUN "$lua" examples/batch.lua
# private_key_jwt: the stand-in's well-known client jwt-rs256 and the key it made for it
key=$(lua5.4 -e 'print(require("cjson").decode(io.read("a")).jwt_keys.rsa.private_key_file)' <"$standin_dir/standin.json")
echo "== $lua examples/private_key_jwt.lua (client jwt-rs256: a private key, no secret)"
env -u DUCKY_CLIENT_SECRET DUCKY_CLIENT_ID=jwt-rs256 DUCKY_PRIVATE_KEY_FILE="$key" DUCKY_KEY_ID=rsa-1 \
	$RUN "$lua" examples/private_key_jwt.lua
echo "== $lua examples/request.lua GET /status/404 (an error, as a value)"
rc=0
$RUN "$lua" examples/request.lua GET /status/404 || rc=$?
[ $rc -eq 1 ] || exit 1 # the example exits 1 on an API error; anything else is a failure
echo "(exit status $rc, as expected)"
echo "== $lua examples/hosts/cqueues.lua (calls yielding to a cqueues controller)"
$RUN "$lua" examples/hosts/cqueues.lua
echo "== $lua examples/hosts/luv.lua (callbacks and a coroutine on a libuv loop)"
$RUN "$lua" examples/hosts/luv.lua
[ -z "$RUN" ] && . tools/demo_hosts.sh # copas, Neovim, HAProxy, where they and their builds are
echo "== bin/ducky ping --protected (the command, from this checkout)"
DUCKY_LUA="$lua" bin/ducky ping --protected
echo "== make standin keeps the stand-in running for your own scripts and the ducky command"
