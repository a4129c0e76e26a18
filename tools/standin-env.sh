# Sourced by tools/demo.sh and tools/standin.sh (sh): starts the local stand-in
# (spec/support/standin/standin.py: Auth0's token endpoint and the Ducky API over TLS,
# with a throw-away CA) in the background and exports what a script, the
# examples and the ducky command need to use it. Needs $build (the build dir).
# Sets $standin_dir and $standin_pid; the stand-in exits with the calling shell.
root=$(pwd)
standin_dir=$(mktemp -d)
/usr/bin/python3 spec/support/standin/standin.py --dir "$standin_dir" --exit-with $$ \
	>"$standin_dir/log" 2>&1 &
standin_pid=$!
trap 'kill $standin_pid 2>/dev/null; rm -rf "$standin_dir"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
i=0
until [ -f "$standin_dir/standin.json" ]; do
	i=$((i + 1))
	[ $i -lt 200 ] || { cat "$standin_dir/log"; exit 1; }
	sleep 0.1
done
port=$(lua5.4 -e 'print(math.tointeger(require("cjson").decode(io.read("a")).https_port))' \
	<"$standin_dir/standin.json")
# the same lines, for your own shell: tools/standin.sh prints them. The module in
# $build is for $lua alone (the Lua it was built for): Lua 5.2-5.4 read LUA_CPATH_5_x
# before LUA_CPATH, so another Lua finds no ducky there rather than one it cannot load.
lua=${lua:-lua5.4}
case $lua in
lua5.[234]) cpath=LUA_CPATH_5_${lua#lua5.} ;;
*) cpath=LUA_CPATH ;; # Lua 5.1 and LuaJIT
esac
cat >"$standin_dir/env" <<EOT
export $cpath='$root/$build/?.so;;' LUA_PATH='$root/lua/?.lua;;' PATH="$root/bin:\$PATH"
export DUCKY_BASE_URL=https://localhost:$port/v3
export DUCKY_TOKEN_URL=https://localhost:$port/oauth/token
export DUCKY_AUDIENCE=ducky-api-test
export DUCKY_CLIENT_ID=demo
export DUCKY_CLIENT_SECRET=secret-demo
export DUCKY_CA_FILE=$standin_dir/ca.pem
EOT
. "$standin_dir/env"
