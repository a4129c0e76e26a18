-- Helpers for the busted specs: start/find the local stand-in
-- (spec/support/standin/standin.py) and talk to its /_control endpoints.
--   local H = require("spec.helpers")      -- run from the repository root
local http = require("socket.http")
local ltn12 = require("ltn12")
local socket = require("socket")
local cjson = require("cjson")

local H = {}

-- sentinel for H.opts: an override set to H.NIL removes the key
H.NIL = setmetatable({}, { __tostring = function() return "H.NIL" end })

local PYTHON = "/usr/bin/python3"
local STANDIN = "spec/support/standin/standin.py"

local info -- decoded standin.json, once per Lua process
local id_counter = 0
local pid -- of this Lua process

-- works on Lua 5.1 (Debian's default `busted`) and 5.4
local tointeger = math.tointeger or function(v)
  if type(v) == "number" and v % 1 == 0 then return v end
  return nil
end

-- The whole content of a file, or nil.
function H.read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end
local read_file = H.read_file

function H.write_file(path, s)
  local f = assert(io.open(path, "wb"))
  f:write(s)
  f:close()
end

-- fn(...) must raise, with a message (tostring of the error) that contains
-- `expected` as plain text: string.find with plain = true, so "(", "%", "." and
-- "'" mean themselves. Fails the spec otherwise (no raise, or another message);
-- returns the message.   H.raises(c.request, "client:request: not an HTTP method name", c, "G T", "/")
function H.raises(fn, expected, ...)
  if type(expected) ~= "string" or expected == "" then
    error("H.raises: give the expected message (a non-empty string), not " .. tostring(expected), 2)
  end
  local ok, e = pcall(fn, ...)
  if ok then error(("expected an error containing %q, got none"):format(expected), 2) end
  local msg = tostring(e)
  if not msg:find(expected, 1, true) then
    error(("expected an error containing %q, got %q"):format(expected, msg), 2)
  end
  return msg
end

-- Waits until fn() returns a true value (returned), calling it every `step`
-- seconds (default 0.02), for at most `timeout` seconds (default 10); then fails
-- the spec naming `what`, and fn's last non-true result if it gave a second one.
--   H.wait_until(function() return H.exchanges(id) >= 1 end, 5, "the first exchange")
function H.wait_until(fn, timeout, what, step)
  local deadline = socket.gettime() + (timeout or 10)
  while true do
    local v, detail = fn()
    if v then return v end
    if socket.gettime() >= deadline then
      error(("timed out after %g s waiting for %s%s"):format(timeout or 10, what or "a condition",
        detail ~= nil and (" (last: " .. tostring(detail) .. ")") or ""), 2)
    end
    socket.sleep(step or 0.02)
  end
end

-- s as a quoted Lua string on one line (a newline shown as \n), for spec names:
-- a raw newline in a name breaks the TAP output into stray lines.
function H.show(s)
  return (("%q"):format(s):gsub("\\\n", "\\n"):gsub("\r", "\\r"))
end

-- How many times `plain` (plain text, not a pattern) occurs in s.
function H.occurrences(s, plain)
  local n, at = 0, 1
  while true do
    local i, j = s:find(plain, at, true)
    if not i then return n end
    n, at = n + 1, j + 1
  end
end

-- A TCP port on 127.0.0.1 that nothing listens on (free to take).
function H.free_port()
  local s = assert(socket.bind("127.0.0.1", 0))
  local _, port = s:getsockname()
  s:close()
  return tonumber(port)
end

-- A client made from H.opts(overrides).
function H.client(overrides)
  return require("ducky").client(H.opts(overrides))
end

-- A client made from H.opts(overrides), and the list its `log` fills.
function H.client_with_log(overrides)
  local events = {}
  local o = H.opts(overrides)
  o.log = function(ev) events[#events + 1] = ev end
  return require("ducky").client(o), events, o
end

local function my_pid()
  -- /proc/self is the process that opens it: this Lua interpreter
  pid = pid or tointeger(tonumber(read_file("/proc/self/stat"):match("^(%d+)")))
  return pid
end

-- Whether process p runs (a zombie, state Z, has exited already).
local function alive(p)
  local stat = tointeger(p) and read_file("/proc/" .. tointeger(p) .. "/stat")
  return stat ~= nil and stat:match("^%d+ %b() (%a)") ~= "Z"
end
H.alive = alive

-- lua-cjson decodes every number as a float: turn integral ones into integers
local function ints(v)
  if type(v) == "number" then return tointeger(v) or v end
  if type(v) == "table" then
    for k, x in pairs(v) do v[k] = ints(x) end
  end
  return v
end

local function load_info(dir)
  local s = read_file(dir .. "/standin.json")
  if not s then return nil end
  local ok, t = pcall(cjson.decode, s)
  if ok and type(t) == "table" and alive(t.pid) then return ints(t) end
  return nil
end

-- Helper processes run without the sanitizer runtime the suite may preload into Lua.
H.CLEAN_ENV = "env -u LD_PRELOAD "

-- The interpreter and build under test (tools/test.sh sets both), and the
-- environment a child Lua process needs to load that build.
H.LUA = os.getenv("DUCKY_LUA") or "lua5.4"
H.BUILD = os.getenv("DUCKY_BUILD") or "build"
H.CHILD_ENV = ("LUA_CPATH='./%s/?.so;;' LUA_PATH='./lua/?.lua;./?.lua;;'"):format(H.BUILD)

-- s quoted for the shell, as one word.
function H.quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end
local shell_quote = H.quote

-- Runs a shell command; returns its output (stdout and stderr) and exit code.
-- (popen's close() tells no exit status on Lua 5.1, so the shell reports it.)
function H.run(cmd)
  local p = assert(io.popen("{ " .. cmd .. "\n} 2>&1; echo \"__exit=$?\""))
  local out = p:read("*a")
  p:close()
  local code = tonumber(out:match("__exit=(%d+)%s*$"))
  return (out:gsub("__exit=%d+%s*$", "")), code
end

-- H.run of `sh -c cmd` in the checkout, without the sanitizer runtime the suite
-- may preload and without the flags of a make that may be running the suite.
function H.sh(cmd)
  -- as from a shell of its own: not the make (and its LUA=, BUILD=) that runs the suite
  return H.run(H.CLEAN_ENV .. "-u MAKEFLAGS -u MAKELEVEL -u MFLAGS -u LUA -u BUILD -u TEST_HOOKS sh -c "
    .. H.quote(cmd))
end

-- Runs a Lua script in a child process of the interpreter and build under test
-- (a crash there fails the spec, not the suite), with the stand-in this process
-- uses and env (a table name -> value) added. Returns its output and exit code.
function H.run_lua(script, env)
  local dir = H.tmpdir()
  H.write_file(dir .. "/child.lua", script)
  local vars = { H.CHILD_ENV, ("DUCKY_STANDIN_DIR='%s'"):format(H.standin().dir) }
  for k, v in pairs(env or {}) do vars[#vars + 1] = ("%s='%s'"):format(k, v) end
  local out, code = H.run(("%s %s '%s/child.lua'"):format(table.concat(vars, " "), H.LUA, dir))
  os.execute("rm -rf '" .. dir .. "'")
  return out, code
end

function H.tmpdir()
  local p = assert(io.popen(H.CLEAN_ENV .. "mktemp -d"))
  local dir = p:read("*l")
  p:close()
  assert(dir and dir ~= "", "mktemp -d failed")
  return dir
end

function H.standin()
  if info then return info end
  local env_dir = os.getenv("DUCKY_STANDIN_DIR")
  if env_dir and env_dir ~= "" then
    info = load_info(env_dir)
    if info then return info end
  end
  local dir = H.tmpdir()
  local cmd = string.format("%s%s %s --dir '%s' --exit-with %d --remove-dir >'%s/log' 2>&1 &",
    H.CLEAN_ENV, PYTHON, STANDIN, dir, my_pid(), dir)
  os.execute(cmd)
  local deadline = socket.gettime() + 10
  while socket.gettime() < deadline do
    info = load_info(dir)
    if info then return info end
    socket.sleep(0.05)
  end
  error("stand-in did not start within 10 s (" .. cmd .. "); log:\n"
    .. (read_file(dir .. "/log") or "(no log)"))
end

local HOSTS = {
  http = { "http", "127.0.0.1", "http_port" },
  https = { "https", "localhost", "https_port" },
  wrong_host = { "https", "localhost", "wrong_host_port" },
  expired = { "https", "localhost", "expired_port" },
  ipv6 = { "http", "[::1]", "ipv6_port" },
}

local function root_url(kind)
  local h = HOSTS[kind or "http"] or error("unknown stand-in kind: " .. tostring(kind), 3)
  local port = H.standin()[h[3]]
  if type(port) ~= "number" then error("stand-in has no " .. h[3] .. " (IPv6 unavailable?)", 3) end
  return string.format("%s://%s:%d", h[1], h[2], port)
end

function H.base_url(kind) return root_url(kind) .. "/v3" end
function H.token_url(kind) return root_url(kind) .. "/oauth/token" end
function H.has_ipv6() return type(H.standin().ipv6_port) == "number" end
function H.ca_file() return H.standin().ca_file end
function H.other_ca_file() return H.standin().other_ca_file end
function H.audience() return H.standin().audience end

-- POST (GET for "stats") /_control/<name> with a JSON body; returns the decoded answer
function H.control(name, body)
  local url = root_url("http") .. "/_control/" .. name
  local out = {}
  local req = { url = url, sink = ltn12.sink.table(out), method = "GET" }
  if name ~= "stats" then
    local data = cjson.encode(body or {})
    req.method = "POST"
    req.source = ltn12.source.string(data)
    req.headers = { ["content-type"] = "application/json", ["content-length"] = #data }
  end
  local ok, code = http.request(req)
  local text = table.concat(out)
  if not ok or code ~= 200 then
    error(string.format("stand-in control %s failed: %s %s", name, tostring(code), text), 2)
  end
  return ints(cjson.decode(text))
end

function H.stats() return H.control("stats") end
function H.reset() return H.control("reset") end
function H.fault(t) return H.control("fault", t) end
function H.revoke(id) return H.control("revoke", { client_id = id }) end
function H.ban(id) return H.control("ban", { client_id = id }) end
function H.unban(id) return H.control("unban", { client_id = id }) end
function H.config(id, expires_in) return H.control("config", { client_id = id, expires_in = expires_in }) end

function H.exchanges(id)
  return H.stats().exchanges_by_client[id] or 0
end

-- How many requests the stand-in saw for `path` (e.g. "/oauth/token"), 0 for none.
function H.requests_to(path)
  return H.stats().requests_by_path[path] or 0
end

-- The token endpoint answers the next token request of client id `id` with a 200
-- and `body` (a table, JSON-encoded, or a string as it is).
function H.token_answer(id, body)
  return H.fault { path = "/oauth/token", client_id = id, status = 200,
    body = type(body) == "string" and body or cjson.encode(body) }
end

-- Time-based faults (standin.py's docstring): t = { path, status (or "drop"),
-- seconds, client_id, delay, headers, body } answers every request to path
-- that way for t.seconds; H.slow{ path, delay, seconds, client_id } delays
-- each answer. seconds = 0 ends either early; H.reset() ends them all.
function H.outage(t) return H.control("outage", t) end
function H.slow(t) return H.control("slow", t) end

-- The token requests the stand-in saw naming client id `id`:
-- { received = n, succeeded = n (exchanges), failed = n }
function H.token_requests(id)
  return H.stats().token_requests_by_client[id] or { received = 0, succeeded = 0, failed = 0 }
end

-- The same, once every token request received has its outcome counted: the
-- stand-in counts succeeded or failed after its answer is sent, so a client
-- that has the answer may read the counts first.
function H.token_requests_settled(id)
  return H.wait_until(function()
    local t = H.token_requests(id)
    return t.received == t.succeeded + t.failed and t, ("%d received, %d counted"):format(t.received,
      t.succeeded + t.failed)
  end, 5, "the outcomes of " .. id .. "'s token requests")
end

-- ------------------------------------------------------------------------
-- private_key_jwt and tls_client_auth (spec/support/standin/standin_auth.py)

HOSTS.mtls = { "https", "localhost", "mtls_port" } -- asks for a client certificate

-- "scheme://host:port" of a listener, as a client addresses it (kind as in H.base_url)
function H.origin(kind) return root_url(kind) end

-- The stand-in's key files made at start-up: name "rsa", "ec" or "rsa_other" ->
-- { type, private_key_file, public_key_file, pkcs1_file (RSA) }
function H.jwt_key(name)
  return H.standin().jwt_keys[name] or error("no stand-in key " .. tostring(name), 2)
end

-- Registers a public key for client id `id`: t = { key = "rsa" | public_key = PEM,
-- kid, alg (string or list), audiences (list; default: the listener's origin .. "/"),
-- add (keep the other keys) }
function H.jwt_client(id, t)
  local body = { client_id = id }
  for k, v in pairs(t or {}) do body[k] = v end
  return H.control("jwt_client", body)
end

-- A fresh client certificate CN=id: t = { ca = "other_ca", password = "…",
-- key_type = "RSA", bound = true } -> { cert_file, key_file, key_password }
function H.mtls_client(id, t)
  local body = { client_id = id }
  for k, v in pairs(t or {}) do body[k] = v end
  return H.control("mtls_client", body)
end

-- Options for a private_key_jwt client: a fresh id with stand-in key `key`
-- registered (reg: more H.jwt_client fields), signing with that key's file.
function H.jwt_opts(key, overrides, reg)
  local o = H.opts {
    client_secret = H.NIL, token_auth = "private_key_jwt",
    private_key_file = H.jwt_key(key).private_key_file,
  }
  local r = { key = key }
  for k, v in pairs(reg or {}) do r[k] = v end
  H.jwt_client(o.client_id, r)
  for k, v in pairs(overrides or {}) do
    if v == H.NIL then o[k] = nil else o[k] = v end
  end
  return o
end

-- Options for a tls_client_auth client on the mTLS listener (token and API): a
-- fresh id with a fresh certificate (cert: more H.mtls_client fields); also
-- returns that certificate's table.
function H.mtls_opts(overrides, cert)
  local o = H.opts {
    client_secret = H.NIL, token_auth = "tls_client_auth",
    base_url = H.base_url("mtls"), token_url = H.token_url("mtls"), ca_file = H.ca_file(),
  }
  local c = H.mtls_client(o.client_id, cert)
  o.client_cert, o.client_key, o.client_key_password = c.cert_file, c.key_file, c.key_password
  for k, v in pairs(overrides or {}) do
    if v == H.NIL then o[k] = nil else o[k] = v end
  end
  return o, c
end


-- A client assertion crafted by spec/support/standin/make_jwt.py (ducky never makes a
-- bad one): t = { key = "rsa" (stand-in key name) or key_file, client_id, aud,
-- alg, kid, iat_in, exp_in (seconds from now), jti, claims, header (tables
-- merged over the defaults; cjson.null removes), and mistakes: sign_alg (other
-- than the header's alg), pss_salt = "max", ecdsa_der }
function H.make_jwt(t)
  local args = { "/usr/bin/python3 spec/support/standin/make_jwt.py",
    "--key", shell_quote(t.key_file or H.jwt_key(t.key or "rsa").private_key_file),
    "--client-id", shell_quote(t.client_id), "--aud", shell_quote(t.aud) }
  local function opt(name, v) if v ~= nil then args[#args + 1] = name .. "=" .. shell_quote(v) end end
  opt("--alg", t.alg); opt("--kid", t.kid); opt("--iat-in", t.iat_in); opt("--exp-in", t.exp_in)
  opt("--jti", t.jti); opt("--pss-salt", t.pss_salt); opt("--sign-alg", t.sign_alg)
  opt("--claims", t.claims and cjson.encode(t.claims)); opt("--header", t.header and cjson.encode(t.header))
  if t.ecdsa_der then args[#args + 1] = "--ecdsa-der" end
  local out, code = H.run(H.CLEAN_ENV .. table.concat(args, " "))
  assert(code == 0, "make_jwt.py failed: " .. out)
  return (out:gsub("%s+$", ""))
end

local function form_encode(fields)
  local keys, parts = {}, {}
  for k in pairs(fields) do keys[#keys + 1] = k end
  table.sort(keys)
  for _, k in ipairs(keys) do
    local v = tostring(fields[k]):gsub("[^%w%-%._~]", function(ch) return ("%%%02X"):format(ch:byte()) end)
    parts[#parts + 1] = k .. "=" .. v
  end
  return table.concat(parts, "&")
end

-- POSTs a form-encoded token request to the stand-in's plain HTTP listener
-- (grant_type and audience added unless given); returns status, decoded answer.
function H.post_token(fields)
  local f = { grant_type = "client_credentials", audience = H.audience() }
  for k, v in pairs(fields) do f[k] = v end
  local data, out = form_encode(f), {}
  local _, code = http.request {
    url = H.token_url("http"), method = "POST", sink = ltn12.sink.table(out),
    source = ltn12.source.string(data),
    headers = { ["content-type"] = "application/x-www-form-urlencoded", ["content-length"] = #data },
  }
  local ok, json = pcall(cjson.decode, table.concat(out))
  return code, ok and ints(json) or table.concat(out)
end

-- A private_key_jwt token request for `assertion` (H.post_token's result)
function H.post_assertion(client_id, assertion)
  return H.post_token {
    client_id = client_id, client_assertion = assertion,
    client_assertion_type = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
  }
end

function H.new_id(prefix)
  id_counter = id_counter + 1
  return string.format("%s-%d-%x-%x%04x", prefix or "client", id_counter, my_pid(), os.time(),
    math.random(0, 0xffff))
end

function H.secret(id) return "secret-" .. id end

function H.opts(overrides)
  local id = H.new_id()
  local o = {
    client_id = id, client_secret = H.secret(id),
    base_url = H.base_url(), token_url = H.token_url(), audience = H.audience(),
    token_cache = false, retries = 0, timeout = 5,
  }
  for k, v in pairs(overrides or {}) do
    if v == H.NIL then o[k] = nil else o[k] = v end
  end
  return o
end

-- Moves ducky's clocks (in-process deadlines and the wall clock it reads) by
-- `seconds`; the suite's builds have the hook (make check builds with
-- TEST_HOOKS=1), release builds never do. A spec that moves time puts it back
-- with H.reset_clock() when done.
local clock_shift = 0
function H.shift_clock(seconds)
  local hooks = require("ducky")._test
  assert(hooks, "ducky._test is missing: run the suite on a TEST_HOOKS=1 build (make check)")
  clock_shift = clock_shift + seconds
  return hooks.shift_clock(seconds)
end

function H.reset_clock()
  if clock_shift ~= 0 then H.shift_clock(-clock_shift) end
  H.fix_jitter(nil)
end

-- Every back-off step after a failed exchange becomes this fraction of its cap
-- (nil: random again, as H.reset_clock leaves it), so a spec knows when the
-- next try may go.
function H.fix_jitter(fraction)
  local hooks = require("ducky")._test
  if hooks then hooks.fix_jitter(fraction) end
end

-- The seconds ducky's clocks are ahead (what H.shift_clock moved them).
function H.clock_offset()
  return clock_shift
end

-- The longest back-off step after a failed token exchange (DESIGN, token rule 6):
-- moving the clock this far lets the next call try again.
H.BACKOFF_CAP = 30

-- every string reachable from v: keys, values, tostring of tables with __tostring
function H.strings_of(v, out, seen)
  out, seen = out or {}, seen or {}
  local t = type(v)
  if t == "string" then
    out[#out + 1] = v
  elseif t == "number" or t == "boolean" then
    out[#out + 1] = tostring(v)
  elseif t == "table" and not seen[v] then
    seen[v] = true
    local mt = getmetatable(v)
    if mt and mt.__tostring then out[#out + 1] = tostring(v) end
    for k, x in pairs(v) do
      H.strings_of(k, out, seen)
      H.strings_of(x, out, seen)
    end
  end
  return out
end

-- res, err as a call returned them: no res, and err a ducky.error of `kind`
-- with a message.
function H.assert_error(res, err, kind)
  local ducky = require("ducky")
  assert(res == nil, "expected a " .. tostring(kind) .. " error, got an answer")
  assert(ducky.is_error(err), "expected a ducky.error, got " .. tostring(err))
  assert(err.kind == kind, ("expected a %s error, got %s"):format(tostring(kind), tostring(err)))
  assert(type(err.message) == "string" and type(tostring(err)) == "string", "no message")
end

-- The first of `texts` that holds one of `forms` (plain text; empty forms
-- ignored), as a readable line; nil when none does.
function H.find_leak(texts, forms)
  for _, s in ipairs(texts) do
    for _, f in ipairs(forms) do
      if #f > 0 and s:find(f, 1, true) then return ("%q holds %q"):format(s:sub(1, 300), f:sub(1, 80)) end
    end
  end
  return nil
end

-- the events of a log list named name, in order
function H.events_named(events, name)
  local out = {}
  for _, ev in ipairs(events) do
    if ev.event == name then out[#out + 1] = ev end
  end
  return out
end

return H
