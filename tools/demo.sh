#!/bin/sh
# Starts the local stand-in (Auth0 + API over TLS with a throw-away CA) and runs
# the examples against it. Against the real service only the DUCKY_* variables change.
set -eu
build=${1:-build}
dir=$(mktemp -d)
/usr/bin/python3 spec/support/standin.py --dir "$dir" --exit-with $$ >"$dir/log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; rm -rf "$dir"' EXIT
i=0
until [ -f "$dir/standin.json" ]; do
	i=$((i + 1))
	[ $i -lt 100 ] || { cat "$dir/log"; exit 1; }
	sleep 0.1
done
port=$(lua5.4 -e 'print(math.tointeger(require("cjson").decode(io.read("a")).https_port))' <"$dir/standin.json")
export LUA_CPATH="./$build/?.so;;"
export DUCKY_BASE_URL="https://localhost:$port/v3"
export DUCKY_TOKEN_URL="https://localhost:$port/oauth/token"
export DUCKY_AUDIENCE="ducky-api-test"
export DUCKY_CLIENT_ID="demo"
export DUCKY_CLIENT_SECRET="secret-demo" # the stand-in's rule: "secret-" .. client_id
export DUCKY_CA_FILE="$dir/ca.pem"
export XDG_CACHE_HOME="$dir/cache"
RUN=${DUCKY_RUNNER:-} # e.g. valgrind (make valgrind)
echo "== stand-in on $DUCKY_BASE_URL"
echo "== lua5.4 examples/ping.lua"
$RUN lua5.4 examples/ping.lua
echo "== lua5.4 examples/request.lua POST /echo"
$RUN lua5.4 examples/request.lua POST /echo
echo "== lua5.4 examples/batch.lua"
$RUN lua5.4 examples/batch.lua
# private_key_jwt: the stand-in's well-known client jwt-rs256 and the key it made for it
key=$(lua5.4 -e 'print(require("cjson").decode(io.read("a")).jwt_keys.rsa.private_key_file)' <"$dir/standin.json")
echo "== lua5.4 examples/private_key_jwt.lua (client jwt-rs256: a private key, no secret)"
env -u DUCKY_CLIENT_SECRET DUCKY_CLIENT_ID=jwt-rs256 DUCKY_PRIVATE_KEY_FILE="$key" DUCKY_KEY_ID=rsa-1 \
	$RUN lua5.4 examples/private_key_jwt.lua
echo "== lua5.4 examples/request.lua GET /status/404 (an error, as a value)"
rc=0
$RUN lua5.4 examples/request.lua GET /status/404 || rc=$?
[ $rc -eq 1 ] || exit 1 # the example exits 1 on an API error; anything else is a failure
echo "(exit status $rc, as expected)"
