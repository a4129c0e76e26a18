-- Fault matrix rows: a hostile world (issue 13): servers that quote the secret
-- back, send control characters, huge or odd headers, numbers that are not
-- JSON, oversized tokens; methods that are not retried once sent
-- (spec/support/model/fault_matrix.lua says what a row holds).
local H = require("spec.helpers")
local K = require("spec.support.model.fault_kit")

local TOKEN, RETRY_NOW = K.TOKEN, K.RETRY_NOW
local token_fault, token_answer, api_fault = K.token_fault, K.token_answer, K.api_fault

local rows = {}
local row = K.collector(rows)

-- no byte below 0x20 and no DEL
local function assert_clean(assert, line)
  assert.is_nil(line:find("[%z\1-\31\127]"), "control byte in " .. ("%q"):format(line:sub(1, 300)))
end

local function assert_no_forms(assert, ctx, text, what)
  local forms = K.sent_forms(ctx.opts.client_id, ctx.opts.client_secret)
  for _, name in ipairs(K.FORM_NAMES) do
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
    local f = K.sent_forms(ctx.opts.client_id, ctx.opts.client_secret)
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

row {
  name = "token rate-limit headers quoting the secret", where = "token endpoint",
  fault = "a real token; `x-ratelimit-remaining` and `auth0-client-quota-limit` hold the secret",
  outcome = "200; `stats().rate_limit` keeps numbers only (`x-ratelimit-limit` 30), the others absent",
  setup = function(ctx)
    local secret = K.header_bytes(ctx.opts.client_secret)
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
  check = K.retry_after_at_least(30),
}

row {
  name = "API Retry-After of 400 digits", where = "API",
  fault = "503, `Retry-After` 400 digits",
  outcome = "`http`, status 503 at once: 1 attempt, `retry_after` at least `max_retry_after`",
  setup = api_fault { status = 503, times = 3, headers = { ["Retry-After"] = DIGITS_400 } },
  expect = { kind = "http", status = 503, attempts = 1, retries = 0, exchanges = 1, api_requests = 1,
    faults_left = 2 },
  check = K.retry_after_at_least(30),
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

return rows
