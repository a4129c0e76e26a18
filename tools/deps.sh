#!/bin/sh
# Installs the Debian packages ducky needs (as root), or prints the apt-get line.
set -eu
PKGS="make gcc clang libclang-rt-14-dev pkg-config lua5.4 liblua5.4-dev libcurl4-openssl-dev
libssl-dev lua-cjson lua-busted lua-socket lua-check python3 openssl valgrind redis-server
lua-redis lua5.1 liblua5.1-0-dev lua5.2 liblua5.2-dev lua5.3 liblua5.3-dev luajit2
libluajit2-5.1-dev nginx-light libnginx-mod-http-lua curl"
missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ]; then
	echo "installing:$missing"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
else
	echo "missing Debian packages; run:"
	echo "  sudo apt-get install -y$missing"
	exit 1
fi
