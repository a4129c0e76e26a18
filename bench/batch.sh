#!/bin/bash
# client:batch figures (make -C bench batch): N requests (500) to a route that
# answers after 50 ms, at concurrency 1, 8 and 32, over HTTP/1.1 and HTTP/2
# (both over TLS), against a local nginx the script starts and stops.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
N=${N:-500}
export LUA_CPATH="$ROOT/build/?.so;;"
WORK=$(mktemp -d /tmp/ducky-batch.XXXXXX)
NGINX_PID=
trap '[ -n "$NGINX_PID" ] && kill "$NGINX_PID" 2>/dev/null; rm -rf "$WORK"' EXIT
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
	-subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
	-keyout "$WORK/key.pem" -out "$WORK/cert.pem" 2>/dev/null
PORT=$(lua5.4 -e 'local s = assert(require("socket").bind("127.0.0.1", 0))
	local _, port = s:getsockname(); print(port); s:close()')
cat >"$WORK/nginx.conf" <<CONF
load_module /usr/lib/nginx/modules/ndk_http_module.so;
load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;
daemon off;
worker_processes 1;
error_log $WORK/error.log warn;
pid $WORK/nginx.pid;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $WORK;
  http2_max_concurrent_streams 256;
  server {
    listen 127.0.0.1:$PORT ssl http2;
    ssl_certificate $WORK/cert.pem;
    ssl_certificate_key $WORK/key.pem;
    keepalive_requests 1000000;
    default_type application/json;
    location = /oauth/token {
      return 200 '{"access_token":"bench-token","token_type":"Bearer","expires_in":86400}';
    }
    location = /v3/slow {
      content_by_lua_block { ngx.sleep(0.05) ngx.say('{"ok":true}') }
    }
  }
}
CONF
nginx -p "$WORK" -c "$WORK/nginx.conf" &
NGINX_PID=$!
for _ in $(seq 50); do
	curl -sfk -o /dev/null "https://127.0.0.1:$PORT/v3/slow" && break
	sleep 0.1
done
rate() { lua5.4 "$HERE/batch.lua" "https://localhost:$PORT/v3" "https://localhost:$PORT/oauth/token" \
	"$WORK/cert.pem" "$1" "$2" "$N" | sed -n 's/.*: \([0-9.]*\) requests\/s$/\1/p'; }
echo "| protocol | concurrency | requests/s | speed-up over concurrency 1 | of the ideal |"
echo "|---|---:|---:|---:|---:|"
for version in 1.1 2; do
	base=$(rate "$version" 1)
	for c in 1 8 32; do
		r=$([ "$c" = 1 ] && echo "$base" || rate "$version" "$c")
		ideal=$c
		lua5.4 -e "local r, b, c = $r, $base, $ideal
			print(('| HTTP/%s | %d | %.1f | %.2fx | %.2f |'):format('$version', c, r, r / b, r / b / c))"
	done
done
