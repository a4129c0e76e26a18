#!/bin/sh
# Installs the Debian packages ducky's build, suite, demo and CI need (as root),
# or prints the apt-get line to run (as anyone else, exit 1). make demo, make test
# and .ci/run call it; make check never does (packagers bring their own).
set -eu
# build and run: compiler, Lua 5.4, libcurl, OpenSSL, lua-cjson
PKGS="make gcc pkg-config lua5.4 liblua5.4-dev libcurl4-openssl-dev libssl-dev lua-cjson"
# the suite and the stand-in
PKGS="$PKGS lua-busted lua-socket python3 python3-cryptography openssl ca-certificates curl redis-server"
PKGS="$PKGS lua-redis procps" # procps: kill(1), for specs that run it through env
PKGS="$PKGS nginx-light libnginx-mod-http-lua"
# the event loops ducky's adapters run in (spec/hosts_spec.lua, examples/hosts, bench/hosts);
# lua-http: the peer of bench/hosts
PKGS="$PKGS lua-luv lua-cqueues lua-copas lua-http neovim haproxy"
# the other interpreters the suite runs on
PKGS="$PKGS lua5.1 liblua5.1-0-dev lua5.2 liblua5.2-dev lua5.3 liblua5.3-dev luajit2 libluajit2-5.1-dev"
# CI: lint, sanitizers, valgrind, the rock and the release tarball, benchmarks
PKGS="$PKGS lua-check clang clang-format libclang-rt-14-dev valgrind luarocks git wrk"
missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ]; then
	echo "installing:$missing"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
else
	echo "missing Debian packages; run:"
	echo "  sudo apt-get install -y --no-install-recommends$missing"
	exit 1
fi
