#!/usr/bin/python3
"""Local stand-in for the Auth0 token endpoint and the Ducky API (tests only).

Usage:
  /usr/bin/python3 spec/support/standin/standin.py --dir DIR [--audience ducky-api-test]
      [--lifetime 86400] [--exit-with PID] [--remove-dir] [--verbose]

Python standard library, plus python3-cryptography to verify private_key_jwt
signatures (standin_auth.py; without it everything else works); keys and
certificates are made with the `openssl` CLI.  On start it writes
DIR/{ca.pem,other_ca.pem,...}, DIR/jwt/ and DIR/mtls/ (below), listens on
127.0.0.1 (plain HTTP, HTTPS good cert, HTTPS wrong-host cert, HTTPS expired
cert, HTTPS asking for a client certificate: mtls_port) and on [::1] (plain
HTTP, if available), then writes DIR/standin.json atomically and prints
"ready".  All listeners share one handler and one in-memory state (one lock).

Counting rules
  * "requests"/"requests_by_path" count every request except /_control/*.
  * "connections" counts connections that carried at least one non-control
    request since the last reset (a keep-alive connection opened before a reset
    and reused after it is counted once more).  "connections_total" counts every
    accepted TCP connection (TLS handshake failures included), never reset.
  * "exchanges" counts normal successful (200) /oauth/token answers, also when a
    modifier fault (below) is applied, except when that fault drops the
    connection (drop=...): a dropped answer is not an exchange.
  * "token_requests_by_client" = {client_id: {received, succeeded, failed}}
    counts /oauth/token requests by the client they name (as fault filters do;
    "(none)" when they name none): received when one arrives, then succeeded
    (a token issued and sent whole: an exchange) or failed (every other answer:
    an error, an outage, a replacement fault, a dropped connection).

Fault injection: POST /_control/fault {path, times=1, client_id, status, headers,
body, content_type, delay, body_delay, drop, huge, gzip, chunked, http10}
  * Faults queue per exact request path (no query).  A request consumes the
    first queued fault for its path whose client_id filter is absent or equal
    to the request's client: for /oauth/token the client_id the request
    authenticates as (body or Basic header); for other routes the client that
    owns the presented bearer token (even if expired/revoked).  times -= 1,
    removed at 0.  Unknown fault fields are rejected with 400.
  * REPLACEMENT fault: has `status`, `body` or `huge`.  The route does not run;
    the answer is status (default 200), body (default empty; `huge`=N gives a
    JSON document {"padding":"xxx..."} of exactly N bytes (N >= 14); a non-string
    body is JSON-encoded), Content-Type `content_type` (default
    application/json, omitted when the body is empty), plus `headers`.
  * MODIFIER fault: none of those three.  The route produces its NORMAL answer
    (a token is issued, etc.), then `headers` are merged in (override),
    `content_type` replaces Content-Type.
  * Applied to either kind, in this order: `delay` (sleep before doing
    anything, before the route runs), `gzip` (Content-Encoding: gzip, needs a
    non-empty body), `http10` ("HTTP/1.0" status line, no Content-Length,
    connection closed after the body; wins over `chunked`), `chunked`
    (Transfer-Encoding: chunked, 3 chunks), `body_delay` (headers + first half
    of the body, sleep, rest), `drop`: "before_headers" (close without any
    answer; the route does not run), "mid_upload" (read the request's
    headers and half of its Content-Length body, count the request, then
    close while the client is still sending: the route does not run; on API
    paths a client_id filter matches the bearer token's owner, on
    /oauth/token only faults without one match) or "mid_body" (headers with the full
    framing and the first half of the body, then close).
  * `headers` values may be strings or lists of strings (repeated header).
Every answer carries x-request-id: req-<counter> unless the route/fault sets one.

Time-based faults: POST /_control/outage {path, status, seconds, client_id,
delay, headers, body} and POST /_control/slow {path, delay, seconds, client_id}
  * For `seconds` from now (0 ends it early), every request to `path` (and, with
    client_id, naming that client as fault filters do) is answered by the
    outage: `status` (an integer: that status with `headers` and `body`,
    default an OAuth {"error":"temporarily_unavailable"} JSON body) or "drop"
    (the connection closed before any answer); or, for slow, delayed by `delay`
    seconds (0 < delay <= 60) and then answered as usual (queued faults still
    apply).  An outage's own `delay` delays its answer the same way.
  * They come before the queued faults, which wait (unconsumed) meanwhile.  A
    new outage (or slow period) for the same path and client_id replaces the
    one before; reset ends them all.  stats.outages lists the active ones with
    their seconds_left.  Requests they answer are counted as any request.

Controls (JSON in/out, no auth): GET|POST /_control/stats, reset, fault,
outage and slow (above), config {client_id, expires_in} (expires_in absent:
drop the override),
revoke {client_id} -> {"ok":true,"revoked":N}, ban/unban {client_id}, shutdown,
jwt_client and mtls_client (Client authentication, below).
stats.last_token_request = {content_type (raw header or null), authorization
(bool), authorization_value (raw header or null), body (raw, latin-1),
client_id, params (decoded fields minus client_secret; null if unparseable),
auth_method ("json"|"form"|"basic"|"private_key_jwt"|"tls_client_auth"|null),
client_cert (CN of the connection's client certificate, mtls_port only, or
null)}; stats.last_api_auth = {client_id (owner of the presented bearer token,
any state), authorization (bool), path, client_cert}; the echo route answers
client_cert too.

Client authentication
  * client secret (json, form, basic): the secret is "secret-" + client_id.
  * private_key_jwt (RFC 7523 §2.2; rules in standin_auth.py): a request with
    client_assertion(_type).  Errors: 400 invalid_request (assertion type or
    assertion missing, client_secret too), else 401 invalid_client.
    stats.last_assertion = {client_id, header, claims (decoded; never the
    signature), valid (bool), error (description or null)}.
    Control jwt_client {client_id, key: "rsa"|"ec"|"rsa_other" (DIR/jwt key
    names) | public_key: PEM (public key or certificate), kid, alg (string or
    list: pin the algorithms), audiences (list of accepted `aud`; null/absent:
    the origin the request came to + "/", e.g. "https://localhost:PORT/"),
    add (keep the client's other keys), remove (forget the client)}; with
    only audiences, changes those.  Registrations last until reset, which
    restores the well-known clients; used jti values are never forgotten
    before their exp.
  * tls_client_auth (RFC 8705 §2.1): on mtls_port, a request with a client_id
    and no secret nor assertion; the connection's client certificate must come
    from DIR/ca.pem (a certificate from DIR/other_ca.pem passes the handshake
    and gets 401 invalid_client here) with CN = client_id.  Control mtls_client
    {client_id ([A-Za-z0-9._:@-]{1,64}), ca: "ca"|"other_ca", password (encrypt
    the key), key_type: "EC"|"RSA", bound} -> {cert_file, key_file,
    key_password?}: a fresh certificate in DIR/mtls/; bound = true makes that
    client's mTLS tokens certificate-bound (RFC 8705 §3: the API answers 401
    invalid_token unless the same certificate is presented) until reset.
  * standin.json lists what start-up made: jwt_keys {rsa, ec, rsa_other:
    {type, private_key_file (PKCS#8, 0600), public_key_file, pkcs1_file (RSA)}},
    jwt_clients {"jwt-rs256"|"jwt-rs384"|"jwt-ps256"|"jwt-es256": {key, alg,
    kid}} (registered with that key, alg and kid), mtls_clients {"mtls-client",
    "mtls-password": {client_id, cert_file, key_file, key_password (the
    second)}}, mtls_other_ca_client (CN=mtls-client from the unrelated CA),
    private_key_jwt (false without python3-cryptography), mtls_port.

Footprints (standin_api.py): GET /v3/footprints?site=S&year=Y&limit=N (a fixed
list of plausible items and those POSTed since the last reset), GET
/v3/footprints/<id>, POST /v3/footprints (201, the item created); a token is
needed as on every API route but /v3/ping.

More methods (issue 13): LOCK, UNLOCK, MKCOL, PURGE, COPY, MOVE, PROPFIND and
PROPPATCH are routed like GET (the echo route answers them, faults apply to
them); without this the handler answers 501 to any method it has no do_X for.

Token lifetime: the per-client `config` expires_in (any JSON value) or
--lifetime is sent verbatim.  Server-side expiry uses it when it is a positive
number (or a string holding one); otherwise (0, -5, "abc", null, ...) the
token is valid server-side for --lifetime seconds.
"""

import argparse
import base64
import binascii
import gzip as gzip_mod
import http
import http.server
import json
import os
import secrets
import shutil
import signal
import socket
import socketserver
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from urllib.parse import parse_qs, parse_qsl, unquote_plus, urlsplit

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import standin_api  # noqa: E402  the footprint routes (this directory)
import standin_auth  # noqa: E402  private_key_jwt and tls_client_auth (this directory)

VERBOSE = False
CONN_TIMEOUT = 30
STANDIN_JSON = None  # path, removed on exit
REMOVE_DIR = None  # --remove-dir: the whole DIR, removed on exit


def log(*args):
    if VERBOSE:
        print("[standin]", *args, file=sys.stderr, flush=True)


def die(code=0):
    if REMOVE_DIR:
        shutil.rmtree(REMOVE_DIR, ignore_errors=True)
    elif STANDIN_JSON:
        try:
            os.unlink(STANDIN_JSON)
        except OSError:
            pass
    os._exit(code)


# --------------------------------------------------------------------------
# certificates

OPENSSL_CFG = """
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[ca_ext]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[good_ext]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = DNS:localhost, IP:127.0.0.1, IP:::1
[wrong_ext]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = DNS:wrong.invalid
[ca]
default_ca = tmpca
[tmpca]
database = index.txt
new_certs_dir = .
serial = serial
default_md = sha256
policy = anything
unique_subject = no
copy_extensions = none
[anything]
commonName = supplied
"""

EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]


def make_certs(d):
    work = tempfile.mkdtemp(prefix="certs.", dir=d)

    def run(*args):
        p = subprocess.run(["openssl", *args], cwd=work, capture_output=True, text=True)
        if p.returncode != 0:
            raise RuntimeError("openssl %s failed:\n%s%s" % (args[0], p.stdout, p.stderr))

    with open(os.path.join(work, "cfg"), "w") as f:
        f.write(OPENSSL_CFG)
    open(os.path.join(work, "index.txt"), "w").close()
    with open(os.path.join(work, "serial"), "w") as f:
        f.write(secrets.token_hex(8) + "\n")
    ca = ["-CA", "ca.pem", "-CAkey", "ca.key"]
    run("req", "-x509", "-config", "cfg", *EC, "-keyout", "ca.key", "-out", "ca.pem",
        "-days", "3650", "-subj", "/CN=Ducky Standin Test CA", "-extensions", "ca_ext")
    run("req", "-x509", "-config", "cfg", *EC, "-keyout", "other_ca.key", "-out", "other_ca.pem",
        "-days", "3650", "-subj", "/CN=Unrelated Test CA", "-extensions", "ca_ext")
    run("req", "-new", "-config", "cfg", *EC, "-keyout", "server.key", "-out", "server.csr",
        "-subj", "/CN=localhost")
    run("req", "-x509", "-config", "cfg", "-in", "server.csr", "-key", "server.key", *ca,
        "-days", "3650", "-extensions", "good_ext", "-out", "server.pem")
    run("req", "-x509", "-config", "cfg", "-in", "server.csr", "-key", "server.key", *ca,
        "-days", "3650", "-subj", "/CN=wrong.invalid", "-extensions", "wrong_ext",
        "-out", "wrong_host.pem")
    run("ca", "-batch", "-config", "cfg", "-in", "server.csr", "-cert", "ca.pem",
        "-keyfile", "ca.key", "-startdate", "20200101000000Z", "-enddate", "20200102000000Z",
        "-extensions", "good_ext", "-notext", "-out", "expired.pem")
    for name in ("ca.pem", "ca.key", "other_ca.pem", "other_ca.key", "server.pem",
                 "server.key", "wrong_host.pem", "expired.pem"):
        os.replace(os.path.join(work, name), os.path.join(d, name))
    shutil.rmtree(work, ignore_errors=True)


# --------------------------------------------------------------------------
# state

class State:
    def __init__(self, audience, lifetime, d, jwt):
        self.lock = threading.Lock()
        self.audience = audience
        self.lifetime = lifetime
        self.dir = d
        self.jwt = jwt  # standin_auth.JwtClients: keys, audiences, used jti (own lock)
        self.tokens = {}  # token -> {client_id, expires_at, revoked, x5t}
        self.id_counter = 0
        self.connections_total = 0
        self.generation = 0
        self.rl_window = 0
        self.rl_count = 0
        self.footprints = standin_api.Footprints()  # own lock
        self.reset()

    def reset(self):  # caller holds the lock (or construction)
        self.generation += 1
        self.faults = {}  # path -> [fault]
        self.exchanges = 0
        self.exchanges_by_client = {}
        self.connections = 0
        self.requests = 0
        self.requests_by_path = {}
        self.last_token_request = None
        self.last_ping_had_auth = False
        self.last_api_auth = None
        self.banned = set()
        self.client_lifetime = {}
        self.last_assertion = None
        self.cert_bound = set()  # client ids whose mTLS tokens are certificate-bound
        self.outages = []  # time-based faults: outage and slow controls
        self.token_requests_by_client = {}  # client id -> {received, succeeded, failed}
        self.jwt.reset()
        self.footprints.reset()

    def next_request_id(self):
        with self.lock:
            self.id_counter += 1
            return "req-%d" % self.id_counter

    def take_upload_fault(self, path, client_id):
        """The first queued fault for path that client_id matches, taken only
        when it is a drop="mid_upload" one (it acts before the body is read)."""
        with self.lock:
            queue = self.faults.get(path) or []
            for i, f in enumerate(queue):
                if f.get("client_id") is None or f["client_id"] == client_id:
                    if f.get("drop") != "mid_upload":
                        return None
                    f["_left"] -= 1
                    if f["_left"] <= 0:
                        del queue[i]
                    return f
        return None

    def take_fault(self, path, client_id):
        with self.lock:
            queue = self.faults.get(path) or []
            for i, f in enumerate(queue):
                if f.get("client_id") is None or f["client_id"] == client_id:
                    f["_left"] -= 1
                    if f["_left"] <= 0:
                        del queue[i]
                    return f
        return None

    def time_faults(self, path, client_id):
        """The outages and slow periods now active for path and client_id, the
        expired ones dropped: -> (status or "drop" or None, their outage or None,
        the longest delay)."""
        now = time.monotonic()
        status, which, delay = None, None, 0
        with self.lock:
            self.outages = [o for o in self.outages if o["until"] > now]
            for o in self.outages:
                if o["path"] == path and o.get("client_id") in (None, client_id):
                    delay = max(delay, o.get("delay") or 0)
                    if status is None and o.get("status") is not None:
                        status, which = o["status"], o
        return status, which, delay

    def add_time_fault(self, o):
        """Adds (or with seconds 0 ends) an outage or slow period; the one
        before it for the same kind, path and client_id is replaced."""
        same = (o["kind"], o["path"], o.get("client_id"))
        self.outages = [x for x in self.outages if (x["kind"], x["path"], x.get("client_id")) != same]
        if o["seconds"] > 0:
            o["until"] = time.monotonic() + o["seconds"]
            self.outages.append(o)

    def count_token_request(self, client_id, outcome):
        """outcome: "received" when a token request arrives, then "succeeded" (a
        token issued and sent whole: an exchange) or "failed" (anything else)."""
        key = client_id if isinstance(client_id, str) else "(none)"
        with self.lock:
            c = self.token_requests_by_client.setdefault(key, {"received": 0, "succeeded": 0, "failed": 0})
            c[outcome] += 1

    def token_owner(self, token):
        with self.lock:
            rec = self.tokens.get(token)
            return rec["client_id"] if rec else None

    def token_x5t(self, token):
        """The certificate thumbprint a token is bound to (RFC 8705 §3), or None."""
        with self.lock:
            rec = self.tokens.get(token)
            return rec.get("x5t") if rec else None

    def check_token(self, token):
        """-> (client_id or None, error description or None)"""
        with self.lock:
            rec = self.tokens.get(token)
            if rec is None:
                return None, "Unknown token"
            if rec["revoked"]:
                return rec["client_id"], "Token revoked"
            if time.monotonic() >= rec["expires_at"]:
                return rec["client_id"], "Token expired"
            return rec["client_id"], None

    def ratelimit_headers(self):
        with self.lock:
            now = int(time.time())
            window = now - now % 60
            if window != self.rl_window:
                self.rl_window, self.rl_count = window, 0
            self.rl_count += 1
            remaining = max(0, 30 - self.rl_count)
        return [("x-ratelimit-limit", "30"), ("x-ratelimit-remaining", str(remaining)),
                ("x-ratelimit-reset", str(window + 60))]


def server_lifetime(value, default):
    if isinstance(value, bool):
        return default
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return default
    if isinstance(value, (int, float)) and value > 0 and value == value:
        return min(float(value), 1e15)
    return default


# --------------------------------------------------------------------------
# responses

class Response:
    def __init__(self, status, body=b"", headers=None, content_type="application/json"):
        self.status = status
        if isinstance(body, str):
            body = body.encode("utf-8")
        elif not isinstance(body, bytes):
            body = json.dumps(body).encode("utf-8")
        self.body = body
        self.headers = list(headers or [])
        if content_type and body:
            self.set_header("Content-Type", content_type)

    def set_header(self, name, value):
        self.headers = [(k, v) for k, v in self.headers if k.lower() != name.lower()]
        if isinstance(value, list):
            self.headers.extend((name, str(v)) for v in value)
        else:
            self.headers.append((name, str(value)))

    def has_header(self, name):
        return any(k.lower() == name.lower() for k, _ in self.headers)


def jresp(status, obj, headers=None):
    return Response(status, json.dumps(obj).encode("utf-8"), headers)


def oauth_error(status, error, desc, headers=None):
    return jresp(status, {"error": error, "error_description": desc}, headers)


FAULT_FIELDS = {"path", "times", "client_id", "status", "headers", "body", "content_type",
                "delay", "body_delay", "drop", "huge", "gzip", "chunked", "http10"}


def validate_fault(f):
    if not isinstance(f, dict):
        return "fault must be a JSON object"
    unknown = set(f) - FAULT_FIELDS
    if unknown:
        return "unknown fault fields: %s" % ", ".join(sorted(unknown))
    if not isinstance(f.get("path"), str) or not f["path"].startswith("/"):
        return "path must be a string starting with /"
    times = f.get("times", 1)
    if not isinstance(times, int) or isinstance(times, bool) or times < 1:
        return "times must be a positive integer"
    st = f.get("status")
    if st is not None and (not isinstance(st, int) or isinstance(st, bool) or not 100 <= st <= 999):
        return "status must be an integer 100..999"
    if f.get("drop") not in (None, "before_headers", "mid_upload", "mid_body"):
        return 'drop must be "before_headers", "mid_upload" or "mid_body"'
    for k in ("delay", "body_delay"):
        v = f.get(k)
        if v is not None and (not isinstance(v, (int, float)) or isinstance(v, bool) or v < 0):
            return "%s must be a non-negative number" % k
    h = f.get("huge")
    if h is not None and (not isinstance(h, int) or isinstance(h, bool) or h < 14):
        return "huge must be an integer >= 14"
    if f.get("headers") is not None and not isinstance(f["headers"], dict):
        return "headers must be an object"
    replacement = any(k in f for k in ("status", "body", "huge"))
    if f.get("gzip") and replacement and not f.get("body") and not f.get("huge"):
        return "gzip needs a body"
    return None


TIME_FAULT_FIELDS = {"outage": {"path", "seconds", "client_id", "status", "delay", "headers", "body"},
                     "slow": {"path", "seconds", "client_id", "delay"}}


def is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v == v


def validate_time_fault(kind, f):
    """-> error description or None (kind: "outage" or "slow")"""
    unknown = set(f) - TIME_FAULT_FIELDS[kind]
    if unknown:
        return "unknown %s fields: %s" % (kind, ", ".join(sorted(unknown)))
    if not isinstance(f.get("path"), str) or not f["path"].startswith("/"):
        return "path must be a string starting with /"
    if not is_number(f.get("seconds")) or not 0 <= f["seconds"] <= 86400:
        return "seconds must be a number 0..86400 (0 ends it)"
    if f.get("client_id") is not None and not isinstance(f["client_id"], str):
        return "client_id must be a string"
    d = f.get("delay")
    if (kind == "slow" or d is not None) and (not is_number(d) or not 0 < d <= 60):
        return "delay must be a number of seconds, more than 0 and at most 60"
    if kind == "outage":
        st = f.get("status")
        if st != "drop" and (not isinstance(st, int) or isinstance(st, bool) or not 100 <= st <= 999):
            return 'status must be an integer 100..999 or "drop"'
        if f.get("headers") is not None and not isinstance(f["headers"], dict):
            return "headers must be an object"
    return None


def outage_response(o, path):
    """The answer of an outage with a status: its body (default: an OAuth
    temporarily_unavailable error) and headers."""
    body = o.get("body")
    if body is None:
        body = {"error": "temporarily_unavailable",
                "error_description": "The stand-in has an outage of %s" % path}
    resp = Response(o["status"], body)
    for k, v in (o.get("headers") or {}).items():
        resp.set_header(k, v)
    return resp


def huge_body(n):
    return b'{"padding":"' + b"x" * (n - 14) + b'"}'


# --------------------------------------------------------------------------
# HTTP handler

def chunk(data):
    return b"%x\r\n%s\r\n" % (len(data), data) if data else b""


def reason(code):
    try:
        return http.HTTPStatus(code).phrase
    except ValueError:
        return "Status %d" % code


class BadRequest(Exception):
    pass


class Handler(http.server.BaseHTTPRequestHandler):
    # headers and body go out in separate writes: without TCP_NODELAY a kept-alive
    # client waits for a delayed ACK (~40 ms) on every request
    disable_nagle_algorithm = True
    protocol_version = "HTTP/1.1"
    timeout = CONN_TIMEOUT
    server_version = "ducky-standin"
    sys_version = ""
    _counted_generation = None

    def log_message(self, fmt, *args):  # noqa: N802
        log("%s - %s" % (self.address_string(), fmt % args))

    def do_GET(self):  # noqa: N802
        self.dispatch()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_GET

    # ---- plumbing

    def read_body(self):
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            out = []
            while True:
                line = self.rfile.readline(65537)
                if not line:
                    raise BadRequest("truncated chunked body")
                try:
                    size = int(line.split(b";")[0].strip(), 16)
                except ValueError:
                    raise BadRequest("bad chunk size") from None
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(out)
                data = self.rfile.read(size)
                if len(data) != size:
                    raise BadRequest("truncated chunk")
                out.append(data)
                self.rfile.readline(65537)
        cl = self.headers.get("Content-Length")
        if cl is None:
            return b""
        try:
            n = int(cl)
        except ValueError:
            raise BadRequest("bad Content-Length") from None
        data = self.rfile.read(n) if n > 0 else b""
        if len(data) != n:
            raise BadRequest("truncated body")
        return data

    def drop_mid_upload(self, path):
        """A drop="mid_upload" fault for this request: half its body read, the
        request counted, the connection closed. -> True when it applied."""
        st = self.server.state
        owner = None
        if path != "/oauth/token":
            bearer = bearer_token(self.headers.get("Authorization"))
            owner = st.token_owner(bearer) if bearer else None
        fault = st.take_upload_fault(path, owner)
        if not fault:
            return False
        log("fault", path, fault)
        with st.lock:
            st.requests += 1
            st.requests_by_path[path] = st.requests_by_path.get(path, 0) + 1
        try:
            n = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            n = 0
        if n > 1:
            self.rfile.read(n // 2)
        self.abort()
        return True

    def send(self, resp, fault=None):
        st = self.server.state
        fault = fault or {}
        if not resp.has_header("x-request-id"):
            resp.set_header("x-request-id", st.next_request_id())
        body = resp.body
        status = resp.status
        no_body = status < 200 or status in (204, 304)
        if fault.get("gzip") and body:
            body = gzip_mod.compress(body)
            resp.set_header("Content-Encoding", "gzip")
        http10 = bool(fault.get("http10"))
        chunked = bool(fault.get("chunked")) and not http10 and not no_body
        if http10:
            self.close_connection = True
            line = "HTTP/1.0 %d %s\r\n" % (status, reason(status))
        else:
            line = "HTTP/1.1 %d %s\r\n" % (status, reason(status))
            if chunked:
                resp.set_header("Transfer-Encoding", "chunked")
            elif not no_body:
                resp.set_header("Content-Length", str(len(body)))
            if self.close_connection:
                resp.set_header("Connection", "close")
        head = line + "".join("%s: %s\r\n" % (k, v) for k, v in resp.headers) + "\r\n"
        self.wfile.write(head.encode("latin-1"))
        if self.command == "HEAD" or no_body:
            body = b""
            chunked = False
        half = len(body) // 2
        first, rest = body[:half], body[half:]
        if chunked:
            # first half in two chunks, second half in one: 3 chunks in all
            q = (half + 1) // 2
            first = b"".join(chunk(p) for p in (first[:q], first[q:]))
            rest = chunk(rest) + b"0\r\n\r\n"
        if fault.get("drop") == "mid_body":
            self.wfile.write(first)
            self.abort()
            return
        if fault.get("body_delay"):
            self.wfile.write(first)
            time.sleep(fault["body_delay"])
            self.wfile.write(rest)
        else:
            self.wfile.write(first + rest)

    def abort(self):
        self.close_connection = True
        self.server.abrupt.add(self.connection)

    def peer_cert(self):
        """The client certificate of this connection (mTLS listener only), or None."""
        if not self.server.client_certs:
            return None
        if not hasattr(self, "_peer"):
            self._peer = standin_auth.peer_cert(self.connection)
        return self._peer

    def peer_cn(self):
        return (self.peer_cert() or {}).get("cn")

    def origin(self):
        """scheme://host[:port] as the client addressed this listener."""
        host = self.headers.get("Host") or "%s:%d" % (self.server.server_name, self.server.server_port)
        return ("https://" if self.server.ssl_ctx else "http://") + host

    # ---- dispatch

    def dispatch(self):
        st = self.server.state
        url = urlsplit(self.path)
        path, query = url.path, url.query
        args = parse_qs(query, keep_blank_values=True)
        if not path.startswith("/_control/") and self.drop_mid_upload(path):
            return
        try:
            body = self.read_body()
        except BadRequest as e:
            self.close_connection = True
            self.send(oauth_error(400, "invalid_request", str(e)))
            return
        if path.startswith("/_control/"):
            self.send(self.control(path[len("/_control/"):], body))
            return

        auth = self.headers.get("Authorization")
        with st.lock:
            st.requests += 1
            st.requests_by_path[path] = st.requests_by_path.get(path, 0) + 1
            if self._counted_generation != st.generation:
                self._counted_generation = st.generation
                st.connections += 1

        token_ctx = None
        if path == "/oauth/token":
            token_ctx = parse_token_request(self.headers, body)
            token_ctx["record"]["client_cert"] = self.peer_cn()
            with st.lock:
                st.last_token_request = token_ctx["record"]
            fault_client = token_ctx.get("client_id")
        else:
            bearer = bearer_token(auth)
            fault_client = st.token_owner(bearer) if bearer else None
            if path.startswith("/v3"):
                with st.lock:
                    st.last_api_auth = {"client_id": fault_client, "authorization": auth is not None,
                                        "path": path, "client_cert": self.peer_cn()}
                    if path == "/v3/ping":
                        st.last_ping_had_auth = auth is not None

        if token_ctx is not None:
            st.count_token_request(fault_client, "received")
        outcome = "failed"
        try:
            outcome = self.respond(path, query, args, auth, body, token_ctx, fault_client)
        finally:
            if token_ctx is not None:
                st.count_token_request(fault_client, outcome)

    def respond(self, path, query, args, auth, body, token_ctx, fault_client):
        """Answers a request (time-based faults, then queued faults, then the
        route): -> "succeeded" when a token was issued and sent whole, else "failed"."""
        st = self.server.state
        status, outage, delay = st.time_faults(path, fault_client)
        if delay:
            time.sleep(delay)
        if status == "drop":
            self.abort()
            return "failed"
        if status is not None:
            self.send(outage_response(outage, path))
            return "failed"
        fault = st.take_fault(path, fault_client)
        if fault:
            log("fault", path, fault)
            if fault.get("delay"):
                time.sleep(fault["delay"])
            if fault.get("drop") == "before_headers":
                self.abort()
                return "failed"
            if any(k in fault for k in ("status", "body", "huge")):
                if "huge" in fault and "body" not in fault:
                    fbody = huge_body(fault["huge"])
                else:
                    fbody = fault.get("body", b"")
                resp = Response(fault.get("status", 200), fbody,
                                content_type=fault.get("content_type") or "application/json")
                for k, v in (fault.get("headers") or {}).items():
                    resp.set_header(k, v)
                self.send(resp, fault)
                return "failed"

        counting = not (fault and fault.get("drop"))
        try:
            if token_ctx is not None:
                resp = self.route_token(token_ctx, counting)
            else:
                resp = self.route_api(path, query, args, auth, body)
        except Exception as e:  # noqa: BLE001
            import traceback
            traceback.print_exc()
            resp = jresp(500, {"error": "standin_bug", "error_description": repr(e)})
        if fault:
            for k, v in (fault.get("headers") or {}).items():
                resp.set_header(k, v)
            if fault.get("content_type"):
                resp.set_header("Content-Type", fault["content_type"])
        self.send(resp, fault)
        return "succeeded" if token_ctx is not None and resp.status == 200 and counting else "failed"

    # ---- token endpoint

    def route_token(self, ctx, counting):
        st = self.server.state
        rl = st.ratelimit_headers()
        if self.command != "POST":
            return oauth_error(405, "invalid_request", "Use POST", rl + [("Allow", "POST")])
        if ctx.get("error"):
            return oauth_error(400, "invalid_request", ctx["error"], rl)
        p = ctx["params"]
        if p.get("grant_type") != "client_credentials":
            return oauth_error(400, "unsupported_grant_type",
                               "Unsupported grant type: %s" % p.get("grant_type"), rl)
        cid, x5t, err = self.authenticate_client(ctx, rl)
        if err:
            return err
        with st.lock:
            lifetime = st.client_lifetime.get(cid, st.lifetime)
        aud = p.get("audience")
        if aud is None or aud == "":
            return oauth_error(403, "access_denied",
                               "No audience parameter was provided, and no default audience "
                               "has been configured", rl)
        if aud != st.audience:
            return oauth_error(403, "access_denied", "Service not enabled within domain: %s" % aud, rl)
        token = "tok_" + secrets.token_hex(16)
        with st.lock:
            st.tokens[token] = {"client_id": cid, "revoked": False, "x5t": x5t,
                                "expires_at": time.monotonic() + server_lifetime(lifetime, st.lifetime)}
            if counting:
                st.exchanges += 1
                st.exchanges_by_client[cid] = st.exchanges_by_client.get(cid, 0) + 1
        return jresp(200, {"access_token": token, "token_type": "Bearer", "expires_in": lifetime},
                     rl + [("Cache-Control", "no-store"), ("Pragma", "no-cache")])

    def authenticate_client(self, ctx, rl):
        """-> (client_id, certificate thumbprint to bind the token to or None, None)
        or (None, None, error Response), for each way a client authenticates."""
        st = self.server.state
        p, rec = ctx["params"], ctx["record"]
        cid, secret = ctx.get("client_id"), ctx.get("client_secret")
        x5t = None
        if "client_assertion" in p or "client_assertion_type" in p:  # private_key_jwt
            rec["auth_method"] = "private_key_jwt"
            arec, refused = st.jwt.check(p, self.origin() + "/")
            with st.lock:
                st.last_assertion = arec
            if refused:
                return None, None, oauth_error(refused.status, refused.error, refused.desc, rl)
            cid = rec["client_id"] = arec["client_id"]
        elif secret is None and self.server.client_certs and isinstance(cid, str) and cid:
            rec["auth_method"] = "tls_client_auth"
            cert = self.peer_cert()
            if cert is None:
                return None, None, oauth_error(401, "invalid_client",
                                               "tls_client_auth: no client certificate presented", rl)
            if not cert["trusted"]:
                return None, None, oauth_error(401, "invalid_client",
                                               "Client certificate not issued by a trusted CA "
                                               "(issuer: %s)" % cert["issuer"], rl)
            if cert["cn"] != cid:
                return None, None, oauth_error(401, "invalid_client",
                                               "Client certificate subject CN=%s does not match "
                                               "client_id %s" % (cert["cn"], cid), rl)
            with st.lock:
                x5t = cert["x5t"] if cid in st.cert_bound else None
        elif not cid or not secret or not isinstance(cid, str) or not isinstance(secret, str):
            return None, None, oauth_error(401, "access_denied", "Unauthorized", rl)
        with st.lock:
            banned = cid in st.banned
        if banned:
            return None, None, oauth_error(401, "invalid_client", "Client is banned", rl)
        if rec["auth_method"] in ("json", "form", "basic") and secret != "secret-" + cid:
            return None, None, oauth_error(401, "access_denied", "Unauthorized", rl)
        return cid, x5t, None

    # ---- API

    def authorize(self, auth):
        """-> (client_id, None) or (None, 401 Response)"""
        bearer = bearer_token(auth)
        if not bearer:
            desc = "Missing bearer token" if auth is None else "Malformed Authorization header"
        else:
            cid, desc = self.server.state.check_token(bearer)
            bound = self.server.state.token_x5t(bearer) if desc is None else None
            if bound and bound != (self.peer_cert() or {}).get("x5t"):
                desc = "Certificate-bound token presented without its certificate"
            elif desc is None:
                return cid, None
        return None, oauth_error(401, "invalid_token", desc,
                                 [("WWW-Authenticate", 'Bearer error="invalid_token"')])

    def route_api(self, path, query, args, auth, body):
        public = "1" in args.get("public", [])
        if path == "/v3/ping":
            return jresp(200, {"message": "pong"})
        if path == "/v3/ping/protected":
            _, err = self.authorize(auth)
            return err or jresp(200, {"message": "pong", "ready": True})
        if path == "/v3/echo" or path.startswith("/v3/echo/"):
            cid = None
            if not public:
                cid, err = self.authorize(auth)
                if err:
                    return err
            else:
                bearer = bearer_token(auth)
                cid = self.server.state.check_token(bearer)[0] if bearer else None
            try:
                text = body.decode("utf-8")
            except UnicodeDecodeError:
                text = body.decode("latin-1")
            try:
                parsed = json.loads(text) if text else None
            except ValueError:
                parsed = None
            headers = {}
            for k, v in self.headers.items():
                k = k.lower()
                headers[k] = headers[k] + ", " + v if k in headers else v
            return jresp(200, {"method": self.command, "path": path, "query": query, "args": args,
                               "headers": headers, "body": text, "json": parsed, "client_id": cid,
                               "client_cert": self.peer_cn()})
        if path.startswith("/v3/status/"):
            try:
                code = int(path[len("/v3/status/"):])
            except ValueError:
                code = 0
            if not 200 <= code <= 599:
                return jresp(400, {"error": "bad_status"})
            if not public:
                _, err = self.authorize(auth)
                if err:
                    return err
            r = jresp(code, {"status": code})
            if "retry_after" in args:
                r.set_header("Retry-After", args["retry_after"][0])
            return r
        if path == "/v3/footprints" or path.startswith("/v3/footprints/"):
            _, err = self.authorize(auth)
            if err:
                return err
            status, obj, headers = self.server.state.footprints.route(self.command, path, args, body)
            return jresp(status, obj, headers)
        if path == "/v3/headers":
            return Response(200, b"{}", [("Set-Cookie", "a=1"), ("Set-Cookie", "b=2"),
                                         ("X-Mixed-Case", "Yes"), ("x-request-id", "req-123")])
        if path == "/v3/redirect":
            to = args.get("to", ["/v3/ping"])[0]
            code = int(args.get("status", ["302"])[0])
            return Response(code, b"", [("Location", to)])
        return jresp(404, {"error": "not_found",
                           "error_description": "No route for %s %s" % (self.command, path)})

    # ---- control

    def control(self, name, body):
        st = self.server.state
        try:
            req = json.loads(body.decode("utf-8")) if body.strip() else {}
        except ValueError as e:
            return jresp(400, {"error": "bad json: %s" % e})
        if not isinstance(req, dict):
            return jresp(400, {"error": "body must be a JSON object"})
        cid = req.get("client_id")
        if name in ("jwt_client", "mtls_client"):  # own locks; mtls_client runs openssl
            return self.auth_control(name, cid, req)
        with st.lock:
            if name == "stats":
                return jresp(200, {
                    "exchanges": st.exchanges, "exchanges_by_client": st.exchanges_by_client,
                    "connections": st.connections, "connections_total": st.connections_total,
                    "requests": st.requests, "requests_by_path": st.requests_by_path,
                    "last_token_request": st.last_token_request,
                    "last_ping_had_auth": st.last_ping_had_auth,
                    "last_api_auth": st.last_api_auth,
                    "last_assertion": st.last_assertion,
                    "faults_pending": sum(f["_left"] for q in st.faults.values() for f in q),
                    "token_requests_by_client": st.token_requests_by_client,
                    "outages": [dict({k: v for k, v in o.items() if k != "until"},
                                     seconds_left=round(o["until"] - time.monotonic(), 3))
                                for o in st.outages if o["until"] > time.monotonic()],
                })
            if name == "reset":
                st.reset()
                return jresp(200, {"ok": True})
            if name == "fault":
                err = validate_fault(req)
                if err:
                    return jresp(400, {"error": err})
                f = dict(req)
                f["_left"] = f.get("times", 1)
                q = st.faults.setdefault(f["path"], [])
                q.append(f)
                return jresp(200, {"ok": True, "queued": len(q)})
            if name in TIME_FAULT_FIELDS:
                err = validate_time_fault(name, req)
                if err:
                    return jresp(400, {"error": err})
                st.add_time_fault(dict(req, kind=name))
                return jresp(200, {"ok": True, "active": sum(1 for o in st.outages if o["kind"] == name)})
            if name == "shutdown":
                threading.Timer(0.2, die).start()
                return jresp(200, {"ok": True})
            if not isinstance(cid, str):
                return jresp(400, {"error": "client_id (string) required"})
            if name == "config":
                if "expires_in" not in req:
                    st.client_lifetime.pop(cid, None)
                else:
                    st.client_lifetime[cid] = req["expires_in"]
                return jresp(200, {"ok": True})
            if name == "revoke":
                n = 0
                for rec in st.tokens.values():
                    if rec["client_id"] == cid and not rec["revoked"]:
                        rec["revoked"] = True
                        n += 1
                return jresp(200, {"ok": True, "revoked": n})
            if name == "ban":
                st.banned.add(cid)
                return jresp(200, {"ok": True})
            if name == "unban":
                st.banned.discard(cid)
                return jresp(200, {"ok": True})
        return jresp(404, {"error": "unknown control %s" % name})

    def auth_control(self, name, cid, req):
        st = self.server.state
        if not isinstance(cid, str) or not cid:
            return jresp(400, {"error": "client_id (string) required"})
        if name == "jwt_client":
            err = st.jwt.register(cid, req)
            return jresp(400, {"error": err}) if err else jresp(200, {"ok": True})
        if not standin_auth.SAFE_ID.match(cid):
            return jresp(400, {"error": "client_id must match %s to name a certificate"
                               % standin_auth.SAFE_ID.pattern})
        ca, password = req.get("ca", "ca"), req.get("password")
        key_type = req.get("key_type", "EC")
        if ca not in ("ca", "other_ca") or key_type not in ("EC", "RSA") or not (
                password is None or isinstance(password, str) and password):
            return jresp(400, {"error": 'ca: "ca" or "other_ca"; key_type: "EC" or "RSA"; '
                               'password: a non-empty string'})
        out = standin_auth.make_client_cert(st.dir, cid, ca, password, key_type)
        with st.lock:
            if req.get("bound"):
                st.cert_bound.add(cid)
            else:
                st.cert_bound.discard(cid)
        return jresp(200, dict(out, ok=True))


# --------------------------------------------------------------------------
# issue 13 additions: more methods (see the docstring), for the retry policy

for _method in ("LOCK", "UNLOCK", "MKCOL", "PURGE", "COPY", "MOVE", "PROPFIND", "PROPPATCH"):
    setattr(Handler, "do_" + _method, Handler.do_GET)


def bearer_token(auth):
    if not auth:
        return None
    parts = auth.strip().split(None, 1)
    if len(parts) == 2 and parts[0].lower() == "bearer":
        return parts[1].strip()
    return None


def parse_token_request(headers, body):
    ctype_raw = headers.get("Content-Type")
    ctype = (ctype_raw or "").split(";")[0].strip().lower()
    auth = headers.get("Authorization")
    text = body.decode("latin-1")
    ctx = {"params": {}}
    rec = {"content_type": ctype_raw, "authorization": auth is not None,
           "authorization_value": auth, "body": text, "client_id": None, "params": None,
           "auth_method": None}
    ctx["record"] = rec
    params = None
    if ctype == "application/json":
        try:
            params = json.loads(body.decode("utf-8"))
            if not isinstance(params, dict):
                raise ValueError("not an object")
        except ValueError as e:
            ctx["error"] = "Invalid JSON body: %s" % e
            params = None
    elif ctype == "application/x-www-form-urlencoded":
        try:
            params = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True,
                                    errors="strict"))
        except (UnicodeDecodeError, ValueError) as e:
            ctx["error"] = "Invalid form body: %s" % e
    else:
        ctx["error"] = "Unsupported content type: %s" % (ctype_raw or "(none)")
    if params is None:
        return ctx
    cid, secret = params.get("client_id"), params.get("client_secret")
    method = "json" if ctype == "application/json" else "form"
    if auth and auth.strip().split(None, 1)[0].lower() == "basic":
        method = "basic"
        try:
            raw = base64.b64decode(auth.strip().split(None, 1)[1], validate=True).decode("utf-8")
            bid, bsecret = raw.split(":", 1)
        except (IndexError, ValueError, binascii.Error):
            ctx["error"] = "Malformed Basic authorization header"
            return ctx
        if "client_secret" in params:
            ctx["error"] = "Multiple client authentication methods (Basic and client_secret)"
            return ctx
        cid, secret = unquote_plus(bid), unquote_plus(bsecret)
    ctx.update(params=params, client_id=cid, client_secret=secret)
    rec["params"] = {k: v for k, v in params.items() if k != "client_secret"}
    rec["client_id"] = cid
    rec["auth_method"] = method
    return ctx


# --------------------------------------------------------------------------
# servers

class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
    ssl_ctx = None
    client_certs = False  # the mTLS listener: asks for client certificates

    def __init__(self, addr, state, ssl_ctx=None, family=socket.AF_INET):
        self.address_family = family
        self.state = state
        self.ssl_ctx = ssl_ctx
        self.abrupt = set()
        super().__init__(addr, Handler)

    def server_bind(self):  # skip HTTPServer's getfqdn (slow without DNS)
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = "localhost", self.server_address[1]

    def finish_request(self, request, client_address):
        # runs in the per-connection thread: TLS handshake happens here
        with self.state.lock:
            self.state.connections_total += 1
        request.settimeout(CONN_TIMEOUT)
        sock = request
        if self.ssl_ctx is not None:
            try:
                sock = self.ssl_ctx.wrap_socket(request, server_side=True,
                                                do_handshake_on_connect=False)
                sock.do_handshake()
            except (OSError, ValueError) as e:
                log("TLS handshake failed:", e)
                try:
                    sock.close()
                except OSError:
                    pass
                return
        try:
            self.RequestHandlerClass(sock, client_address, self)
        finally:
            if sock is not request:
                self.close_tls(sock)

    def close_tls(self, sock):
        abrupt = sock in self.abrupt
        self.abrupt.discard(sock)
        try:
            if not abrupt:
                sock.settimeout(0.5)
                sock.unwrap()  # close_notify
        except (OSError, ValueError):
            pass
        try:
            sock.close()
        except OSError:
            pass

    def shutdown_request(self, request):
        self.abrupt.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError, ssl.SSLError)):
            log("connection error:", exc)
            return
        super().handle_error(request, client_address)


def main():
    global VERBOSE, STANDIN_JSON, REMOVE_DIR
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dir", required=True)
    ap.add_argument("--audience", default="ducky-api-test")
    ap.add_argument("--lifetime", type=int, default=86400)
    ap.add_argument("--exit-with", type=int)
    ap.add_argument("--remove-dir", action="store_true",
                    help="delete DIR when exiting (SIGTERM/SIGINT, --exit-with, shutdown)")
    ap.add_argument("--verbose", action="store_true")
    a = ap.parse_args()
    VERBOSE = a.verbose
    d = os.path.abspath(a.dir)
    os.makedirs(d, exist_ok=True)
    if a.remove_dir:
        REMOVE_DIR = d

    signal.signal(signal.SIGTERM, lambda *_: die(0))
    signal.signal(signal.SIGINT, lambda *_: die(0))
    if a.exit_with:
        def watch(pid):
            while True:
                try:
                    os.kill(pid, 0)
                    with open("/proc/%d/stat" % pid) as f:
                        if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                            break
                except ProcessLookupError:
                    break
                except OSError:
                    pass
                time.sleep(0.5)
            log("process %d gone, exiting" % pid)
            die(0)
        threading.Thread(target=watch, args=(a.exit_with,), daemon=True).start()

    make_certs(d)
    material = standin_auth.make_material(d)

    def tls(cert):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(os.path.join(d, cert), os.path.join(d, "server.key"))
        return ctx

    def mtls():
        # a certificate from either CA passes the handshake; the token endpoint
        # refuses the unrelated CA's (an OAuth error, as from Auth0's mTLS edge)
        ctx = tls("server.pem")
        ctx.verify_mode = ssl.CERT_OPTIONAL
        ctx.load_verify_locations(os.path.join(d, "ca.pem"))
        ctx.load_verify_locations(os.path.join(d, "other_ca.pem"))
        return ctx

    state = State(a.audience, a.lifetime, d, standin_auth.JwtClients(material))
    servers = {
        "http_port": Server(("127.0.0.1", 0), state),
        "https_port": Server(("127.0.0.1", 0), state, tls("server.pem")),
        "wrong_host_port": Server(("127.0.0.1", 0), state, tls("wrong_host.pem")),
        "expired_port": Server(("127.0.0.1", 0), state, tls("expired.pem")),
        "mtls_port": Server(("127.0.0.1", 0), state, mtls()),
    }
    servers["mtls_port"].client_certs = True
    try:
        servers["ipv6_port"] = Server(("::1", 0), state, family=socket.AF_INET6)
    except OSError as e:
        log("no IPv6:", e)
    for srv in servers.values():
        threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True).start()

    info = {"pid": os.getpid(), "dir": d, "audience": a.audience,
            "ca_file": os.path.join(d, "ca.pem"), "other_ca_file": os.path.join(d, "other_ca.pem"),
            "ipv6_port": None, **material}
    for k, srv in servers.items():
        info[k] = srv.server_address[1]
    path = os.path.join(d, "standin.json")
    tmp = path + ".tmp.%d" % os.getpid()
    with open(tmp, "w") as f:
        json.dump(info, f, indent=1)
    os.replace(tmp, path)
    STANDIN_JSON = path
    print("ready", flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
