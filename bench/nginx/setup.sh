# Sourced by bench/nginx/run.sh and ir.sh: the two nginx of the benchmark in a
# temporary prefix readable by nginx's workers (they may not enter the checkout
# or $PEERS), on free ports. Set before sourcing: HERE, ROOT, THREADS, PEERS,
# DUCKY_SO, TOKEN, PIN, and FRONT_WRAP (a command the front nginx runs under,
# e.g. valgrind, @WORK@ standing for the prefix; it then runs as one process:
# master_process off).
[ -f "$DUCKY_SO" ] || { echo "${0##*/}: no $DUCKY_SO: make LUA=luajit all" >&2; exit 1; }
[ -f "$PEERS/lua-resty-http/lib/resty/http.lua" ] ||
	{ echo "${0##*/}: no lua-resty-http in $PEERS (PEERS=…)" >&2; exit 1; }
WORK=$(mktemp -d /tmp/ducky-bench-nginx.XXXXXX)
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	[ -n "${KEEP:-}" ] || rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
mkdir -p "$WORK/lib" "$WORK/lua/ducky/ngx" "$WORK/peers"
cp "$DUCKY_SO" "$WORK/lib/ducky.so"
cp "$ROOT/lua/ducky/ngx.lua" "$ROOT/lua/ducky/redis_store.lua" "$WORK/lua/ducky/"
cp "$ROOT"/lua/ducky/ngx/*.lua "$WORK/lua/ducky/ngx/"
cp -r "$PEERS/lua-resty-http" "$PEERS/lua-resty-string" "$WORK/peers/"
chmod -R a+rX "$WORK"
free_port() {
	lua5.4 -e 'local s = assert(require("socket").bind("127.0.0.1", 0))
		local _, port = s:getsockname(); print(port); s:close()'
}
PORT=$(free_port)
PORT0=$(free_port)
PORT20=$(free_port)
on_core() { if [ "$PIN" = 1 ]; then exec taskset -c "$1" "${@:2}"; else exec "${@:2}"; fi; }
declare -A CORE=([front]=0 [upstream]=1)
for f in upstream front; do
	sed -e "s|@DIR@|$WORK|g" -e "s|@PORT@|$PORT|g" -e "s|@PORT0@|$PORT0|g" -e "s|@PORT20@|$PORT20|g" \
		-e "s|@TOKEN@|$TOKEN|g" -e "s|@THREADS@|$THREADS|g" -e "s|@PEERS@|$WORK/peers|g" \
		"$HERE/$f.conf.in" >"$WORK/$f.conf"
	if [ "$f" = front ] && [ -n "${FRONT_WRAP:-}" ]; then
		${FRONT_WRAP//@WORK@/$WORK} nginx -p "$WORK" -c "$WORK/$f.conf" -g 'daemon off; master_process off;' \
			2>"$WORK/$f.stderr" &
	else
		on_core "${CORE[$f]}" nginx -p "$WORK" -c "$WORK/$f.conf" -g 'daemon off;' 2>"$WORK/$f.stderr" &
	fi
	PIDS+=($!)
done
FRONT=http://127.0.0.1:$PORT
for _ in $(seq 600); do
	curl -sf -o /dev/null "$FRONT/proxy0" && curl -sf -o /dev/null "$FRONT/ducky0" && break
	sleep 0.1
done
check_routes() { # impls latencies
	for impl in $1; do
		for ms in $2; do
			curl -sf -o /dev/null "$FRONT/$impl$ms" ||
				{ echo "${0##*/}: $FRONT/$impl$ms failed" >&2; cat "$WORK"/*.log "$WORK"/*.stderr >&2; exit 1; }
		done
	done
}
exchanges() { curl -sf "http://127.0.0.1:$PORT0/_exchanges"; }
