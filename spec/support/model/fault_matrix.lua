-- The fault matrix: every fault the stand-in can inject, where, and the exact
-- outcome the contract (README "Errors", "Retries", "Token cache") promises.
-- One place for the rows; spec/faults_spec.lua asserts each outcome,
-- spec/secrets_spec.lua replays every scenario hunting for leaked secrets, and
-- doc/fault-matrix.md is M.markdown() (faults_spec checks they agree).
--
--   local M = require("spec.support.model.fault_matrix")
--   for _, row in ipairs(M.rows) do local ctx = M.run(row, { id_prefix = "x" }) end
--
-- A row:
--   name     unique, short
--   where    "token endpoint" | "API" | "TLS"
--   fault    what is injected (Markdown)
--   outcome  the promised result (Markdown)
--   opts     client option overrides (table, or function(ctx) -> table), on top of
--            H.opts{ retries = 2, timeout = 5 }
--   setup    function(ctx) injecting faults (ctx.id: this row's fresh client id)
--   call     function(ctx) -> res, err (default: ctx.client:ping_protected())
--   expect   { status, kind, code, attempts, retries, exchanges, api_requests,
--              retry_after, faults_left (default 0) }; kind = nil means success
--   check    optional function(ctx, assert) for row-specific assertions
--   needs    optional "ipv6": pending when the stand-in has no [::1] listener
local H = require("spec.helpers")
local ducky = require("ducky")
local socket = require("socket")
local mime = require("mime")

local M = {}

local TOKEN = "/oauth/token"
local PROTECTED = "/v3/ping/protected"
local RETRY_NOW = { ["Retry-After"] = "0" }

M.TOKEN_PATH = TOKEN
M.PROTECTED_PATH = PROTECTED

-- ------------------------------------------------------------------------
-- fault builders

-- a fault on the token endpoint for this row's client only
local function token_fault(t)
  return function(ctx)
    local f = { path = TOKEN, client_id = ctx.id }
    for k, v in pairs(t) do f[k] = v end
    H.fault(f)
  end
end

-- a 200 token answer carrying `body` (a JSON string, or a table to encode)
local function token_answer(body)
  return token_fault { status = 200, body = body }
end

-- a fault on /v3/ping/protected for requests carrying this row's token
local function api_fault(t)
  return function(ctx)
    local f = { path = PROTECTED, client_id = ctx.id }
    for k, v in pairs(t) do f[k] = v end
    H.fault(f)
  end
end

local function lifetime(value)
  return function(ctx) H.config(ctx.id, value) end
end

local function http_date(t)
  return os.date("!%a, %d %b %Y %H:%M:%S GMT", t)
end

local function retry_events(ctx)
  local out = {}
  for _, ev in ipairs(ctx.events) do
    if ev.event == "retry" then out[#out + 1] = ev end
  end
  return out
end
M.retry_events = retry_events

local function events_named(ctx, name)
  local out = {}
  for _, ev in ipairs(ctx.events) do
    if ev.event == name then out[#out + 1] = ev end
  end
  return out
end
M.events_named = events_named

-- ------------------------------------------------------------------------
-- the rows

local rows = {}
M.rows = rows

local function row(t)
  t.expect = t.expect or {}
  rows[#rows + 1] = t
end

-- token endpoint: refusals (never retried, never an exchange, the API never asked)
for _, r in ipairs {
  { 400, "invalid_request", "Missing grant" },
  { 401, "invalid_client", "Client authentication failed" },
  { 403, "access_denied", "Service not enabled within domain" },
} do
  local status, code, desc = r[1], r[2], r[3]
  row {
    name = "token " .. status, where = "token endpoint",
    fault = ("%d `{\"error\":\"%s\"}`"):format(status, code),
    outcome = ("`auth`, status %d, `code` %q, `description`; 1 attempt, no exchange, API not called")
      :format(status, code),
    setup = token_fault { status = status, body = { error = code, error_description = desc } },
    expect = { kind = "auth", status = status, code = code, description = desc, attempts = 1,
      retries = 0, exchanges = 0, api_requests = 0 },
  }
end

-- token endpoint: retryable statuses, failing on every attempt
for _, status in ipairs { 408, 429, 500, 502, 503, 504 } do
  row {
    name = "token " .. status, where = "token endpoint",
    fault = status .. " on every attempt, `Retry-After: 0`",
    outcome = ("`http`, status %d after 3 attempts (2 retries), no exchange"):format(status),
    setup = token_fault { status = status, times = 3, headers = RETRY_NOW,
      body = { error = "temporarily_unavailable", error_description = "try later" } },
    expect = { kind = "http", status = status, attempts = 3, retries = 2, exchanges = 0,
      api_requests = 0 },
  }
end

-- token endpoint: answers that are not a valid token
local bad_answers = {
  { "malformed JSON", "200, body `{\"access_token\":`", '{"access_token":' },
  { "not an object", "200, body `[1,2]`", "[1,2]" },
  { "access_token missing", "200 without `access_token`", { token_type = "Bearer", expires_in = 3600 } },
  { "access_token a number", "200, `access_token` 12345",
    { access_token = 12345, token_type = "Bearer", expires_in = 3600 } },
  { "access_token empty", "200, `access_token` \"\"",
    { access_token = "", token_type = "Bearer", expires_in = 3600 } },
  { "token_type missing", "200 without `token_type`", { access_token = "tok_abc", expires_in = 3600 } },
  { "token_type not Bearer", "200, `token_type` \"mac\"",
    { access_token = "tok_abc", token_type = "mac", expires_in = 3600 } },
  { "expires_in missing", "200 without `expires_in`", { access_token = "tok_abc", token_type = "Bearer" } },
  { "token with control characters", "200, `access_token` \"tok\\u0001\\r\\nX: y\"",
    '{"access_token":"tok\\u0001\\r\\nX: y","token_type":"Bearer","expires_in":3600}' },
  { "token with a space", "200, `access_token` \"tok abc\"",
    { access_token = "tok abc", token_type = "Bearer", expires_in = 3600 } },
}
for _, b in ipairs(bad_answers) do
  row {
    name = "token answer: " .. b[1], where = "token endpoint",
    fault = b[2],
    outcome = "`decode`; 1 attempt, no exchange, API not called",
    setup = token_answer(b[3]),
    expect = { kind = "decode", attempts = 1, retries = 0, exchanges = 0, api_requests = 0 },
  }
end

-- token endpoint: expires_in values (the stand-in issues a real token and counts it)
for _, e in ipairs {
  { "0", 0 }, { "negative", -5 }, { "a string", "3600" },
} do
  row {
    name = "token expires_in " .. e[1], where = "token endpoint",
    fault = ("real token, `expires_in` %s"):format(type(e[2]) == "string" and ('"' .. e[2] .. '"')
      or tostring(e[2])),
    outcome = "`decode`; 1 attempt (1 exchange made by the server), API not called",
    setup = lifetime(e[2]),
    expect = { kind = "decode", attempts = 1, retries = 0, exchanges = 1, api_requests = 0 },
  }
end

row {
  name = "token expires_in huge", where = "token endpoint",
  fault = "real token, `expires_in` 1e12",
  outcome = "accepted, lifetime capped at 365 days: the token works (200, 1 exchange)",
  setup = lifetime(1e12),
  expect = { status = 200, attempts = 1, retries = 0, exchanges = 1, api_requests = 1 },
  check = function(ctx, assert)
    local tok, left = ctx.client:token()
    assert.matches("^tok_%x+$", tok)
    assert.is_true(left <= 365 * 86400 and left > 365 * 86400 - 60, tostring(left))
    local ev = events_named(ctx, "token")[1]
    assert.equals("exchange", ev.source)
    assert.is_true(ev.seconds_left <= 365 * 86400, tostring(ev.seconds_left))
  end,
}

row {
  name = "token slow", where = "token endpoint",
  fault = "answer delayed 1 s, `timeout` 0.5 s",
  outcome = "`timeout` after ~0.5 s; 1 attempt, no exchange",
  opts = { timeout = 0.5 },
  setup = token_fault { status = 200, delay = 1,
    body = { access_token = "tok_late", token_type = "Bearer", expires_in = 3600 } },
  expect = { kind = "timeout", attempts = 1, retries = 0, exchanges = 0, api_requests = 0 },
  check = function(ctx, assert)
    assert.is_true(ctx.elapsed < 0.9, "took " .. ctx.elapsed)
  end,
}

row {
  name = "token connection reset", where = "token endpoint",
  fault = "connection closed before the headers, every attempt",
  outcome = "`network`, 3 attempts (2 retries), no exchange",
  setup = token_fault { drop = "before_headers", times = 3 },
  expect = { kind = "network", attempts = 3, retries = 2, exchanges = 0, api_requests = 0 },
}

row {
  name = "token truncated body", where = "token endpoint",
  fault = "headers, half the body, close; every attempt",
  outcome = "`network`, 3 attempts (2 retries), no exchange",
  setup = token_fault { drop = "mid_body", times = 3 },
  expect = { kind = "network", attempts = 3, retries = 2, exchanges = 0, api_requests = 0 },
}

row {
  name = "token huge body", where = "token endpoint",
  fault = "5,000-byte answer, `max_body` 1,000",
  outcome = "`limit`; 1 attempt, no exchange",
  opts = { max_body = 1000 },
  setup = token_fault { huge = 5000 },
  expect = { kind = "limit", attempts = 1, retries = 0, exchanges = 0, api_requests = 0 },
}

-- API

row {
  name = "API 401 once", where = "API",
  fault = "401 on the first request",
  outcome = "token dropped, 1 new exchange, replayed once: 200; 2 attempts, 2 exchanges, 1 `replay_401`",
  setup = api_fault { status = 401, body = { error = "invalid_token", error_description = "Token expired" } },
  expect = { status = 200, attempts = 2, retries = 0, exchanges = 2, api_requests = 2 },
  check = function(ctx, assert)
    assert.equals(1, #events_named(ctx, "replay_401"))
    assert.equals(1, ctx.client:stats().replays_401)
  end,
}

row {
  name = "API 401 always", where = "API",
  fault = "401 on the request and its replay",
  outcome = "`auth`, status 401 after one refresh and one replay; 2 attempts, 2 exchanges",
  setup = api_fault { status = 401, times = 2,
    body = { error = "invalid_token", error_description = "Token revoked" } },
  expect = { kind = "auth", status = 401, attempts = 2, retries = 0, exchanges = 2, api_requests = 2 },
  check = function(ctx, assert)
    assert.equals(1, #events_named(ctx, "replay_401"))
    assert.equals("invalid_token", ctx.err.json.error)
  end,
}

row {
  name = "API 403", where = "API",
  fault = "403",
  outcome = "`http`, status 403; no refresh: 1 attempt, 1 exchange",
  setup = api_fault { status = 403, body = { error = "forbidden" } },
  expect = { kind = "http", status = 403, attempts = 1, retries = 0, exchanges = 1, api_requests = 1 },
}

row {
  name = "API 404", where = "API",
  fault = "GET of a route that does not exist",
  outcome = "`http`, status 404 with the server's JSON; 1 attempt",
  call = function(ctx) return ctx.client:request("GET", "/no/such/route") end,
  expect = { kind = "http", status = 404, attempts = 1, retries = 0, exchanges = 1 },
  check = function(ctx, assert)
    assert.equals("not_found", ctx.err.json.error)
    assert.equals(1, ctx.stats.requests_by_path["/v3/no/such/route"])
  end,
}

for _, status in ipairs { 408, 429, 500, 502, 503, 504 } do
  row {
    name = "API " .. status, where = "API",
    fault = status .. " on every attempt, `Retry-After: 0`",
    outcome = ("`http`, status %d after 3 attempts (2 retries), 1 exchange"):format(status),
    setup = api_fault { status = status, times = 3, headers = RETRY_NOW },
    expect = { kind = "http", status = status, attempts = 3, retries = 2, exchanges = 1, api_requests = 3 },
    check = function(ctx, assert)
      for _, ev in ipairs(retry_events(ctx)) do
        assert.equals(tostring(status), ev.reason)
        assert.equals(0, ev.wait)
      end
    end,
  }
end

row {
  name = "API 429 Retry-After date", where = "API",
  fault = "429 on every attempt, `Retry-After` an HTTP date 1 s ahead",
  outcome = "`http`, status 429 after 3 attempts, each wait at most 1 s",
  setup = function(ctx)
    api_fault { status = 429, times = 3, headers = { ["Retry-After"] = http_date(os.time() + 1) } }(ctx)
  end,
  expect = { kind = "http", status = 429, attempts = 3, retries = 2, exchanges = 1, api_requests = 3 },
  check = function(ctx, assert)
    for _, ev in ipairs(retry_events(ctx)) do
      assert.is_true(ev.wait >= 0 and ev.wait <= 1.05, tostring(ev.wait))
    end
    assert.is_true(ctx.elapsed < 2.5, "took " .. ctx.elapsed)
  end,
}

row {
  name = "API 429 Retry-After too long", where = "API",
  fault = "429, `Retry-After: 100` (over `max_retry_after` 30)",
  outcome = "`http`, status 429 at once: 1 attempt, `retry_after` 100",
  setup = api_fault { status = 429, headers = { ["Retry-After"] = "100" } },
  expect = { kind = "http", status = 429, attempts = 1, retries = 0, exchanges = 1, api_requests = 1,
    retry_after = 100 },
  check = function(ctx, assert)
    assert.is_true(ctx.elapsed < 0.5, "took " .. ctx.elapsed)
  end,
}

row {
  name = "API dropped mid-body", where = "API",
  fault = "headers, half the body, close; every attempt",
  outcome = "`network`, 3 attempts (2 retries)",
  setup = api_fault { drop = "mid_body", times = 3 },
  expect = { kind = "network", attempts = 3, retries = 2, exchanges = 1, api_requests = 3 },
}

row {
  name = "API slow headers", where = "API",
  fault = "answer delayed 1 s, `timeout` 0.5 s",
  outcome = "`timeout` after ~0.5 s; 1 attempt",
  opts = { timeout = 0.5 },
  setup = api_fault { delay = 1 },
  expect = { kind = "timeout", attempts = 1, retries = 0, exchanges = 1, api_requests = 1 },
  check = function(ctx, assert)
    assert.is_true(ctx.elapsed < 0.9, "took " .. ctx.elapsed)
  end,
}

row {
  name = "API slow body", where = "API",
  fault = "half the body, 1 s pause, the rest; `timeout` 0.5 s",
  outcome = "`timeout` after ~0.5 s; 1 attempt",
  opts = { timeout = 0.5 },
  setup = api_fault { body_delay = 1 },
  expect = { kind = "timeout", attempts = 1, retries = 0, exchanges = 1, api_requests = 1 },
  check = function(ctx, assert)
    assert.is_true(ctx.elapsed < 0.9, "took " .. ctx.elapsed)
  end,
}

row {
  name = "API body over max_body", where = "API",
  fault = "5,000-byte answer, `max_body` 1,000",
  outcome = "`limit`; 1 attempt",
  opts = { max_body = 1000 },
  setup = api_fault { huge = 5000 },
  expect = { kind = "limit", attempts = 1, retries = 0, exchanges = 1, api_requests = 1 },
}

row {
  name = "API invalid JSON", where = "API",
  fault = "200, `application/json`, body `{not json`",
  outcome = "`decode`, status 200, `body` kept; 1 attempt",
  setup = api_fault { status = 200, body = "{not json", content_type = "application/json" },
  expect = { kind = "decode", status = 200, attempts = 1, retries = 0, exchanges = 1, api_requests = 1 },
  check = function(ctx, assert)
    assert.equals("{not json", ctx.err.body)
    assert.is_nil(ctx.err.json)
  end,
}

row {
  name = "API redirect to another host", where = "API",
  fault = "302 to `http://127.0.0.1:<another port>/v3/echo`",
  outcome = "not followed: `http`, status 302, `location` kept; the other host receives nothing",
  setup = function(ctx)
    -- a listener on another port: a followed redirect would connect here
    ctx.listener = assert(socket.bind("127.0.0.1", 0))
    ctx.listener:settimeout(0)
    local _, port = ctx.listener:getsockname()
    ctx.redirect_to = ("http://127.0.0.1:%d/v3/echo"):format(port)
  end,
  call = function(ctx)
    return ctx.client:request("GET", "/redirect", { query = { to = ctx.redirect_to } })
  end,
  after = function(ctx)
    socket.sleep(0.1) -- a follow-up connection would have arrived by now
    ctx.other_conn = ctx.listener:accept()
    if ctx.other_conn then ctx.other_conn:close() end
    ctx.listener:close()
  end,
  expect = { kind = "http", status = 302, attempts = 1, retries = 0, exchanges = 1 },
  check = function(ctx, assert)
    assert.is_nil(ctx.other_conn, "the redirect was followed to the other host")
    assert.equals(ctx.redirect_to, ctx.err.headers.location)
    assert.equals(1, ctx.stats.requests_by_path["/v3/redirect"])
    assert.is_nil(ctx.stats.requests_by_path["/v3/echo"])
    assert.equals(1, ctx.stats.requests_by_path[TOKEN])
  end,
}

row {
  name = "API gzip body", where = "API",
  fault = "`Content-Encoding: gzip`",
  outcome = "decoded: 200, `json.message` \"pong\"",
  setup = api_fault { gzip = true },
  expect = { status = 200, attempts = 1, retries = 0, exchanges = 1, api_requests = 1 },
  check = function(ctx, assert)
    assert.equals("gzip", ctx.res.headers["content-encoding"])
    assert.equals("pong", ctx.res.json.message)
  end,
}

row {
  name = "API chunked body", where = "API",
  fault = "`Transfer-Encoding: chunked`, 3 chunks",
  outcome = "200, body whole",
  setup = api_fault { chunked = true },
  expect = { status = 200, attempts = 1, retries = 0, exchanges = 1, api_requests = 1 },
  check = function(ctx, assert)
    assert.equals("chunked", ctx.res.headers["transfer-encoding"])
    assert.equals("pong", ctx.res.json.message)
    assert.is_true(ctx.res.json.ready)
  end,
}

row {
  name = "API HTTP/1.0 answer", where = "API",
  fault = "`HTTP/1.0` status line, no Content-Length, close",
  outcome = "200, body whole",
  setup = api_fault { http10 = true },
  expect = { status = 200, attempts = 1, retries = 0, exchanges = 1, api_requests = 1 },
  check = function(ctx, assert)
    assert.equals("pong", ctx.res.json.message)
    assert.is_true(ctx.res.json.ready)
  end,
}

row {
  name = "API over IPv6 loopback", where = "API",
  fault = "`base_url` `http://[::1]:<port>/v3`",
  outcome = "200 (pending when the host has no IPv6)",
  needs = "ipv6",
  opts = function() return { base_url = H.base_url("ipv6") } end,
  expect = { status = 200, attempts = 1, retries = 0, exchanges = 1, api_requests = 1 },
  check = function(ctx, assert)
    assert.is_true(ctx.res.json.ready)
  end,
}

-- TLS: token endpoint and API on the same misconfigured listener; the token
-- request is the first to fail
for _, t in ipairs {
  { "untrusted CA", "https", "certificate signed by an unrelated CA (`ca_file` = other CA)",
    function() return H.other_ca_file() end },
  { "wrong host name", "wrong_host", "certificate for `wrong.invalid`", function() return H.ca_file() end },
  { "expired certificate", "expired", "certificate expired in 2020", function() return H.ca_file() end },
} do
  row {
    name = "TLS " .. t[1], where = "TLS",
    fault = t[3],
    outcome = "`tls` with the curl code; 1 attempt (not retried), no exchange, API not called",
    opts = function()
      return { base_url = H.base_url(t[2]), token_url = H.token_url(t[2]), ca_file = t[4]() }
    end,
    expect = { kind = "tls", attempts = 1, retries = 0, exchanges = 0, api_requests = 0 },
    check = function(ctx, assert)
      assert.is_number(ctx.err.code)
    end,
  }
end

-- ------------------------------------------------------------------------
-- a hostile world (issue 13): servers that quote the secret back, send control
-- characters, huge or odd headers, numbers that are not JSON, oversized tokens;
-- methods that are not retried once sent

-- the secret as ducky sends it: raw, JSON-escaped (without the quotes), form
-- (percent-encoded, upper-case hex, space as %20) and Basic (base64 of
-- form(client_id):form(secret))
function M.sent_forms(id, secret)
  local function form(s)
    return (s:gsub("[^%w%-%._~]", function(ch) return ("%%%02X"):format(ch:byte()) end))
  end
  local function json(s)
    return (s:gsub('[%z\1-\31"\\]', function(ch)
      if ch == '"' or ch == "\\" then return "\\" .. ch end
      return ("\\u%04x"):format(ch:byte())
    end))
  end
  return { raw = secret, json = json(secret), form = form(secret),
    basic = (mime.b64(form(id) .. ":" .. form(secret))) }
end
M.FORM_NAMES = { "raw", "json", "form", "basic" }

-- no byte below 0x20 and no DEL
local function assert_clean(assert, line)
  assert.is_nil(line:find("[%z\1-\31\127]"), "control byte in " .. ("%q"):format(line:sub(1, 300)))
end

local function assert_no_forms(assert, ctx, text, what)
  local forms = M.sent_forms(ctx.opts.client_id, ctx.opts.client_secret)
  for _, name in ipairs(M.FORM_NAMES) do
    assert.is_nil(text:find(forms[name], 1, true), what .. " holds the secret's " .. name .. " form")
  end
end

row {
  name = "API control characters", where = "API",
  fault = "400, `X-Request-Id` ESC `[31mred` BEL, `error_description` `a` CR `b` ESC `[2Jc`",
  outcome = "`http`, status 400; `tostring(err)` shows them as `\\x1b`, `\\x0d`, `\\x07`; "
    .. "`request_id` and `description` raw; 1 attempt",
  setup = api_fault { status = 400, headers = { ["X-Request-Id"] = "\27[31mred\7" },
    body = { error = "x", error_description = "a\rb\27[2Jc" } },
  expect = { kind = "http", status = 400, attempts = 1, retries = 0, exchanges = 1, api_requests = 1 },
  check = function(ctx, assert)
    local line = tostring(ctx.err)
    assert_clean(assert, line)
    assert.truthy(line:find(": a\\x0db\\x1b[2Jc", 1, true), line)
    assert.truthy(line:find("\\x1b[31mred\\x07", 1, true), line)
    assert.equals("\27[31mred\7", ctx.err.request_id)
    assert.equals("a\rb\27[2Jc", ctx.err.description)
  end,
}

row {
  name = "token control characters", where = "token endpoint",
  fault = "400 `{\"error\":\"invalid_request\"}`, `error_description` `a` CR `b` ESC `[2Jc`",
  outcome = "`auth`, status 400; `tostring(err)` escaped, `description` raw; 1 attempt, no exchange",
  setup = token_fault { status = 400,
    body = { error = "invalid_request", error_description = "a\rb\27[2Jc" } },
  expect = { kind = "auth", status = 400, code = "invalid_request", attempts = 1, retries = 0,
    exchanges = 0, api_requests = 0 },
  check = function(ctx, assert)
    assert_clean(assert, tostring(ctx.err))
    assert.truthy(tostring(ctx.err):find("a\\x0db\\x1b[2Jc", 1, true), tostring(ctx.err))
    assert.equals("a\rb\27[2Jc", ctx.err.description)
  end,
}

row {
  name = "token 401 quoting the secret", where = "token endpoint",
  fault = "401 `invalid_client` whose `error_description` quotes the secret raw, JSON-escaped, "
    .. "form-encoded and as Basic",
  outcome = "`auth`, status 401; every form masked with `*` in `description`, the message and events; "
    .. "1 attempt, no exchange",
  setup = function(ctx)
    local f = M.sent_forms(ctx.opts.client_id, ctx.opts.client_secret)
    H.fault { path = TOKEN, client_id = ctx.id, status = 401, body = { error = "invalid_client",
      error_description = ("raw %s json %s form %s basic %s"):format(f.raw, f.json, f.form, f.basic) } }
  end,
  expect = { kind = "auth", status = 401, code = "invalid_client", attempts = 1, retries = 0, exchanges = 0,
    api_requests = 0 },
  check = function(ctx, assert)
    assert_no_forms(assert, ctx, ctx.err.description, "err.description")
    assert_no_forms(assert, ctx, tostring(ctx.err), "tostring(err)")
    assert.matches("^raw %*+ json %*+ form %*+ basic %*+$", ctx.err.description)
  end,
}

-- s as a header value the stand-in writes byte for byte: it encodes headers in
-- latin-1, so each byte >= 0x80 goes to it as the code point of that value
function M.header_bytes(s)
  return (s:gsub("[\128-\255]", function(ch)
    local v = ch:byte()
    return string.char(0xC0 + math.floor(v / 64), 0x80 + v % 64)
  end))
end

row {
  name = "token rate-limit headers quoting the secret", where = "token endpoint",
  fault = "a real token; `x-ratelimit-remaining` and `auth0-client-quota-limit` hold the secret",
  outcome = "200; `stats().rate_limit` keeps numbers only (`x-ratelimit-limit` 30), the others absent",
  setup = function(ctx)
    local secret = M.header_bytes(ctx.opts.client_secret)
    token_fault { headers = { ["x-ratelimit-remaining"] = secret,
      ["auth0-client-quota-limit"] = secret } }(ctx)
  end,
  expect = { status = 200, attempts = 1, retries = 0, exchanges = 1, api_requests = 1 },
  check = function(ctx, assert)
    local rl = ctx.client:stats().rate_limit
    assert.equals(30, rl["x-ratelimit-limit"])
    assert.equals("number", type(rl["x-ratelimit-limit"]))
    assert.is_nil(rl["x-ratelimit-remaining"])
    assert.is_nil(rl["auth0-client-quota-limit"])
  end,
}

local DIGITS_400 = string.rep("9", 400)

row {
  name = "token Retry-After of 400 digits", where = "token endpoint",
  fault = "503, `Retry-After` 400 digits",
  outcome = "`http`, status 503 at once: 1 attempt, `retry_after` at least `max_retry_after`",
  setup = token_fault { status = 503, times = 3, headers = { ["Retry-After"] = DIGITS_400 },
    body = { error = "temporarily_unavailable" } },
  expect = { kind = "http", status = 503, attempts = 1, retries = 0, exchanges = 0, api_requests = 0,
    faults_left = 2 },
  check = function(ctx, assert)
    assert.is_true(type(ctx.err.retry_after) == "number" and ctx.err.retry_after >= 30,
      tostring(ctx.err.retry_after))
  end,
}

row {
  name = "API Retry-After of 400 digits", where = "API",
  fault = "503, `Retry-After` 400 digits",
  outcome = "`http`, status 503 at once: 1 attempt, `retry_after` at least `max_retry_after`",
  setup = api_fault { status = 503, times = 3, headers = { ["Retry-After"] = DIGITS_400 } },
  expect = { kind = "http", status = 503, attempts = 1, retries = 0, exchanges = 1, api_requests = 1,
    faults_left = 2 },
  check = function(ctx, assert)
    assert.is_true(type(ctx.err.retry_after) == "number" and ctx.err.retry_after >= 30,
      tostring(ctx.err.retry_after))
  end,
}

row {
  name = "API HEAD over max_body", where = "API",
  fault = "`HEAD`, answer announcing `Content-Length: 5000`, `max_body` 1,000",
  outcome = "200 with an empty body (a HEAD answer has none); 1 attempt",
  opts = { max_body = 1000 },
  setup = api_fault { huge = 5000 },
  call = function(ctx) return ctx.client:request("HEAD", "/ping/protected") end,
  expect = { status = 200, attempts = 1, retries = 0, exchanges = 1, api_requests = 1 },
  check = function(ctx, assert)
    assert.equals("", ctx.res.body)
    assert.equals("5000", ctx.res.headers["content-length"])
  end,
}

local function header_limit(ctx, assert)
  assert.truthy(ctx.err.message:lower():find("header", 1, true), ctx.err.message)
end

local HEADERS_400K = {}
for i = 1, 100 do HEADERS_400K[i] = string.rep("h", 4000) end

row {
  name = "API header of 10 MB", where = "API",
  fault = "200 with one 10 MB header",
  outcome = "`limit`, the message naming the headers; 1 attempt (not retried)",
  setup = api_fault { status = 200, body = "{}", times = 3,
    headers = { ["X-Big"] = string.rep("a", 10000000) } },
  expect = { kind = "limit", attempts = 1, retries = 0, exchanges = 1, api_requests = 1, faults_left = 2 },
  check = header_limit,
}

row {
  name = "API 400 KB of headers", where = "API",
  fault = "200 with 100 headers of 4,000 bytes",
  outcome = "`limit`, the message naming the headers; 1 attempt (not retried)",
  setup = api_fault { status = 200, body = "{}", times = 3, headers = { ["X-Many"] = HEADERS_400K } },
  expect = { kind = "limit", attempts = 1, retries = 0, exchanges = 1, api_requests = 1, faults_left = 2 },
  check = header_limit,
}

row {
  name = "token 400 KB of headers", where = "token endpoint",
  fault = "200 with 100 headers of 4,000 bytes",
  outcome = "`limit`, the message naming the headers; 1 attempt (not retried), API not called",
  setup = token_fault { status = 200, times = 3, headers = { ["X-Many"] = HEADERS_400K },
    body = { access_token = "tok_headers", token_type = "Bearer", expires_in = 3600 } },
  expect = { kind = "limit", attempts = 1, retries = 0, exchanges = 0, api_requests = 0, faults_left = 2 },
  check = header_limit,
}

row {
  name = "token answer: expires_in 0x10", where = "token endpoint",
  fault = "200, `\"expires_in\":0x10` (hexadecimal is not JSON)",
  outcome = "`decode`; 1 attempt, no exchange, API not called",
  setup = token_answer('{"access_token":"tok_hex","token_type":"Bearer","expires_in":0x10}'),
  expect = { kind = "decode", attempts = 1, retries = 0, exchanges = 0, api_requests = 0 },
}

row {
  name = "token answer: access_token over 16,384 bytes", where = "token endpoint",
  fault = "200, `access_token` of 16,385 bytes",
  outcome = "`decode` naming the limit (16384); 1 attempt, no exchange, API not called",
  setup = token_answer { access_token = "tok_" .. string.rep("Z", 16381), token_type = "Bearer",
    expires_in = 3600 },
  expect = { kind = "decode", attempts = 1, retries = 0, exchanges = 0, api_requests = 0 },
  check = function(ctx, assert)
    assert.truthy(ctx.err.message:find("16384", 1, true), ctx.err.message)
  end,
}

row {
  name = "API JSON with 0x10", where = "API",
  fault = "200, `application/json`, body `{\"n\":0x10}`",
  outcome = "`decode`, status 200, `body` kept; 1 attempt",
  setup = api_fault { status = 200, body = '{"n":0x10}', content_type = "application/json" },
  expect = { kind = "decode", status = 200, attempts = 1, retries = 0, exchanges = 1, api_requests = 1 },
  check = function(ctx, assert)
    assert.equals('{"n":0x10}', ctx.err.body)
  end,
}

-- retried after sending only for GET (the API 503 row), HEAD, PUT, DELETE, OPTIONS
for _, m in ipairs { "LOCK", "MKCOL", "PURGE", "POST", "PATCH", "HEAD", "PUT", "DELETE", "OPTIONS" } do
  local again = m == "HEAD" or m == "PUT" or m == "DELETE" or m == "OPTIONS"
  row {
    name = "API " .. m .. " 503", where = "API",
    fault = ("`%s`, 503 on every attempt, `Retry-After: 0`"):format(m),
    outcome = again and "`http`, status 503 after 3 attempts (2 retries)"
      or "`http`, status 503 at once: 1 attempt (the request was sent)",
    setup = api_fault { status = 503, times = 3, headers = RETRY_NOW },
    call = function(ctx) return ctx.client:request(m, "/ping/protected") end,
    expect = { kind = "http", status = 503, attempts = again and 3 or 1, retries = again and 2 or 0,
      exchanges = 1, api_requests = again and 3 or 1, faults_left = again and 0 or 2 },
  }
end

-- ------------------------------------------------------------------------
-- the runner

-- extra: { id_prefix = "…", opts = { … } (more overrides), keep = true (no reset) }
-- -> ctx { row, id, opts, client, res, err, events, elapsed, stats, exchanges, skipped }
function M.run(r, extra)
  extra = extra or {}
  local ctx = { row = r, events = {} }
  if r.needs == "ipv6" and not H.has_ipv6() then
    ctx.skipped = "the stand-in has no IPv6 listener"
    return ctx
  end
  if not extra.keep then H.reset() end
  local o = H.opts { retries = 2, timeout = 5 }
  if extra.id_prefix then
    o.client_id = H.new_id(extra.id_prefix)
    o.client_secret = H.secret(o.client_id)
  end
  local over = r.opts
  if type(over) == "function" then over = over(ctx) end
  for k, v in pairs(over or {}) do o[k] = v end
  for k, v in pairs(extra.opts or {}) do o[k] = v end
  o.log = function(ev) ctx.events[#ctx.events + 1] = ev end
  ctx.id, ctx.opts = o.client_id, o
  ctx.client = ducky.client(o)
  if r.setup then r.setup(ctx) end
  local t0 = socket.gettime()
  if r.call then
    ctx.res, ctx.err = r.call(ctx)
  else
    ctx.res, ctx.err = ctx.client:ping_protected()
  end
  ctx.elapsed = socket.gettime() - t0
  if r.after then r.after(ctx) end
  ctx.stats = H.stats()
  ctx.exchanges = ctx.stats.exchanges_by_client[ctx.id] or 0
  return ctx
end

function M.is_error(v) return ducky.is_error(v) end

-- the matrix as a Markdown table (doc/fault-matrix.md)
function M.markdown()
  local out = {
    "# Fault matrix",
    "",
    "What a call (`client:ping_protected()` unless the fault says otherwise) returns when",
    "the token endpoint, the API or TLS misbehaves, with `retries = 2`. Asserted row by row",
    "by `spec/faults_spec.lua` against the local stand-in; the rows live in",
    "`spec/support/model/fault_matrix.lua`. \"Exchange\" is a token the stand-in issued.",
    "",
    "| fault | where | outcome |",
    "|---|---|---|",
  }
  for _, r in ipairs(rows) do
    out[#out + 1] = ("| %s: %s | %s | %s |"):format(r.name, r.fault, r.where, r.outcome)
  end
  return table.concat(out, "\n") .. "\n"
end

return M
