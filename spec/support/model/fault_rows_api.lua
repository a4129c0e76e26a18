-- Fault matrix rows: the API and TLS (spec/support/model/fault_matrix.lua says
-- what a row holds).
local H = require("spec.helpers")
local K = require("spec.support.model.fault_kit")

local TOKEN, RETRY_NOW = K.TOKEN, K.RETRY_NOW
local api_fault, http_date, retry_events, events_named = K.api_fault, K.http_date, K.retry_events,
  K.events_named
local took_under = K.took_under

local rows = {}
local row = K.collector(rows)

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
  check = took_under(0.5),
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
  check = took_under(0.9),
}

row {
  name = "API slow body", where = "API",
  fault = "half the body, 1 s pause, the rest; `timeout` 0.5 s",
  outcome = "`timeout` after ~0.5 s; 1 attempt",
  opts = { timeout = 0.5 },
  setup = api_fault { body_delay = 1 },
  expect = { kind = "timeout", attempts = 1, retries = 0, exchanges = 1, api_requests = 1 },
  check = took_under(0.9),
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
  setup = function(ctx) K.other_host(ctx, "/v3/echo") end,
  call = function(ctx)
    return ctx.client:request("GET", "/redirect", { query = { to = ctx.redirect_to } })
  end,
  after = K.other_host_done,
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

return rows
