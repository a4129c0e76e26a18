-- Fault matrix rows: the token endpoint (spec/support/model/fault_matrix.lua
-- says what a row holds).
local K = require("spec.support.model.fault_kit")

local RETRY_NOW = K.RETRY_NOW
local token_fault, token_answer, lifetime, events_named = K.token_fault, K.token_answer, K.lifetime,
  K.events_named
local took_under = K.took_under
local TOKEN = K.TOKEN

local rows = {}
local row = K.collector(rows)

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
  check = took_under(0.9),
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

-- the secret goes in the request body (json, form) or its Authorization line
-- (basic): a followed 307 or 308 would send it again, to wherever Location says
row {
  name = "token redirect to another host", where = "token endpoint",
  fault = "307 to `http://127.0.0.1:<another port>/oauth/token`",
  outcome = "not followed: `http`, status 307; 1 attempt, no exchange; the other host receives nothing",
  setup = function(ctx)
    K.other_host(ctx, TOKEN)
    token_fault { status = 307, headers = { Location = ctx.redirect_to }, body = "" }(ctx)
  end,
  after = K.other_host_done,
  expect = { kind = "http", status = 307, attempts = 1, retries = 0, exchanges = 0, api_requests = 0 },
  check = function(ctx, assert)
    assert.is_nil(ctx.other_conn, "the redirect was followed to the other host")
    assert.equals(1, ctx.stats.requests_by_path[TOKEN])
  end,
}

return rows
