#!/bin/bash
# Smoke test for spec/support/standin/standin.py with the curl CLI.  Documents usage.
#   spec/support/standin/smoke.sh [-v]      (exit status 0 = all checks passed)
# Starts its own stand-in in a temp dir (tied to this shell with --exit-with).
set -u
cd "$(dirname "$0")/../../.." || exit 2
VERBOSE=${1:-}
PY=/usr/bin/python3
DIR=$(mktemp -d)
$PY spec/support/standin/standin.py --dir "$DIR" --exit-with $$ >"$DIR/log" 2>&1 &
SPID=$!
trap 'kill $SPID 2>/dev/null; rm -rf "$DIR"' EXIT
# until COMMAND succeeds, polling every 0.05 s, for at most SECONDS: until SECONDS COMMAND...
until_ok() { local end=$(($(date +%s%N) + ${1%.*}000000000)); shift
  until "$@"; do [ "$(date +%s%N)" -lt $end ] || return 1; sleep 0.05; done; }
until_ok 10 test -f "$DIR/standin.json" || { echo "stand-in did not start:"; cat "$DIR/log"; exit 1; }

# jq-like helper: j EXPR [FILE]   (EXPR is Python over d = the JSON document)
j() { $PY -c 'import json,sys; d=json.load(open(sys.argv[2]) if len(sys.argv)>2 else sys.stdin); v=eval(sys.argv[1]); print(json.dumps(v) if isinstance(v,(dict,list,bool)) or v is None else v)' "$@"; }
INFO=$DIR/standin.json
HP=$(j 'd["http_port"]' "$INFO"); SP=$(j 'd["https_port"]' "$INFO")
WP=$(j 'd["wrong_host_port"]' "$INFO"); EP=$(j 'd["expired_port"]' "$INFO")
V6=$(j 'd["ipv6_port"]' "$INFO"); AUD=$(j 'd["audience"]' "$INFO"); MP=$(j 'd["mtls_port"]' "$INFO")
H=http://127.0.0.1:$HP
FAILS=0 N=0
check() { # check NAME EXPECTED ACTUAL
  N=$((N + 1))
  if [ "$2" == "$3" ]; then [ -n "$VERBOSE" ] && echo "ok   $1"
  else echo "FAIL $1: expected [$2] got [$3]"; FAILS=$((FAILS + 1)); fi
}
ctl() { curl -sS -X POST "$H/_control/$1" -H 'content-type: application/json' -d "${2:-{\}}"; }
stats() { curl -sS "$H/_control/stats" | j "$1"; }
R=$DIR/resp HD=$DIR/hdrs
# req ARGS... -> prints status code; body in $R, headers in $HD
req() { curl -sS -o "$R" -D "$HD" -w '%{http_code}' "$@"; }
hdr() { grep -i "^$1:" "$HD" | head -1 | cut -d' ' -f2- | tr -d '\r'; }
tokjson() { printf '{"client_id":"%s","client_secret":"%s","audience":"%s","grant_type":"client_credentials"}' "$1" "${2:-secret-$1}" "${3:-$AUD}"; }
token() { curl -sS "$H/oauth/token" -H 'content-type: application/json' -d "$(tokjson "$1")" | j 'd["access_token"]'; }

# ---- token endpoint: the three client authentication styles
check "json token" 200 "$(req "$H/oauth/token" -H 'content-type: application/json' -d "$(tokjson alice)")"
check "json token shape" "tok_ Bearer 86400" "$(j 'd["access_token"][:4]+" "+d["token_type"]+" "+str(d["expires_in"])' <"$R")"
check "ratelimit headers" "30" "$(hdr x-ratelimit-limit)"
check "x-request-id" "req-" "$(hdr x-request-id | cut -c1-4)"
check "form token" 200 "$(req "$H/oauth/token" --data-urlencode client_id=bob --data-urlencode client_secret=secret-bob --data-urlencode "audience=$AUD" -d grant_type=client_credentials -d extra=1)"
check "form record" '"form" {"client_id": "bob", "audience": "ducky-api-test", "grant_type": "client_credentials", "extra": "1"}' \
  "$(stats '[d["last_token_request"]["auth_method"], d["last_token_request"]["params"]]' | $PY -c 'import json,sys; a=json.load(sys.stdin); print(json.dumps(a[0]), json.dumps(a[1]))')"
WEIRD='we:ird%id+ x'
BASIC=$($PY -c 'import base64,sys; from urllib.parse import quote_plus as q; i=sys.argv[1]; print(base64.b64encode((q(i)+":"+q("secret-"+i)).encode()).decode())' "$WEIRD")
check "basic token" 200 "$(req "$H/oauth/token" -H "Authorization: Basic $BASIC" --data-urlencode "audience=$AUD" -d grant_type=client_credentials)"
check "basic record" "basic $WEIRD true" "$(stats 'd["last_token_request"]["auth_method"]+" "+d["last_token_request"]["client_id"]+" "+str(d["last_token_request"]["authorization"]).lower()')"
check "exchanges" '3 1' "$(stats 'str(d["exchanges"])+" "+str(d["exchanges_by_client"]["bob"])')"

# ---- token endpoint: errors, in Auth0's order
check "bad json" "400 invalid_request" "$(req "$H/oauth/token" -H 'content-type: application/json' -d '{nope') $(j 'd["error"]' <"$R")"
check "bad ctype" "400 invalid_request" "$(req "$H/oauth/token" -H 'content-type: text/plain' -d 'x') $(j 'd["error"]' <"$R")"
check "bad grant" "400 unsupported_grant_type" "$(req "$H/oauth/token" -d client_id=a -d client_secret=secret-a -d grant_type=password) $(j 'd["error"]' <"$R")"
check "no secret" "401 access_denied Unauthorized" "$(req "$H/oauth/token" -d client_id=a -d grant_type=client_credentials) $(j 'd["error"]+" "+d["error_description"]' <"$R")"
check "bad secret" "401 access_denied" "$(req "$H/oauth/token" -H 'content-type: application/json' -d "$(tokjson alice wrong)") $(j 'd["error"]' <"$R")"
check "bad audience" "403 Service not enabled within domain: other" "$(req "$H/oauth/token" -H 'content-type: application/json' -d "$(tokjson alice secret-alice other)") $(j 'd["error_description"]' <"$R")"
ctl ban '{"client_id":"carol"}' >/dev/null
check "banned" "401 invalid_client Client is banned" "$(req "$H/oauth/token" -H 'content-type: application/json' -d "$(tokjson carol)") $(j 'd["error"]+" "+d["error_description"]' <"$R")"
ctl unban '{"client_id":"carol"}' >/dev/null
check "unbanned" 200 "$(req "$H/oauth/token" -H 'content-type: application/json' -d "$(tokjson carol)")"

# ---- API
check "ping" '200 pong' "$(req "$H/v3/ping") $(j 'd["message"]' <"$R")"
check "ping no auth" false "$(stats 'd["last_ping_had_auth"]')"
curl -s -H 'Authorization: Bearer x' "$H/v3/ping" >/dev/null
check "ping had auth" true "$(stats 'd["last_ping_had_auth"]')"
TOK=$(token alice)
check "protected no token" '401 invalid_token' "$(req "$H/v3/ping/protected") $(j 'd["error"]' <"$R")"
check "www-authenticate" 'Bearer error="invalid_token"' "$(hdr www-authenticate)"
check "protected" '200 true' "$(req -H "Authorization: Bearer $TOK" "$H/v3/ping/protected") $(j 'd["ready"]' <"$R")"
check "last_api_auth" '{"client_id": "alice", "authorization": true, "path": "/v3/ping/protected", "client_cert": null}' "$(stats 'd["last_api_auth"]')"
check "echo post" '200 POST /v3/echo/x/y a=1&b=%20&a=2 {"a": ["1", "2"], "b": [" "]} {"k": [1, 2]} alice yes' \
  "$(req -H "Authorization: Bearer $TOK" -H 'X-Foo: Yes' -H 'content-type: application/json' -d '{"k":[1,2]}' "$H/v3/echo/x/y?a=1&b=%20&a=2") $(j '" ".join([d["method"], d["path"], d["query"], json.dumps(d["args"]), json.dumps(d["json"]), d["client_id"], d["headers"]["x-foo"].lower()])' <"$R")"
check "echo chunked request" '200 hello chunked' "$(req -H "Authorization: Bearer $TOK" -H 'Transfer-Encoding: chunked' --data-binary 'hello chunked' "$H/v3/echo") $(j 'd["body"]' <"$R")"
for m in PUT PATCH DELETE OPTIONS; do
  check "echo $m" "200 $m" "$(req -X $m -H "Authorization: Bearer $TOK" "$H/v3/echo") $(j 'd["method"]' <"$R")"
done
check "echo HEAD" "200 0 yes" "$(curl -sS -I -o /dev/null -D "$HD" -w '%{http_code} %{size_download}' -H "Authorization: Bearer $TOK" "$H/v3/echo") $([ "$(hdr content-length)" -gt 0 ] && echo yes)"
check "echo needs token" 401 "$(req "$H/v3/echo")"
check "echo public" '200 null' "$(req "$H/v3/echo?public=1") $(j 'd["client_id"]' <"$R")"
check "status 503" '503 {"status": 503} 7' "$(req -H "Authorization: Bearer $TOK" "$H/v3/status/503?retry_after=7") $(j 'd' <"$R") $(hdr retry-after)"
check "status public" 429 "$(req "$H/v3/status/429?public=1")"
check "status needs token" 401 "$(req "$H/v3/status/429")"
check "headers" '200 2 Yes req-123' "$(req "$H/v3/headers") $(grep -ci '^set-cookie:' "$HD") $(hdr X-Mixed-Case) $(hdr x-request-id)"
check "redirect" '302 http://example.invalid/x' "$(req "$H/v3/redirect?to=http://example.invalid/x") $(hdr location)"
check "404" 404 "$(req "$H/v3/nope")"

# ---- footprints (standin_api.py)
check "footprints need a token" 401 "$(req "$H/v3/footprints")"
check "footprints 2026" '200 8 8 2026' "$(req -H "Authorization: Bearer $TOK" "$H/v3/footprints?year=2026&source=x") $(j 'str(d["count"])+" "+str(d["total"])+" "+" ".join(sorted(set(str(i["year"]) for i in d["footprints"])))' <"$R")"
check "footprints site" '200 fp-oslo-2024 fp-oslo-2025 fp-oslo-2026' "$(req -H "Authorization: Bearer $TOK" "$H/v3/footprints?site=Oslo") $(j '" ".join(i["id"] for i in d["footprints"])' <"$R")"
check "footprints limit" '200 2 24' "$(req -H "Authorization: Bearer $TOK" "$H/v3/footprints?limit=2") $(j 'str(d["count"])+" "+str(d["total"])' <"$R")"
check "footprints bad year" '400 invalid_request' "$(req -H "Authorization: Bearer $TOK" "$H/v3/footprints?year=twenty") $(j 'd["error"]' <"$R")"
check "footprint create" '201 fp-1 kiel true /v3/footprints/fp-1' "$(req -H "Authorization: Bearer $TOK" -H 'content-type: application/json' -d '{"site":"kiel","year":2026}' "$H/v3/footprints") $(j 'd["id"]+" "+d["site"]+" "+str(d["created"]).lower()' <"$R") $(hdr location)"
check "footprint created listed" '200 fp-1' "$(req -H "Authorization: Bearer $TOK" "$H/v3/footprints?site=kiel&year=2026") $(j '" ".join(i["id"] for i in d["footprints"])' <"$R")"
check "footprint by id" '200 kiel' "$(req -H "Authorization: Bearer $TOK" "$H/v3/footprints/fp-1") $(j 'd["site"]' <"$R")"
check "footprint unknown id" 404 "$(req -H "Authorization: Bearer $TOK" "$H/v3/footprints/fp-999")"
check "footprint not an object" 400 "$(req -H "Authorization: Bearer $TOK" -H 'content-type: application/json' -d '[1]' "$H/v3/footprints")"
check "footprints DELETE" '405 GET, HEAD, POST' "$(req -X DELETE -H "Authorization: Bearer $TOK" "$H/v3/footprints") $(hdr allow)"

# ---- controls: revoke, config
ctl revoke '{"client_id":"alice"}' >/dev/null
check "revoked" '401 Token revoked' "$(req -H "Authorization: Bearer $TOK" "$H/v3/ping/protected") $(j 'd["error_description"]' <"$R")"
ctl config '{"client_id":"dave","expires_in":"3600"}' >/dev/null
check "config verbatim" '"3600"' "$(curl -sS "$H/oauth/token" -H 'content-type: application/json' -d "$(tokjson dave)" | j 'json.dumps(d["expires_in"])')"
ctl config '{"client_id":"dave","expires_in":1}' >/dev/null
TOK=$(token dave)
expired() { [ "$(req -H "Authorization: Bearer $TOK" "$H/v3/ping/protected")" = 401 ]; }
until_ok 5 expired
check "expired token" '401 Token expired' "$(req -H "Authorization: Bearer $TOK" "$H/v3/ping/protected") $(j 'd["error_description"]' <"$R")"

# ---- keep-alive: two requests, one connection
ctl reset >/dev/null
curl -s "$H/v3/ping" "$H/v3/ping" >/dev/null
check "keep-alive" '1 2' "$(stats 'str(d["connections"])+" "+str(d["requests"])')"

# ---- faults
TOK=$(token erin)
ctl fault '{"path":"/oauth/token","status":503,"body":"{\"error\":\"temporarily_unavailable\"}","headers":{"Retry-After":"1"},"times":2}' >/dev/null
check "fault replace 1" '503 temporarily_unavailable 1' "$(req "$H/oauth/token" -H 'content-type: application/json' -d "$(tokjson erin)") $(j 'd["error"]' <"$R") $(hdr retry-after)"
check "fault replace 2" 503 "$(req "$H/oauth/token" -H 'content-type: application/json' -d "$(tokjson erin)")"
check "fault consumed" 200 "$(req "$H/oauth/token" -H 'content-type: application/json' -d "$(tokjson erin)")"
ctl fault '{"path":"/oauth/token","client_id":"frank","status":429}' >/dev/null
check "fault filter other" 200 "$(req "$H/oauth/token" -H 'content-type: application/json' -d "$(tokjson erin)")"
check "fault filter match" 429 "$(req "$H/oauth/token" -H 'content-type: application/json' -d "$(tokjson frank)")"
ctl fault '{"path":"/v3/echo","client_id":"erin","status":500}' >/dev/null
check "api fault filter" 200 "$(req "$H/v3/echo?public=1")"
check "api fault by token" 500 "$(req -H "Authorization: Bearer $TOK" "$H/v3/echo")"
ctl fault '{"path":"/oauth/token","headers":{"X-Extra":"1"},"content_type":"text/plain"}' >/dev/null
check "modifier headers" '200 1 text/plain tok_' "$(req "$H/oauth/token" -H 'content-type: application/json' -d "$(tokjson erin)") $(hdr x-extra) $(hdr content-type) $(j 'd["access_token"][:4]' <"$R")"
ctl fault '{"path":"/v3/ping","delay":1.5}' >/dev/null
curl -sS --max-time 0.5 "$H/v3/ping" >/dev/null 2>&1; check "delay -> timeout" 28 $?
ctl fault '{"path":"/v3/ping","body_delay":1}' >/dev/null
S=$(date +%s%N); OUT=$(curl -sS "$H/v3/ping"); E=$((($(date +%s%N) - S) / 1000000))
check "body_delay" '{"message": "pong"} slow' "$OUT $([ $E -ge 900 ] && echo slow || echo "fast:$E")"
BEFORE=$(stats 'd["exchanges"]')
ctl fault '{"path":"/oauth/token","drop":"before_headers"}' >/dev/null
curl -sS "$H/oauth/token" -H 'content-type: application/json' -d "$(tokjson erin)" >/dev/null 2>&1; check "drop before_headers" 52 $?
ctl fault '{"path":"/oauth/token","drop":"mid_body"}' >/dev/null
curl -sS "$H/oauth/token" -H 'content-type: application/json' -d "$(tokjson erin)" >/dev/null 2>&1; check "drop mid_body" 18 $?
check "drops are not exchanges" "$BEFORE" "$(stats 'd["exchanges"]')"
ctl fault '{"path":"/v3/ping","huge":100000}' >/dev/null
check "huge" '200 100000 99986' "$(req "$H/v3/ping") $(wc -c <"$R") $(j 'len(d["padding"])' <"$R")"
ctl fault '{"path":"/v3/ping","gzip":true}' >/dev/null
check "gzip" '200 gzip pong' "$(req --compressed "$H/v3/ping") $(hdr content-encoding) $(j 'd["message"]' <"$R")"
ctl fault '{"path":"/v3/ping","gzip":true}' >/dev/null
check "gzip raw" "$(printf '\x1f\x8b' | od -An -tx1)" "$(curl -sS "$H/v3/ping" | head -c2 | od -An -tx1)"
ctl fault '{"path":"/oauth/token","chunked":true}' >/dev/null
check "chunked" '200 chunked tok_' "$(req "$H/oauth/token" -H 'content-type: application/json' -d "$(tokjson erin)") $(hdr transfer-encoding) $(j 'd["access_token"][:4]' <"$R")"
ctl fault '{"path":"/v3/ping","chunked":true,"body_delay":0.3,"status":200,"body":"abcdefghij"}' >/dev/null
check "chunked replace" '200 abcdefghij' "$(req "$H/v3/ping") $(cat "$R")"
ctl fault '{"path":"/v3/ping","http10":true}' >/dev/null
check "http10" '200 HTTP/1.0 200 OK pong' "$(req "$H/v3/ping") $(head -1 "$HD" | tr -d '\r') $(j 'd["message"]' <"$R")"
check "http10 no length" 0 "$(grep -ci '^content-length' "$HD")"
check "bad fault" 400 "$(curl -s -o /dev/null -w '%{http_code}' -X POST "$H/_control/fault" -d '{"path":"/x","dorp":"mid_body"}')"
ctl fault '{"path":"/v3/ping","status":500}' >/dev/null
check "faults_pending" 1 "$(stats 'd["faults_pending"]')"
ctl reset >/dev/null
check "reset" '0 0 0 null 200' "$(stats '" ".join(str(x) for x in [d["exchanges"], d["requests"], d["faults_pending"], json.dumps(d["last_token_request"])])') $(req "$H/v3/ping")"

# ---- time-based faults: outage and slow; token requests counted per client
ctl reset >/dev/null
check "outage" '{"ok": true, "active": 1}' "$(ctl outage '{"path":"/oauth/token","status":503,"seconds":30,"client_id":"olga","headers":{"Retry-After":"3"}}')"
check "outage answers" '503 temporarily_unavailable 3' "$(req "$H/oauth/token" -H 'content-type: application/json' -d "$(tokjson olga)") $(j 'd["error"]' <"$R") $(hdr retry-after)"
check "outage spares others" 200 "$(req "$H/oauth/token" -H 'content-type: application/json' -d "$(tokjson petra)")"
ctl fault '{"path":"/oauth/token","client_id":"olga","status":500}' >/dev/null
check "outage before faults" '503 1' "$(req "$H/oauth/token" -H 'content-type: application/json' -d "$(tokjson olga)") $(stats 'd["faults_pending"]')"
check "outage listed" '/oauth/token 503 olga yes' "$(stats '" ".join(str(x) for x in [d["outages"][0]["path"], d["outages"][0]["status"], d["outages"][0]["client_id"], "yes" if 0 < d["outages"][0]["seconds_left"] <= 30 else "no"])')"
ctl outage '{"path":"/oauth/token","status":503,"seconds":0,"client_id":"olga"}' >/dev/null
check "outage ended" '500 200 []' "$(req "$H/oauth/token" -H 'content-type: application/json' -d "$(tokjson olga)") $(req "$H/oauth/token" -H 'content-type: application/json' -d "$(tokjson olga)") $(stats 'd["outages"]')"
check "token requests by client" '{"received": 4, "succeeded": 1, "failed": 3} {"received": 1, "succeeded": 1, "failed": 0}' "$(stats 'json.dumps(d["token_requests_by_client"]["olga"])+" "+json.dumps(d["token_requests_by_client"]["petra"])')"
ctl outage '{"path":"/v3/ping","status":"drop","seconds":30}' >/dev/null
curl -sS "$H/v3/ping" >/dev/null 2>&1; check "outage drop" 52 $?
ctl outage '{"path":"/v3/ping","status":"drop","seconds":0}' >/dev/null
ctl slow '{"path":"/v3/ping","delay":0.5,"seconds":30}' >/dev/null
S=$(date +%s%N); OUT=$(curl -sS "$H/v3/ping"); E=$((($(date +%s%N) - S) / 1000000))
check "slow" '{"message": "pong"} slow' "$OUT $([ $E -ge 450 ] && echo slow || echo "fast:$E")"
check "bad outage" '400 status must be an integer 100..999 or "drop"' "$(curl -s -o "$R" -w '%{http_code}' -X POST "$H/_control/outage" -d '{"path":"/x","seconds":1,"status":"down"}') $(j 'd["error"]' <"$R")"
check "bad slow" '400 unknown slow fields: status' "$(curl -s -o "$R" -w '%{http_code}' -X POST "$H/_control/slow" -d '{"path":"/x","seconds":1,"delay":1,"status":503}') $(j 'd["error"]' <"$R")"
ctl reset >/dev/null
check "reset ends outages" '[] {}' "$(stats 'json.dumps(d["outages"])+" "+json.dumps(d["token_requests_by_client"])')"

# ---- TLS and IPv6
CA=$DIR/ca.pem
check "https ok" 200 "$(curl -sS --cacert "$CA" -o /dev/null -w '%{http_code}' "https://localhost:$SP/v3/ping")"
curl -sS --cacert "$CA" -o /dev/null "https://127.0.0.1:$SP/v3/ping" 2>/dev/null; check "https by IP" 0 $?
curl -sS --cacert "$CA" "https://localhost:$WP/v3/ping" >/dev/null 2>"$DIR/err"; check "wrong host" 60 $?
check "wrong host msg" 1 "$(grep -c 'subject name' "$DIR/err")"
curl -sS --cacert "$CA" "https://localhost:$EP/v3/ping" >/dev/null 2>"$DIR/err"; check "expired" 60 $?
check "expired msg" 1 "$(grep -c 'expired' "$DIR/err")"
curl -sS --cacert "$DIR/other_ca.pem" "https://localhost:$SP/v3/ping" >/dev/null 2>"$DIR/err"; check "other ca" 60 $?
check "https still ok" 200 "$(curl -sS --cacert "$CA" -o /dev/null -w '%{http_code}' "https://localhost:$SP/v3/ping")"
curl -sS --cacert "$CA" "https://localhost:$SP/v3/ping" "https://localhost:$SP/v3/ping" >/dev/null
if [ "$V6" != null ]; then check "ipv6" pong "$(curl -sS "http://[::1]:$V6/v3/ping" | j 'd["message"]')"; fi

# ---- private_key_jwt: assertions signed with the openssl CLI (independent of the
# stand-in's verifier) and with make_jwt.py (ES256 and deliberate mistakes)
J=$DIR/jwt URN=urn:ietf:params:oauth:client-assertion-type:jwt-bearer
b64u() { base64 -w0 | tr '+/' '-_' | tr -d '='; }
# osl_jwt CLIENT ALG AUD EXP_IN JTI [openssl dgst options]: an RSA assertion signed with jwt/rsa.key
osl_jwt() {
  local cid=$1 alg=$2 aud=$3 now; now=$(date +%s)
  local h c; h=$(printf '{"alg":"%s","typ":"JWT","kid":"rsa-1"}' "$alg" | b64u)
  c=$(printf '{"iss":"%s","sub":"%s","aud":"%s","iat":%d,"exp":%d,"jti":"%s"}' "$cid" "$cid" "$3" "$now" $((now + $4)) "$5" | b64u)
  shift 5
  printf '%s.%s.%s' "$h" "$c" "$(printf '%s.%s' "$h" "$c" | openssl dgst "-sha${alg:2}" -sign "$J/rsa.key" "$@" | b64u)"
}
mk_jwt() { $PY spec/support/standin/make_jwt.py "$@"; }
# [JURL=token URL] jtok CLIENT ASSERTION [curl args] -> status of a private_key_jwt token request
jtok() { req "${JURL:-$H/oauth/token}" --data-urlencode grant_type=client_credentials --data-urlencode "client_id=$1" --data-urlencode "client_assertion_type=$URN" --data-urlencode "client_assertion=$2" --data-urlencode "audience=$AUD" "${@:3}"; }
err() { j 'd["error"]+": "+d["error_description"]' <"$R"; }
ctl reset >/dev/null
check "jwt RS256 (openssl)" 200 "$(jtok jwt-rs256 "$(osl_jwt jwt-rs256 RS256 "$H/" 60 "$(openssl rand -hex 16)")")"
check "jwt record" 'private_key_jwt RS256 JWT rsa-1 jwt-rs256 jwt-rs256 60 32 True None' \
  "$(stats '" ".join(str(x) for x in [d["last_token_request"]["auth_method"], d["last_assertion"]["header"]["alg"], d["last_assertion"]["header"]["typ"], d["last_assertion"]["header"]["kid"], d["last_assertion"]["claims"]["iss"], d["last_assertion"]["client_id"], d["last_assertion"]["claims"]["exp"] - d["last_assertion"]["claims"]["iat"], len(d["last_assertion"]["claims"]["jti"]), d["last_assertion"]["valid"], d["last_assertion"]["error"]])')"
check "jwt record has no signature" 0 "$(stats 'json.dumps(d["last_assertion"])' | grep -cF -e "$(tail -c 20 <<<"$(osl_jwt jwt-rs256 RS256 "$H/" 60 x)")")"
check "jwt RS384 (openssl)" 200 "$(jtok jwt-rs384 "$(osl_jwt jwt-rs384 RS384 "$H/" 60 "$(openssl rand -hex 16)")")"
check "jwt PS256 salt = hash length (openssl)" 200 "$(jtok jwt-ps256 "$(osl_jwt jwt-ps256 PS256 "$H/" 60 "$(openssl rand -hex 16)" -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:digest)")"
check "jwt PS256 openssl's default salt" "401 invalid_client: Invalid signature for client_assertion" \
  "$(jtok jwt-ps256 "$(osl_jwt jwt-ps256 PS256 "$H/" 60 "$(openssl rand -hex 16)" -sigopt rsa_padding_mode:pss)") $(err)"
check "jwt ES256" 200 "$(jtok jwt-es256 "$(mk_jwt --key "$J/ec.key" --client-id jwt-es256 --aud "$H/" --alg ES256 --kid ec-1)")"
check "jwt ES256 DER signature" 401 "$(jtok jwt-es256 "$(mk_jwt --key "$J/ec.key" --client-id jwt-es256 --aud "$H/" --alg ES256 --ecdsa-der)")"
check "jwt alg not pinned" "401 invalid_client: alg RS384 does not match the credential of client jwt-rs256" \
  "$(jtok jwt-rs256 "$(osl_jwt jwt-rs256 RS384 "$H/" 60 "$(openssl rand -hex 16)")") $(err)"
check "jwt wrong key" "401 invalid_client: Invalid signature for client_assertion" \
  "$(jtok jwt-rs256 "$(mk_jwt --key "$J/rsa_other.key" --client-id jwt-rs256 --aud "$H/")") $(err)"
check "jwt wrong kid" 401 "$(jtok jwt-rs256 "$(mk_jwt --key "$J/rsa.key" --client-id jwt-rs256 --aud "$H/" --kid rsa-2)")"
check "jwt expired" "401 invalid_client: client_assertion has expired" \
  "$(jtok jwt-rs256 "$(mk_jwt --key "$J/rsa.key" --client-id jwt-rs256 --aud "$H/" --iat-in -600 --exp-in -540)") $(err)"
check "jwt exp - iat > 300" 401 "$(jtok jwt-rs256 "$(mk_jwt --key "$J/rsa.key" --client-id jwt-rs256 --aud "$H/" --exp-in 301)")"
check "jwt iat in the future" 401 "$(jtok jwt-rs256 "$(mk_jwt --key "$J/rsa.key" --client-id jwt-rs256 --aud "$H/" --iat-in 60)")"
check "jwt sub != client_id" 401 "$(jtok jwt-rs256 "$(mk_jwt --key "$J/rsa.key" --client-id jwt-rs256 --aud "$H/" --claims '{"sub":"jwt-rs384"}')")"
check "jwt no jti" 401 "$(jtok jwt-rs256 "$(mk_jwt --key "$J/rsa.key" --client-id jwt-rs256 --aud "$H/" --claims '{"jti":null}')")"
check "jwt alg none" 401 "$(jtok jwt-rs256 "$(mk_jwt --key "$J/rsa.key" --client-id jwt-rs256 --aud "$H/" --header '{"alg":"none"}' --sign-alg RS256 | cut -d. -f1-2)".)"
check "jwt with client_secret too" 400 "$(jtok jwt-rs256 "$(mk_jwt --key "$J/rsa.key" --client-id jwt-rs256 --aud "$H/")" -d client_secret=secret-jwt-rs256)"
A=$(osl_jwt jwt-rs256 RS256 "$H/" 60 "replay-$$")
check "jwt once" 200 "$(jtok jwt-rs256 "$A")"
check "jwt replayed" "401 invalid_client: jti claim has already been used (client_assertion replayed)" "$(jtok jwt-rs256 "$A") $(err)"
check "jwt exchanges" '{"jwt-rs256": 2, "jwt-rs384": 1, "jwt-ps256": 1, "jwt-es256": 1}' "$(stats 'd["exchanges_by_client"]')"
check "jwt aud = token URL refused by default" 401 "$(jtok jwt-rs256 "$(osl_jwt jwt-rs256 RS256 "$H/oauth/token" 60 "$(openssl rand -hex 16)")")"
check "jwt_client audiences" '{"ok": true}' "$(ctl jwt_client "{\"client_id\":\"jwt-rs256\",\"audiences\":[\"$H/oauth/token\"]}")"
check "jwt aud = token URL configured" 200 "$(jtok jwt-rs256 "$(osl_jwt jwt-rs256 RS256 "$H/oauth/token" 60 "$(openssl rand -hex 16)")")"
check "jwt origin no longer accepted" 401 "$(jtok jwt-rs256 "$(osl_jwt jwt-rs256 RS256 "$H/" 60 "$(openssl rand -hex 16)")")"
PEM=$($PY -c 'import json,sys; print(json.dumps(open(sys.argv[1]).read()))' "$J/ec.pub")
check "jwt_client public_key" '{"ok": true}' "$(ctl jwt_client "{\"client_id\":\"gina\",\"public_key\":$PEM}")"
check "jwt registered PEM" 200 "$(jtok gina "$(mk_jwt --key "$J/ec.key" --client-id gina --aud "$H/" --alg ES256 --kid any)")"
check "jwt_client bad key" 400 "$(curl -s -o /dev/null -w '%{http_code}' -X POST "$H/_control/jwt_client" -d '{"client_id":"gina","key":"nope"}')"
ctl reset >/dev/null
check "reset forgets gina" 401 "$(jtok gina "$(mk_jwt --key "$J/ec.key" --client-id gina --aud "$H/" --alg ES256)")"
check "reset restores audiences" 200 "$(jtok jwt-rs256 "$(osl_jwt jwt-rs256 RS256 "$H/" 60 "$(openssl rand -hex 16)")")"
check "jwt over https: aud is the https origin" 200 "$(JURL=https://localhost:$SP/oauth/token jtok jwt-rs256 "$(mk_jwt --key "$J/rsa.key" --client-id jwt-rs256 --aud "https://localhost:$SP/")" --cacert "$DIR/ca.pem")"

# ---- tls_client_auth on mtls_port
M=https://localhost:$MP MT=$DIR/mtls
mtok() { req --cacert "$DIR/ca.pem" "$@" "$M/oauth/token" -d grant_type=client_credentials --data-urlencode "audience=$AUD"; }
CERT=(--cert "$MT/mtls-client.pem" --key "$MT/mtls-client.key")
check "mtls right certificate" 200 "$(mtok "${CERT[@]}" -d client_id=mtls-client)"
check "mtls record" 'tls_client_auth mtls-client false null' \
  "$(stats '" ".join(str(x) for x in [d["last_token_request"]["auth_method"], d["last_token_request"]["client_cert"], str(d["last_token_request"]["authorization"]).lower(), json.dumps(d["last_token_request"]["params"].get("client_secret"))])')"
check "mtls no certificate" "401 invalid_client: tls_client_auth: no client certificate presented" "$(mtok -d client_id=mtls-client) $(err)"
check "mtls another CA" "401 invalid_client" "$(mtok --cert "$MT/mtls-client.other_ca.pem" --key "$MT/mtls-client.other_ca.key" -d client_id=mtls-client) $(j 'd["error"]' <"$R")"
check "mtls another client's certificate" 401 "$(mtok "${CERT[@]}" -d client_id=mtls-password)"
check "mtls encrypted key" 200 "$(mtok --cert "$MT/mtls-password.pem" --key "$MT/mtls-password.key" --pass "$(j 'd["mtls_clients"]["mtls-password"]["key_password"]' "$INFO")" -d client_id=mtls-password)"
check "mtls secret still works" 200 "$(mtok -d client_id=bob -d client_secret=secret-bob)"
check "mtls no secret off mtls_port" 401 "$(req "$H/oauth/token" -d client_id=mtls-client -d grant_type=client_credentials --data-urlencode "audience=$AUD")"
check "mtls_client control" "$MT/hana.pem $MT/hana.key" "$(ctl mtls_client '{"client_id":"hana","bound":true}' | j 'd["cert_file"]+" "+d["key_file"]')"
HANA=(--cert "$MT/hana.pem" --key "$MT/hana.key")
TOK=$(curl -sS --cacert "$DIR/ca.pem" "${HANA[@]}" "$M/oauth/token" -d grant_type=client_credentials -d client_id=hana --data-urlencode "audience=$AUD" | j 'd["access_token"]')
check "mtls bound token with its certificate" '200 hana' "$(req --cacert "$DIR/ca.pem" "${HANA[@]}" -H "Authorization: Bearer $TOK" "$M/v3/echo") $(j 'd["client_cert"]' <"$R")"
check "mtls API client_cert" hana "$(stats 'd["last_api_auth"]["client_cert"]')"
check "mtls bound token without it" "401 invalid_token" "$(req --cacert "$DIR/ca.pem" -H "Authorization: Bearer $TOK" "$M/v3/ping/protected") $(j 'd["error"]' <"$R")"
check "mtls bound token with another" 401 "$(req --cacert "$DIR/ca.pem" "${CERT[@]}" -H "Authorization: Bearer $TOK" "$M/v3/ping/protected")"
check "mtls_client other CA, password" "$MT/ida.other_ca.pem yes" "$(ctl mtls_client '{"client_id":"ida","ca":"other_ca","password":"pw"}' | j 'd["cert_file"]+" "+("yes" if d["key_password"]=="pw" else "no")')"
check "mtls_client bad id" 400 "$(curl -s -o /dev/null -w '%{http_code}' -X POST "$H/_control/mtls_client" -d '{"client_id":"../x"}')"
check "mtls ping without certificate" 200 "$(req --cacert "$DIR/ca.pem" "$M/v3/ping")"

# ---- --exit-with and shutdown
gone() { ! kill -0 "$1" 2>/dev/null; }
D2=$(mktemp -d); sleep 600 & SL=$!
$PY spec/support/standin/standin.py --dir "$D2" --exit-with $SL >/dev/null 2>&1 & P2=$!
until_ok 10 test -f "$D2/standin.json"
kill $SL; wait $SL 2>/dev/null
until_ok 5 gone $P2; check "exit-with" 0 $?
check "json removed" no "$([ -f "$D2/standin.json" ] && echo yes || echo no)"
rm -rf "$D2"
check "shutdown" true "$(ctl shutdown | j 'd["ok"]')"
until_ok 5 gone $SPID; check "shut down" 0 $?

echo "$((N - FAILS))/$N checks passed"
[ $FAILS -eq 0 ]
