#!/bin/bash
# Instructions per request in the nginx under test (make bench-nginx, after
# run.sh): the front nginx runs under callgrind as one process (its pool
# threads included) and answers N1, then N2 requests of each setup on one
# kept-alive connection; Ir per request = (Ir of N2 − Ir of N1) / (N2 − N1).
# User space only: the kernel's part (syscalls, thread wake-ups) is not in it,
# which is what the CPU µs/request of run.sh adds. Deterministic, so it tells
# setups apart on a machine too busy for throughput figures to.
# With PARALLEL=n, curl makes n requests at once (n connections): many
# requests per event-loop iteration, as under load (calls go in batches).
# Environment: N1 (100), N2 (600), PARALLEL (1), IMPLS ("proxy setvar authset luaset authz resty ducky"),
# THREADS (8), PEERS, DUCKY_SO as for run.sh.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
OUT=$ROOT/bench/out/nginx
N1=${N1:-100}
N2=${N2:-600}
PARALLEL=${PARALLEL:-1}
IMPLS=${IMPLS:-proxy setvar authset luaset authz resty ducky}
THREADS=${THREADS:-8}
PIN=0
PEERS=${PEERS:-$(cd "$ROOT/.." && pwd)/shared/peers}
DUCKY_SO=${DUCKY_SO:-$ROOT/build-luajit/ducky.so}
TOKEN=bench-token-0123456789abcdef0123456789abcdef
for tool in nginx curl valgrind callgrind_control lua5.4; do
	command -v "$tool" >/dev/null || { echo "ir.sh: $tool not found" >&2; exit 1; }
done
mkdir -p "$OUT"
RESULTS=$OUT/ir.md
: >"$RESULTS"
say() { echo "$@" | tee -a "$RESULTS"; }
FRONT_WRAP="valgrind --tool=callgrind --callgrind-out-file=@WORK@/cg.out"
. "$HERE/setup.sh"
VG=${PIDS[1]}
check_routes "$IMPLS" 0

requests() { # url n: n requests on one kept-alive connection, or PARALLEL at once
	local urls=() par=()
	for ((i = 0; i < $2; i++)); do urls+=("$1"); done
	[ "$PARALLEL" -gt 1 ] && par=(--parallel --parallel-immediate --parallel-max "$PARALLEL")
	curl -sf "${par[@]}" "${urls[@]}" >/dev/null
}
ir_of() { # impl n -> Ir of n requests
	callgrind_control -z "$VG" >/dev/null
	requests "$FRONT/${1}0" "$2"
	rm -f "$WORK"/cg.out.*
	callgrind_control -d "$VG" >/dev/null
	cp "$WORK"/cg.out.* "$OUT/cg.$1.$2.out"
	sed -n 's/^totals: *\([0-9]*\).*/\1/p' "$WORK"/cg.out.* | tail -1
}
label() {
	case $1 in
	ducky) echo "ducky.ngx \`request()\`" ;;
	authz) echo "ducky.ngx \`authorization()\` in \`access_by_lua\` + \`proxy_pass\`" ;;
	authset) echo "ducky.ngx \`authorization()\` in \`set_by_lua\` + \`proxy_pass\`" ;;
	setvar) echo "\`set_by_lua\` setting a fixed header + \`proxy_pass\`" ;;
	resty) echo "lua-resty-http 0.17 \`request_uri()\`" ;;
	proxy) echo "\`proxy_pass\`, fixed header" ;;
	luaset) echo "\`access_by_lua\` setting a fixed header + \`proxy_pass\`" ;;
	esac
}
say "Instructions per request in the nginx under test (callgrind, user space, pool threads included;"
if [ "$PARALLEL" -gt 1 ]; then conns="$PARALLEL connections at once"; else conns="one connection"; fi
say "upstream 0 ms; ($N2 − $N1 requests) on $conns; \`bench/nginx/ir.sh\`)."
say
say "| setup | Ir per request | × proxy_pass |"
say "|---|---:|---:|"
declare -A IR
for impl in $IMPLS; do
	requests "$FRONT/${impl}0" 20 # warm: JIT, VMs, connections
	a=$(ir_of "$impl" "$N1")
	b=$(ir_of "$impl" "$N2")
	IR[$impl]=$(((b - a) / (N2 - N1)))
	say "$(awk -v l="$(label "$impl")" -v ir="${IR[$impl]}" -v p="${IR[proxy]:-0}" \
		'BEGIN { printf "| %s | %d | %s |\n", l, ir, (p > 0 ? sprintf("%.2f", ir / p) : "–") }')"
done
