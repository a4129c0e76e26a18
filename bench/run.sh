#!/bin/bash
# The benchmark driver (make -C bench bench): starts nginx, runs every figure of
# bench/README.md, prints them as Markdown (also kept in bench/out/results.md).
# Environment: N (20000 sequential requests), RUNS (5), NCURL (1000 curl
# processes), CG_N/CG_n (2000/200 requests under callgrind), STARTUP_RUNS (51),
# BENCH_CPU (0: the core nginx and the clients share), DUCKY_SO (../build/ducky.so),
# DUCKY_LUAJIT_SO (out/build-luajit/ducky.so when it exists).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
OUT=$HERE/out
N=${N:-20000}
RUNS=${RUNS:-5}
NCURL=${NCURL:-1000}
CG_N=${CG_N:-2000}
CG_n=${CG_n:-200}
STARTUP_RUNS=${STARTUP_RUNS:-51}
CPU=${BENCH_CPU:-0}
OTHER_CPU=$(((CPU + 1) % $(nproc)))
DUCKY_SO=${DUCKY_SO:-$ROOT/build/ducky.so}
DUCKY_LUAJIT_SO=${DUCKY_LUAJIT_SO:-$ROOT/build-luajit/ducky.so}
FLOOR=$OUT/floor
TOKEN=bench-token-0123456789abcdef0123456789abcdef
PIN="taskset -c $CPU"

for tool in nginx valgrind callgrind_annotate curl taskset lua5.4; do
	command -v "$tool" >/dev/null || { echo "run.sh: $tool not found (tools/deps.sh)" >&2; exit 1; }
done
[ -f "$DUCKY_SO" ] || { echo "run.sh: no $DUCKY_SO: run make at the top first" >&2; exit 1; }
[ -x "$FLOOR" ] || { echo "run.sh: no $FLOOR: make -C bench out/floor" >&2; exit 1; }
mkdir -p "$OUT"
RESULTS=$OUT/results.md
: >"$RESULTS"
say() { echo "$@" | tee -a "$RESULTS"; }
log() { echo "# $*" >&2; }
START=$(date +%s)

# ---- nginx: a temporary prefix, a free port, stopped on any exit ----
WORK=$(mktemp -d /tmp/ducky-bench.XXXXXX)
NGINX_PID=
cleanup() {
	if [ -n "$NGINX_PID" ]; then
		kill "$NGINX_PID" 2>/dev/null || true
		wait "$NGINX_PID" 2>/dev/null || true
	fi
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
PORT=$(lua5.4 -e 'local s = assert(require("socket").bind("127.0.0.1", 0))
	local _, port = s:getsockname(); print(port); s:close()')
sed -e "s|@DIR@|$WORK|g" -e "s|@PORT@|$PORT|g" "$HERE/nginx.conf.in" >"$WORK/nginx.conf"
$PIN nginx -p "$WORK" -c "$WORK/nginx.conf" -g 'daemon off;' &
NGINX_PID=$!
BASE=http://127.0.0.1:$PORT/v3
TOKEN_URL=http://127.0.0.1:$PORT/oauth/token
URL=$BASE/ping/protected
for _ in $(seq 50); do
	curl -sf -o /dev/null "$URL" && break
	sleep 0.1
done
curl -sf -o /dev/null "$URL" || { echo "run.sh: nginx did not start" >&2; cat "$WORK/error.log" >&2; exit 1; }

export LUA_CPATH="$(dirname "$DUCKY_SO")/?.so;;"
LUAJIT_CPATH="$(dirname "$DUCKY_LUAJIT_SO")/?.so;;"
HAVE_LUAJIT=0
if command -v luajit >/dev/null && [ -f "$DUCKY_LUAJIT_SO" ]; then HAVE_LUAJIT=1; fi

median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
rate() { sed -n 's/.*: \([0-9.]*\) requests\/s$/\1/p'; }

# ---- 1. sequential throughput ----
declare -A R
run_floor() { $PIN "$FLOOR" "$URL" "$N" "$TOKEN"; }
run_ducky() { $PIN lua5.4 "$HERE/ducky_seq.lua" "$BASE" "$TOKEN_URL" "$N"; }
run_ducky_jit() { LUA_CPATH=$LUAJIT_CPATH $PIN luajit "$HERE/ducky_seq.lua" "$BASE" "$TOKEN_URL" "$N"; }
run_luasocket() { $PIN lua5.4 "$HERE/luasocket_seq.lua" "$BASE" "$TOKEN_URL" "$N"; }
run_curl() {
	$PIN bash -c 'n=$1; url=$2; tok=$3
		t0=$(date +%s%N)
		for ((i = 0; i < n; i++)); do
			curl -sf -o /dev/null -H "Authorization: Bearer $tok" "$url" || exit 1
		done
		t1=$(date +%s%N)
		awk -v n="$n" -v ns=$((t1 - t0)) "BEGIN { printf \"%d requests in %.3f s: %.0f requests/s\n\", n, ns / 1e9, n / (ns / 1e9) }"' \
		_ "$NCURL" "$URL" "$TOKEN"
}
run_floor_x() { taskset -c "$OTHER_CPU" "$FLOOR" "$URL" "$N" "$TOKEN"; }
run_ducky_x() { taskset -c "$OTHER_CPU" lua5.4 "$HERE/ducky_seq.lua" "$BASE" "$TOKEN_URL" "$N"; }
IMPLS="floor ducky"
[ "$HAVE_LUAJIT" = 1 ] && IMPLS="$IMPLS ducky_jit"
IMPLS="$IMPLS luasocket curl floor_x ducky_x"
for run in $(seq "$RUNS"); do # round robin: a slow spell of the machine hits every row alike
	for impl in $IMPLS; do
		log "throughput run $run/$RUNS: $impl"
		r=$("run_$impl" | rate)
		[ -n "$r" ] || { echo "run.sh: $impl failed" >&2; exit 1; }
		R[$impl]="${R[$impl]:-} $r"
	done
done
med() { tr ' ' '\n' <<<"${R[$1]}" | grep . | median; }
FLOOR_RPS=$(med floor)
FLOOR_X_RPS=$(med floor_x)
row() { # impl label requests floor
	local m runs
	m=$(med "$1")
	runs=$(tr ' ' '\n' <<<"${R[$1]}" | grep . | awk '{ printf "%s%.0f", (NR > 1 ? ", " : ""), $1 }')
	say "$(awk -v l="$2" -v n="$3" -v m="$m" -v f="$4" -v r="$runs" \
		'BEGIN { printf "| %s | %s | **%.0f** | %.3f | %s |\n", l, n, m, m / f, r }')"
}
say "### 1. Sequential throughput (requests/s, median of $RUNS runs)"
say
say "nginx and the client pinned to the same core (\`taskset -c $CPU\`): the figure is the CPU"
say "cost of a request, client plus server. Target: ducky ≥ 0.95 × the floor."
say
say "| client | requests | requests/s | ratio to the floor | the $RUNS runs |"
say "|---|---:|---:|---:|---|"
row floor "floor: C, libcurl, one reused handle (\`bench/floor.c\`)" "$N" "$FLOOR_RPS"
row ducky "ducky, Lua 5.4 (\`bench/ducky_seq.lua\`)" "$N" "$FLOOR_RPS"
[ "$HAVE_LUAJIT" = 1 ] && row ducky_jit "ducky, LuaJIT 2.1 (same source, \`LUA_PC=luajit\` build)" "$N" "$FLOOR_RPS"
row luasocket "luasocket \`socket.http\` + cjson, token cached by hand (a new connection per request)" "$N" "$FLOOR_RPS"
row curl "\`curl\` command, one process per request" "$NCURL" "$FLOOR_RPS"
say
say "Client on the other core (\`taskset -c $OTHER_CPU\`, nginx stays on $CPU): each request then waits"
say "for a cross-core wake-up, which on this VM costs more than either side's work."
say
say "| client | requests | requests/s | ratio to the floor | the $RUNS runs |"
say "|---|---:|---:|---:|---|"
row floor_x "floor" "$N" "$FLOOR_X_RPS"
row ducky_x "ducky, Lua 5.4" "$N" "$FLOOR_X_RPS"
say

# ---- 2. instructions per request (callgrind) ----
cg() { # name cmd... : writes $OUT/cg.<name>.out
	local name=$1
	shift
	$PIN valgrind --tool=callgrind --callgrind-out-file="$OUT/cg.$name.out" "$@" >/dev/null 2>"$OUT/cg.$name.log" ||
		{ cat "$OUT/cg.$name.log" >&2; exit 1; }
}
total() { sed -n 's/^summary: *//p' "$OUT/cg.$1.out"; }
per_req() { echo $((($(total "$1.big") - $(total "$1.small")) / (CG_N - CG_n))); }
log "callgrind: floor, ducky"
for n in big small; do
	[ $n = big ] && k=$CG_N || k=$CG_n
	cg "floor.$n" "$FLOOR" "$URL" "$k" "$TOKEN"
	cg "ducky.$n" lua5.4 "$HERE/ducky_seq.lua" "$BASE" "$TOKEN_URL" "$k"
	cg "ducky_start.$n" lua5.4 "$HERE/ducky_start_seq.lua" "$BASE" "$TOKEN_URL" "$k"
	if [ "$HAVE_LUAJIT" = 1 ]; then
		LUA_CPATH=$LUAJIT_CPATH cg "ducky_jit.$n" luajit "$HERE/ducky_seq.lua" "$BASE" "$TOKEN_URL" "$k"
	fi
done
IR_FLOOR=$(per_req floor)
IR_DUCKY=$(per_req ducky)
IR_START=$(per_req ducky_start)
say "### 2. Instructions per request (\`valgrind --tool=callgrind\`)"
say
say "Ir per request = (Ir of a $CG_N-request run − Ir of a $CG_n-request run) / $((CG_N - CG_n)): process"
say "start, module load, the connect and the token exchange cancel out. Client side only."
say
say "| client | Ir per request | over the floor |"
say "|---|---:|---:|"
say "| floor | $IR_FLOOR | |"
say "$(awk -v d="$IR_DUCKY" -v f="$IR_FLOOR" 'BEGIN { printf "| ducky, Lua 5.4, `request()` | **%d** | **%+.1f%%** (target ≤ +25%%) |\n", d, 100 * (d - f) / f }')"
say "$(awk -v d="$IR_START" -v f="$IR_FLOOR" -v r="$IR_DUCKY" 'BEGIN { printf "| ducky, Lua 5.4, `start` + a select/`step` loop in Lua (`bench/ducky_start_seq.lua`) | **%d** | %+.1f%% (%.2f × `request()`) |\n", d, 100 * (d - f) / f, d / r }')"
if [ "$HAVE_LUAJIT" = 1 ]; then
	IR_JIT=$(per_req ducky_jit)
	say "$(awk -v d="$IR_JIT" -v f="$IR_FLOOR" 'BEGIN { printf "| ducky, LuaJIT 2.1 | %d | %+.1f%% |\n", d, 100 * (d - f) / f }')"
fi
say
log "callgrind: the floor with ducky's libcurl options, one by one"
say "Where libcurl's share of the difference comes from: the floor again, with what"
say "\`src/http.c\` asks of libcurl added (\`FLOOR_LIKE=…\`, see \`bench/floor.c\`)."
say
say "\`all\` is the floor asking libcurl for both lines its own way (\`CURLOPT_USERAGENT\`, \`CURLOPT_ACCEPT_ENCODING\`); \`uahdr\` and \`gzip\` are cheaper ways to"
say "send the same User-Agent and a gzip Accept-Encoding."
say
say "| floor + | Ir per request | over the floor |"
say "|---|---:|---:|"
for like in ua enc hdr timeout misc perreq all uahdr gzip uahdr,gzip uahdr,gzip,hdr,timeout,misc,perreq; do
	for n in big small; do
		[ $n = big ] && k=$CG_N || k=$CG_n
		FLOOR_LIKE=$like cg "floor_$like.$n" "$FLOOR" "$URL" "$k" "$TOKEN"
	done
	say "$(awk -v l="$like" -v d="$(per_req "floor_$like")" -v f="$IR_FLOOR" \
		'BEGIN { printf "| `%s` | %d | %+d |\n", l, d, d - f }')"
done
IR_SAME=$(per_req "floor_uahdr,gzip,hdr,timeout,misc,perreq")
say
say "ducky sends its User-Agent as a line of its header list and decodes gzip and deflate (\`src/http.c\`),"
say "so the floor closest to what ducky asks of libcurl is the last row, not \`all\` (libcurl formatting both lines)."
say "$(awk -v d="$IR_DUCKY" -v a="$IR_SAME" -v f="$IR_FLOOR" 'BEGIN { printf "So of ducky'"'"'s %+d Ir over the floor, %+d are libcurl sending nearly the same request and %+d are ducky'"'"'s own (the binding, the token lookup, the Lua result table, headers and JSON): ducky is **%.2f ×** that floor.", d - f, a - f, d - a, d / a }')"
say
PROFILE="lua5.4 $HERE/cgdiff.lua $OUT/cg.ducky.big.out $CG_N $OUT/cg.ducky.small.out $CG_n"
say "Per object, exclusive Ir per request: ducky, then the floor."
say
$PROFILE 10 objects | tail -n +2 | tee -a "$RESULTS"
say
lua5.4 "$HERE/cgdiff.lua" "$OUT/cg.floor.big.out" "$CG_N" "$OUT/cg.floor.small.out" "$CG_n" 10 objects |
	tail -n +2 | tee -a "$RESULTS"
say
say "ducky's per-request profile, exclusive (top 20; \`bench/cgdiff.lua\`: the same difference, per function)."
say "Debian ships libcurl without symbols; by their call graph 0x47d60 is libcurl's printf engine,"
say "0x47c50 its one-byte-at-a-time output callback and 0x24930 the dynbuf append it calls for every byte."
say
$PROFILE 20 exclusive | tail -n +2 | tee -a "$RESULTS"
say
say "Inclusive, named functions only (ducky's, the Lua and libcurl API, malloc):"
say
$PROFILE 30 inclusive src/ curl_ lua_ luaL_ malloc free realloc getenv | tail -n +2 |
	grep -v 'lua_pcallk\|lua_callk' | tee -a "$RESULTS"
say
say "The floor's, inclusive, the same functions:"
say
lua5.4 "$HERE/cgdiff.lua" "$OUT/cg.floor.big.out" "$CG_N" "$OUT/cg.floor.small.out" "$CG_n" 12 inclusive \
	curl_ malloc free realloc getenv | tail -n +2 | tee -a "$RESULTS"
say

# ---- 3. memory ----
log "memory"
say "### 3. Memory (\`bench/memory.lua\`, one process)"
say
say "| what | figure | target |"
say "|---|---|---|"
$PIN lua5.4 "$HERE/memory.lua" "$BASE" "$TOKEN_URL" requests 1000 100000 | tee -a "$RESULTS"
$PIN lua5.4 "$HERE/memory.lua" "$BASE" "$TOKEN_URL" clients 1000 | tee -a "$RESULTS"
$PIN lua5.4 "$HERE/memory.lua" "$BASE" "$TOKEN_URL" used 100 | tee -a "$RESULTS"
say

# ---- 4. module load and cold start ----
log "module load time and cold start"
log "callgrind: module load"
cg load.bare lua5.4 -e ''
cg load.ducky lua5.4 -e 'require "ducky"'
LOAD_IR=$(($(total load.ducky) - $(total load.bare)))
say "### 4. Module load time and cold start (\`bench/startup.lua\`, $STARTUP_RUNS fresh processes each, medians)"
say
say "| what | figure |"
say "|---|---|"
BENCH_TMP=$WORK $PIN lua5.4 "$HERE/startup.lua" "$BASE" "$TOKEN_URL" "$STARTUP_RUNS" | tee -a "$RESULTS"
say "| \`require \"ducky\"\` in instructions (callgrind, \`lua5.4 -e 'require \"ducky\"'\` − \`lua5.4 -e ''\`) | $LOAD_IR Ir |"
say
say "Total: $(($(date +%s) - START)) s for run.sh."
