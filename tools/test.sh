#!/bin/sh
# Runs the busted specs against the module in build dir $1 and prints what
# failed, then "N passed, N failed, N skipped" (tools/summary.lua).
#   tools/test.sh BUILD [SPEC_FILE...]      (no file: every spec/*_spec.lua)
#   tools/test.sh BUILD --busted-option ... (one busted run, as given)
# Spec files run in $DUCKY_JOBS (default 3) busted processes at once, one file
# per process, the longest first (their last times are kept in BUILD/spec-times),
# each process with a token cache (XDG_CACHE_HOME) of its own and each of the
# $DUCKY_JOBS slots with a stand-in of its own. SERIAL (below) run one after
# another in one process. A failing file fails the run and its output is shown.
# $DUCKY_PRELOAD, if set, is preloaded into the Lua interpreter only (sanitizer
# runtimes); $DUCKY_COUNTS, if set, gets the counts appended (make test).
set -eu
# Lua 5.2-5.4 would read these before LUA_CPATH (make standin prints one): the build under test only
unset LUA_CPATH_5_2 LUA_CPATH_5_3 LUA_CPATH_5_4
# Specs that run make in the checkout (they share its build directories).
SERIAL="spec/build_spec.lua spec/readme_spec.lua"

# tools/test.sh --one BUILD WORK ITEM: one busted process for the files of ITEM
# (xargs runs these; $SLOT names the stand-in of its slot)
if [ "${1:-}" = "--one" ]; then
	build=$2 work=$3 item=$4
	name=$(printf %s "$item" | tr -c 'A-Za-z0-9_\n' _)
	start=$(date +%s%N)
	mkdir -p "$work/cache.$name"
	# the slot's stand-in as new: no fault or outage a file before queued and left
	# (a delay left on /v3/echo took the place of cli_spec's own fault once)
	/usr/bin/python3 -c 'import json, sys, urllib.request
port = json.load(open(sys.argv[1]))["http_port"]
urllib.request.urlopen(urllib.request.Request(
    "http://127.0.0.1:%d/_control/reset" % port, data=b"{}", method="POST"), timeout=10).read()' \
		"$work/standin.${SLOT:-0}/standin.json"
	# shellcheck disable=SC2086 # ITEM is a list of file names without spaces
	XDG_CACHE_HOME="$work/cache.$name" DUCKY_STANDIN_DIR="$work/standin.${SLOT:-0}" DUCKY_BUILD="$build" \
		LUA_CPATH="./$build/?.so;;" LD_PRELOAD="${DUCKY_PRELOAD:-}" \
		${DUCKY_LUA:-lua5.4} /usr/bin/busted --output=TAP $item >"$work/$name.tap" 2>"$work/$name.err" || :
	printf '%s\n' "$item" >"$work/$name.name"
	echo "$((($(date +%s%N) - start) / 1000000)) $item" >>"$work/times"
	rm -rf "$work/cache.$name"
	exit 0
fi

build=${1:-build}
[ $# -gt 0 ] && shift
work=$(mktemp -d)
pids=
trap '[ -z "$pids" ] || kill $pids 2>/dev/null || :; rm -rf "$work"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
status=0

case " $* " in
*" -"*) # busted options: one run with the arguments as given
	mkdir "$work/cache"
	XDG_CACHE_HOME="$work/cache" DUCKY_BUILD="$build" LUA_CPATH="./$build/?.so;;" \
		LD_PRELOAD="${DUCKY_PRELOAD:-}" ${DUCKY_LUA:-lua5.4} /usr/bin/busted --output=TAP "$@" \
		>"$work/run.tap" 2>"$work/run.err" || :
	lua5.4 tools/summary.lua ${DUCKY_COUNTS:+--append "$DUCKY_COUNTS"} "$work/run.tap" || status=1
	exit $status
	;;
esac

[ $# -gt 0 ] || set -- spec/*_spec.lua
jobs=${DUCKY_JOBS:-3}
[ "$jobs" -le $# ] || jobs=$#

# The items, longest first by their last times (new files first of all): each
# file alone, SERIAL's files together in one item.
serial='' items=''
for f in "$@"; do
	case " $SERIAL " in
	*" $f "*) serial="$serial $f" ;;
	*) items="$items$f
" ;;
	esac
done
[ -z "$serial" ] || items="$items${serial# }
"
printf %s "$items" | awk -v times="$build/spec-times" '
	BEGIN { while ((getline line < times) > 0) { n = index(line, " "); t[substr(line, n + 1)] = substr(line, 1, n - 1) } }
	{ print ($0 in t ? t[$0] : 999999999), $0 }' | sort -rn | cut -d' ' -f2- >"$work/items"

# a stand-in per slot, tied to this shell
slot=0
while [ $slot -lt "$jobs" ]; do
	/usr/bin/python3 spec/support/standin/standin.py --dir "$work/standin.$slot" --exit-with $$ \
		>"$work/standin.$slot.log" 2>&1 &
	pids="$pids $!"
	slot=$((slot + 1))
done
slot=0
while [ $slot -lt "$jobs" ]; do
	i=0
	until [ -f "$work/standin.$slot/standin.json" ]; do
		i=$((i + 1))
		[ $i -lt 400 ] || { cat "$work/standin.$slot.log"; exit 1; }
		sleep 0.05
	done
	slot=$((slot + 1))
done

: >"$work/times"
tr '\n' '\0' <"$work/items" | xargs -0 -P "$jobs" --process-slot-var=SLOT -n 1 sh tools/test.sh --one "$build" "$work"

# keep this run's times for the next run's order (files not run this time keep
# theirs; files gone are forgotten)
if [ -d "$build" ]; then
	{ cat "$work/times"; cat "$build/spec-times" 2>/dev/null || :; } |
		awk '{ n = index($0, " "); k = substr($0, n + 1); if (!(k in seen)) { seen[k] = 1; print } }' |
		while read -r ms files; do
			# shellcheck disable=SC2086 # a list of file names without spaces
			ls $files >/dev/null 2>&1 && echo "$ms $files"
		done >"$work/spec-times"
	cp "$work/spec-times" "$build/spec-times"
fi
lua5.4 tools/summary.lua ${DUCKY_COUNTS:+--append "$DUCKY_COUNTS"} "$work"/*.tap || status=1
exit $status
