#!/bin/bash
# nginx benchmarks (make bench-nginx): one nginx worker under test, wrk, an
# upstream nginx on loopback answering at once or after 20 ms; per latency and
# connection count, four setups side by side, round robin:
#   ducky  - ducky.ngx API:request() in content_by_lua
#   authz  - API:authorization() in access_by_lua + proxy_pass
#   resty  - lua-resty-http request_uri() (from ../shared/peers, never copied into the repo)
#   authset - API:authorization() in set_by_lua + proxy_set_header + proxy_pass
#   proxy  - proxy_pass with a fixed Authorization header
#   mix, restymix - request() and lua-resty-http on an upstream route where one
#            call in 10 takes 200 ms (what batching costs a call that shares a
#            batch with a slow one); the mix row's ratio is to restymix
# and, to tell where time goes, luaset and setvar: the fixed header set by
# access_by_lua or set_by_lua (what any Lua in that phase costs).
# Prints Markdown tables (also in bench/out/nginx/results.md) with requests/s,
# the ratios the targets name, and the error counts wrk saw.
# Environment: RUNS (3), DURATION (seconds per wrk run, 5), CONNS ("32 256 1024"),
# LATENCIES ("0 20"), IMPLS ("ducky authz authset resty proxy mix restymix"; also luaset, setvar),
# PIN (0: unpinned, as a user runs it; 1: the nginx under test, pool threads
# included, on core 0, wrk and the upstream on core 1), THREADS (32: thread_pool
# threads = lua_worker_thread_vm_pool_size = new{ threads }), PEERS
# (../shared/peers), DUCKY_SO (build-luajit/ducky.so).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
OUT=$ROOT/bench/out/nginx
RUNS=${RUNS:-3}
DURATION=${DURATION:-5}
CONNS=${CONNS:-32 256 1024}
LATENCIES=${LATENCIES:-0 20}
IMPLS=${IMPLS:-ducky authz authset resty proxy mix restymix}
PIN=${PIN:-0}
THREADS=${THREADS:-32}
PEERS=${PEERS:-$(cd "$ROOT/.." && pwd)/shared/peers}
DUCKY_SO=${DUCKY_SO:-$ROOT/build-luajit/ducky.so}
TOKEN=bench-token-0123456789abcdef0123456789abcdef

for tool in nginx wrk curl lua5.4; do
	command -v "$tool" >/dev/null || { echo "run.sh: $tool not found (apt-get install nginx wrk curl lua5.4)" >&2; exit 1; }
done
mkdir -p "$OUT"
RESULTS=$OUT/results.md
: >"$RESULTS"
say() { echo "$@" | tee -a "$RESULTS"; }
log() { echo "# $*" >&2; }
. "$HERE/setup.sh"
check_routes "$IMPLS" "$LATENCIES"
EXCHANGES_BEFORE=$(exchanges)

# ---- rounds ----
# CPU time of the front nginx's worker (its pool threads included), in clock ticks
WORKER=$(pgrep -P "${PIDS[1]}" -f 'nginx: worker' | head -1)
TICK=$(getconf CLK_TCK)
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$WORKER/stat"; }
declare -A RPS ERRS CPU
wrk_run() { # impl ms conns -> "rps errors cpu-us-per-request"
	local out rps non2xx sock n t0 t1
	t0=$(cpu_ticks)
	out=$(on_core 1 wrk -t 1 -c "$3" -d "${DURATION}s" "$FRONT/$1$2" 2>&1)
	t1=$(cpu_ticks)
	n=$(sed -n 's/^ *\([0-9]*\) requests in .*/\1/p' <<<"$out")
	rps=$(sed -n 's/^Requests\/sec: *\([0-9.]*\).*/\1/p' <<<"$out")
	non2xx=$(sed -n 's/.*Non-2xx or 3xx responses: *\([0-9]*\).*/\1/p' <<<"$out")
	sock=$(sed -n 's/.*Socket errors: connect \([0-9]*\), read \([0-9]*\), write \([0-9]*\), timeout \([0-9]*\).*/\1 \2 \3 \4/p' <<<"$out")
	[ -n "$rps" ] || { echo "run.sh: wrk failed: $out" >&2; exit 1; }
	echo "$rps $(( ${non2xx:-0} + $(tr ' ' '+' <<<"${sock:-0}") )) $(awk -v d=$((t1 - t0)) -v n="$n" -v hz="$TICK" 'BEGIN { printf "%.1f", d / hz * 1e6 / n }')"
}
START=$(date +%s)
for ms in $LATENCIES; do
	for c in $CONNS; do
		for run in $(seq "$RUNS"); do # round robin: a slow spell of the machine hits every setup alike
			for impl in $IMPLS; do
				log "upstream $ms ms, $c connections, run $run/$RUNS: $impl"
				read -r r e u < <(wrk_run "$impl" "$ms" "$c")
				RPS[$impl.$ms.$c]="${RPS[$impl.$ms.$c]:-} $r"
				CPU[$impl.$ms.$c]="${CPU[$impl.$ms.$c]:-} $u"
				ERRS[$impl.$ms.$c]=$(( ${ERRS[$impl.$ms.$c]:-0} + e ))
			done
		done
	done
done
EXCHANGES_AFTER=$(exchanges)

# ---- tables ----
median() { tr ' ' '\n' | grep . | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
runs() { tr ' ' '\n' | grep . | awk '{ printf "%s%.0f", (NR > 1 ? ", " : ""), $1 }'; }
label() {
	case $1 in
	ducky) echo "ducky.ngx \`request()\`" ;;
	authz) echo "ducky.ngx \`authorization()\` in \`access_by_lua\` + \`proxy_pass\`" ;;
	authset) echo "ducky.ngx \`authorization()\` in \`set_by_lua\` + \`proxy_pass\`" ;;
	resty) echo "lua-resty-http 0.17 \`request_uri()\`" ;;
	proxy) echo "\`proxy_pass\`, fixed header" ;;
	luaset) echo "\`access_by_lua\` setting a fixed header + \`proxy_pass\`" ;;
	setvar) echo "\`set_by_lua\` setting a fixed header + \`proxy_pass\`" ;;
	mix) echo "ducky.ngx \`request()\`, one call in 10 slow" ;;
	restymix) echo "lua-resty-http, one call in 10 slow" ;;
	esac
}
say "Machine: $(nproc) cores, $(uname -sr), nginx $(nginx -v 2>&1 | sed 's/.*nginx\///'), $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2)."
say "\`make bench-nginx\`: one worker, \`thread_pool ducky threads=$THREADS\`, \`lua_worker_thread_vm_pool_size $THREADS\`,"
say "\`new{ threads = $THREADS }\`; \`wrk -t 1 -c N -d ${DURATION}s\`, $RUNS runs per setup, round robin; medians."
say
for ms in $LATENCIES; do
	for c in $CONNS; do
		resty=$(median <<<"${RPS[resty.$ms.$c]:-0}")
		proxy=$(median <<<"${RPS[proxy.$ms.$c]:-0}")
		say "#### Upstream $ms ms, $c connections"
		say
		say "| setup | requests/s | × lua-resty-http (its mix row for mix) | × proxy_pass | errors | the $RUNS runs | nginx CPU µs/request |"
		say "|---|---:|---:|---:|---:|---|---:|"
		restymix=$(median <<<"${RPS[restymix.$ms.$c]:-0}")
		for impl in $IMPLS; do
			m=$(median <<<"${RPS[$impl.$ms.$c]}")
			r=$resty p=$proxy
			case $impl in mix | restymix) r=$restymix p=0 ;; esac
			say "$(awk -v l="$(label "$impl")" -v m="$m" -v r="$r" -v p="$p" -v e="${ERRS[$impl.$ms.$c]}" \
				-v runs="$(runs <<<"${RPS[$impl.$ms.$c]}")" -v cpu="$(median <<<"${CPU[$impl.$ms.$c]}")" \
				'BEGIN { printf "| %s | **%.0f** | %s | %s | %d | %s | %.1f |\n", l, m,
					(r > 0 ? sprintf("%.2f", m / r) : "–"), (p > 0 ? sprintf("%.2f", m / p) : "–"), e, runs, cpu }')"
		done
		say
	done
done
say "Token exchanges at the upstream: $EXCHANGES_BEFORE before the rounds (start-up), $((EXCHANGES_AFTER - EXCHANGES_BEFORE)) during them."
say "ducky.ngx stats (API0, API20): $(curl -sf "$FRONT/stats")"
say
say "Total: $(($(date +%s) - START)) s of rounds."
