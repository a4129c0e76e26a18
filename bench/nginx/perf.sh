#!/bin/bash
# Where the nginx under test spends its CPU under load (after run.sh, when
# `perf stat -e task-clock true` works): per setup, one wrk run while perf counts
# the front worker's threads (pool threads included): CPU µs per request split
# into user and kernel time (/proc), context switches and system calls per
# request (perf's software and tracepoint events). With RECORD=1 it also samples
# call stacks (perf record -e cpu-clock -g) and prints the top symbols per setup
# (bench/out/nginx/perf.<impl>.<ms>.<conns>.txt). The kernel's part is what
# callgrind (ir.sh) does not see: the thread hop's futex wake-ups, eventfd
# writes, epoll and context switches.
# Environment: IMPLS ("ducky resty authz proxy"), CONNS ("32 256"), LATENCIES
# ("0 20"), DURATION (5), RECORD (0), THREADS (32), PEERS, DUCKY_SO as for run.sh.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
OUT=$ROOT/bench/out/nginx
IMPLS=${IMPLS:-ducky resty authz proxy}
CONNS=${CONNS:-32 256}
LATENCIES=${LATENCIES:-0 20}
DURATION=${DURATION:-5}
RECORD=${RECORD:-0}
THREADS=${THREADS:-32}
PIN=0
PEERS=${PEERS:-$(cd "$ROOT/.." && pwd)/shared/peers}
DUCKY_SO=${DUCKY_SO:-$ROOT/build-luajit/ducky.so}
TOKEN=bench-token-0123456789abcdef0123456789abcdef
for tool in nginx wrk curl perf lua5.4; do
	command -v "$tool" >/dev/null || { echo "perf.sh: $tool not found" >&2; exit 1; }
done
perf stat -e task-clock,context-switches,raw_syscalls:sys_enter true >/dev/null 2>&1 ||
	{ echo "perf.sh: perf cannot count here (perf_event_paranoid, tracefs)" >&2; exit 1; }
mkdir -p "$OUT"
RESULTS=$OUT/perf.md
: >"$RESULTS"
say() { echo "$@" | tee -a "$RESULTS"; }
. "$HERE/setup.sh"
check_routes "$IMPLS" "$LATENCIES"
WORKER=$(pgrep -P "${PIDS[1]}" -f 'nginx: worker' | head -1)
TICK=$(getconf CLK_TCK)
ticks() { awk '{ print $14, $15 }' "/proc/$WORKER/stat"; } # user, system

measure() { # impl ms conns -> one table row
	local url=$FRONT/$1$2 stat out n u0 s0 u1 s1 cs sc rec=()
	wrk -t 1 -c "$3" -d 1s "$url" >/dev/null 2>&1 # warm: JIT, VMs, connections
	stat=$(mktemp)
	[ "$RECORD" = 1 ] && rec=(perf record -q -e cpu-clock -g -o "$WORK/perf.data" -p "$WORKER" --)
	read -r u0 s0 < <(ticks)
	"${rec[@]}" perf stat -x, -o "$stat" -e context-switches,raw_syscalls:sys_enter -p "$WORKER" -- \
		wrk -t 1 -c "$3" -d "${DURATION}s" "$url" >"$WORK/wrk.out" 2>&1
	read -r u1 s1 < <(ticks)
	out=$(cat "$WORK/wrk.out")
	n=$(sed -n 's/^ *\([0-9]*\) requests in .*/\1/p' <<<"$out")
	cs=$(awk -F, '$3 == "context-switches" { print $1 }' "$stat")
	sc=$(awk -F, '$3 == "raw_syscalls:sys_enter" { print $1 }' "$stat")
	rm -f "$stat"
	if [ "$RECORD" = 1 ]; then
		local f=$OUT/perf.$1.$2.$3
		mv "$WORK/perf.data" "$f.data"
		{
			echo "## samples by thread (the event loop's, or a pool thread) and object"
			perf script -i "$f.data" -G -F tid,ip,dso 2>/dev/null | awk -v w="$WORKER" '{
				n = split($NF, p, "/"); d = p[n]; gsub(/[()]/, "", d)
				t = ($1 == w) ? "loop" : "pool"; c[t " " d]++; c[t " (all)"]++; all++ }
				END { for (k in c) printf "%5.1f%%  %s\n", 100 * c[k] / all, k }' | sort -rn | head -20
			echo "## by symbol"
			perf report -i "$f.data" --stdio --no-children -g none --sort dso,sym 2>/dev/null | grep '%' | head -60
		} >"$f.txt"
	fi
	awk -v l="$1" -v ms="$2" -v c="$3" -v n="$n" -v hz="$TICK" -v u="$((u1 - u0))" -v s="$((s1 - s0))" \
		-v cs="$cs" -v sc="$sc" -v d="$DURATION" 'BEGIN {
		printf "| %s | %s | %s | %.0f | %.1f | %.1f | %.1f | %.2f | %.2f |\n", l, ms, c, n / d,
			(u + s) / hz * 1e6 / n, u / hz * 1e6 / n, s / hz * 1e6 / n, cs / n, sc / n }'
}
say "CPU of the nginx under test per request (\`bench/nginx/perf.sh\`: one worker, $THREADS threads,"
say "\`wrk -t 1 -d ${DURATION}s\`; perf counts the worker and its pool threads)."
say
say "| setup | upstream ms | connections | requests/s | CPU µs | user µs | kernel µs | context switches | syscalls |"
say "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
for ms in $LATENCIES; do
	for c in $CONNS; do
		for impl in $IMPLS; do say "$(measure "$impl" "$ms" "$c")"; done
	done
done
