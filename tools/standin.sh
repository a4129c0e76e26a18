#!/bin/sh
# make standin: the local stand-in in the foreground, until Ctrl-C, with the
# lines that point your own scripts and the ducky command at it.
#   tools/standin.sh [BUILD [LUA]]
set -eu
build=${1:-build}
lua=${2:-lua5.4}
. tools/standin-env.sh
cat <<EOT
The stand-in (Auth0's token endpoint and the Ducky API) is up at $DUCKY_BASE_URL.
Its rules: any client id works with the secret "secret-" followed by that id;
its certificates come from a CA made at start-up. In another shell, run

$(cat "$standin_dir/env")

(or: . $standin_dir/env), then for example
  ducky ping --protected
  $lua examples/ping.lua
  $lua examples/request.lua GET /footprints
The module path is for $lua, the Lua of this build; for another one,
make standin LUA=... (lua5.1, lua5.2, lua5.3, lua5.4 or luajit).

What it answers, and its controls that make it misbehave (outages, faults,
revoked tokens, ...): README.md, "The local stand-in".
Ctrl-C stops it.
EOT
wait $standin_pid
