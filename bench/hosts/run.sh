#!/bin/bash
# The event-loop figures of bench/README.md ("Event loops"), as Markdown:
#  1. per host, the longest gap between two ticks of a 10 ms host timer during
#     one call the stand-in answers in 0.5 s: a plain (blocking) ducky client, the
#     host's ducky adapter, the host's own HTTP means (bench/hosts/gaps.lua, run by
#     spec/support/hosts/driver_<host>.lua); RUNS runs each, min–max;
#  2. client:batch of 4 × 0.5 s over HTTP/1.1 (bench/hosts/batch.lua);
#  3. cqueues, Lua 5.3: N GETs over 50 coroutines, one ducky.cqueues client against
#     lua-http, on bench/nginx.conf.in's fixed answers (bench/hosts/cqueues_throughput.lua);
#     RUNS runs each, the median.
# Needs make host-builds (build-lua5.1, build-lua5.3, build-luajit) and tools/deps.sh.
#   bench/hosts/run.sh        (from the checkout's root; RUNS=5 N=2000)
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
RUNS=${RUNS:-5}
N=${N:-2000}
WORK=$(mktemp -d /tmp/ducky-bench-hosts.XXXXXX)
NGINX_PID=
cleanup() {
	[ -z "$NGINX_PID" ] || kill "$NGINX_PID" 2>/dev/null || true
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
for b in build build-lua5.1 build-lua5.3 build-luajit; do
	[ -f $b/ducky.so ] || { echo "run.sh: no $b/ducky.so: make && make host-builds" >&2; exit 1; }
done

# ---- the stand-in (the 0.5 s answers) ----
/usr/bin/python3 spec/support/standin/standin.py --dir "$WORK/standin" --exit-with $$ >"$WORK/standin.log" 2>&1 &
for _ in $(seq 100); do [ -f "$WORK/standin/standin.json" ] && break; sleep 0.1; done
export DUCKY_STANDIN_DIR=$WORK/standin DUCKY_BENCH_RUNS=$RUNS DUCKY_HOSTS_MODULE=bench.hosts.gaps
# Lua 5.3 finds lua-http's pure-Lua dependencies Debian ships for 5.1/5.2 only in 5.2's folder
LUA53_PATH="./lua/?.lua;./?.lua;;/usr/share/lua/5.2/?.lua;/usr/share/lua/5.2/?/init.lua"

gaps() { # host command...: runs the driver, prints its JSON lines
	local host=$1
	shift
	DUCKY_HOSTS_OUT=$WORK/$host.json timeout 300 "$@" >"$WORK/$host.log" 2>&1 ||
		{ cat "$WORK/$host.log" >&2; exit 1; }
	cat "$WORK/$host.json"
}
{
	gaps cqueues env LUA_CPATH='./build-lua5.3/?.so;;' LUA_PATH="$LUA53_PATH" lua5.3 spec/support/hosts/driver_cqueues.lua
	gaps copas env LUA_CPATH='./build-lua5.1/?.so;;' LUA_PATH='./lua/?.lua;./?.lua;;' lua5.1 spec/support/hosts/driver_copas.lua
	gaps luv env LUA_CPATH='./build/?.so;;' LUA_PATH='./lua/?.lua;./?.lua;;' lua5.4 spec/support/hosts/driver_luv.lua
	gaps nvim env DUCKY_HOSTS_PATH='./lua/?.lua;./?.lua;' DUCKY_HOSTS_CPATH='./build-luajit/?.so;' \
		nvim --headless -u NONE -i NONE -n -c 'luafile spec/support/hosts/driver_nvim.lua'
	HPORT=$(lua5.4 -e 'local s = require("socket").bind("127.0.0.1", 0) print((select(2, s:getsockname())))')
	sed -e "s|@ROOT@|$ROOT|g" -e "s|@PORT@|$HPORT|g" bench/hosts/haproxy.cfg.in >"$WORK/haproxy.cfg"
	gaps haproxy haproxy -db -f "$WORK/haproxy.cfg"
} >"$WORK/gaps.json"
lua5.4 bench/hosts/table.lua gaps "$WORK/gaps.json"

# ---- batch ----
LUA_CPATH='./build/?.so;;' LUA_PATH='./lua/?.lua;;' lua5.4 bench/hosts/batch.lua "$WORK/standin" "$RUNS" >"$WORK/batch.txt"
lua5.4 bench/hosts/table.lua batch "$WORK/batch.txt"

# ---- nginx with fixed answers, for throughput ----
PORT=$(lua5.4 -e 'local s = require("socket").bind("127.0.0.1", 0) print((select(2, s:getsockname())))')
sed -e "s|@DIR@|$WORK|g" -e "s|@PORT@|$PORT|g" bench/nginx.conf.in >"$WORK/nginx.conf"
nginx -p "$WORK" -c "$WORK/nginx.conf" -g 'daemon off;' &
NGINX_PID=$!
for _ in $(seq 50); do curl -sf -o /dev/null "http://127.0.0.1:$PORT/v3/ping" && break; sleep 0.1; done
for _ in $(seq "$RUNS"); do
	for which in ducky lua-http; do
		LUA_CPATH='./build-lua5.3/?.so;;' LUA_PATH="$LUA53_PATH" lua5.3 bench/hosts/cqueues_throughput.lua \
			$which "http://127.0.0.1:$PORT/v3" "http://127.0.0.1:$PORT/oauth/token" "$N" 50
	done
done >"$WORK/throughput.txt"
lua5.4 bench/hosts/table.lua throughput "$WORK/throughput.txt"
