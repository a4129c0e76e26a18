-- Retries (DESIGN.md "Retries") against the local stand-in.
local H = require("spec.helpers")
local ducky = require("ducky")
local socket = require("socket")

local PING = "/v3/ping"
local ECHO = "/v3/echo"

local function retry_events(events)
  local out = {}
  for _, ev in ipairs(events) do
    if ev.event == "retry" then out[#out + 1] = ev end
  end
  return out
end

local function requests(path)
  return H.stats().requests_by_path[path] or 0
end

local assert_error = H.assert_error

describe("retries", function()
  before_each(function() H.reset() end)
  after_each(function() H.reset_clock() end)

  it("503 then success: attempts 2, one retry event, stats().retries", function()
    local c, events = H.client_with_log { retries = 2 }
    H.fault { path = PING, status = 503, times = 1 }
    local res, err = c:ping()
    assert.is_nil(err, err and tostring(err))
    assert.equals(200, res.status)
    assert.equals(2, res.attempts)
    assert.equals(2, requests(PING))
    local r = retry_events(events)
    assert.equals(1, #r)
    assert.equals(2, r[1].attempt)
    assert.equals("503", r[1].reason)
    assert.is_number(r[1].wait)
    assert.is_true(r[1].wait >= 0 and r[1].wait <= 0.5, tostring(r[1].wait))
    assert.equals(1, c:stats().retries)
  end)

  for _, ra in ipairs { "0", "1" } do
    it("honours Retry-After: " .. ra .. " (seconds)", function()
      local c, events = H.client_with_log { retries = 1 }
      H.fault { path = PING, status = 503, headers = { ["Retry-After"] = ra } }
      local t0 = socket.gettime()
      local res = assert(c:ping())
      local elapsed = socket.gettime() - t0
      assert.equals(2, res.attempts)
      local r = retry_events(events)
      assert.equals(1, #r)
      assert.equals(tonumber(ra), r[1].wait)
      assert.is_true(elapsed >= tonumber(ra), tostring(elapsed))
      assert.is_true(elapsed < tonumber(ra) + 0.5, tostring(elapsed))
    end)
  end

  it("honours Retry-After as an HTTP date", function()
    local c, events = H.client_with_log { retries = 1 }
    local at = os.time() + 2
    H.fault { path = PING, status = 503,
      headers = { ["Retry-After"] = os.date("!%a, %d %b %Y %H:%M:%S GMT", at) } }
    local t0 = socket.gettime()
    local res = assert(c:ping())
    local elapsed = socket.gettime() - t0
    assert.equals(2, res.attempts)
    local r = retry_events(events)
    assert.equals(1, #r)
    -- whole seconds on the wire: the wait is 1 < wait <= 2 seconds
    assert.is_true(r[1].wait > 0.9 and r[1].wait <= 2.05, tostring(r[1].wait))
    assert.is_true(elapsed >= r[1].wait - 0.05, tostring(elapsed))
    assert.is_true(elapsed < r[1].wait + 0.5, tostring(elapsed))
  end)

  for _, ra in ipairs { "1.5", "-5", "soon", "5s", "1, 100" } do
    it("an unreadable Retry-After (" .. ra .. ") is the usual back-off, and no err.retry_after", function()
      local c, events = H.client_with_log { retries = 1 }
      H.fault { path = PING, status = 503, headers = { ["Retry-After"] = ra } }
      local res = assert(c:ping())
      assert.equals(2, res.attempts)
      local r = retry_events(events)
      assert.equals(1, #r)
      assert.is_true(r[1].wait >= 0 and r[1].wait <= 0.5, tostring(r[1].wait))
      H.fault { path = PING, status = 503, headers = { ["Retry-After"] = ra } }
      local res2, err = c:request("GET", "/ping", { auth = false, retries = 0 })
      assert_error(res2, err, "http")
      assert.is_nil(err.retry_after)
    end)
  end

  it("an HTTP date in the past means retry now", function()
    local c, events = H.client_with_log { retries = 1 }
    H.fault { path = PING, status = 503,
      headers = { ["Retry-After"] = os.date("!%a, %d %b %Y %H:%M:%S GMT", os.time() - 3600) } }
    local res = assert(c:ping())
    assert.equals(2, res.attempts)
    assert.equals(0, retry_events(events)[1].wait)
  end)

  it("Retry-After beyond max_retry_after ends the retries with retry_after set", function()
    local c, events = H.client_with_log { retries = 3 }
    H.fault { path = PING, status = 503, times = 4, headers = { ["Retry-After"] = "100" } }
    local t0 = socket.gettime()
    local res, err = c:ping()
    assert.is_true(socket.gettime() - t0 < 0.5)
    assert_error(res, err, "http")
    assert.equals(503, err.status)
    assert.equals(1, err.attempts)
    assert.equals(100, err.retry_after)
    assert.equals(1, requests(PING))
    assert.equals(0, #retry_events(events))
  end)

  it("the max_retry_after option sets the cap", function()
    local c = ducky.client(H.opts { retries = 3, max_retry_after = 1 })
    H.fault { path = PING, status = 429, times = 4, headers = { ["Retry-After"] = "2" } }
    local res, err = c:ping()
    assert_error(res, err, "http")
    assert.equals(429, err.status)
    assert.equals(1, err.attempts)
    assert.equals(2, err.retry_after)
    assert.equals(1, requests(PING))
  end)

  for _, status in ipairs { 408, 429, 500, 502, 503, 504 } do
    it(status .. " is retried", function()
      local c, events = H.client_with_log { retries = 2 }
      H.fault { path = PING, status = status, headers = { ["Retry-After"] = "0" } }
      local res, err = c:ping()
      assert.is_nil(err, err and tostring(err))
      assert.equals(2, res.attempts)
      assert.equals(tostring(status), retry_events(events)[1].reason)
      assert.equals(2, requests(PING))
    end)
  end

  for _, status in ipairs { 400, 401, 403, 404, 409, 501 } do
    it(status .. " is not retried", function()
      local c, events = H.client_with_log { retries = 2 }
      H.fault { path = PING, status = status, times = 3, headers = { ["Retry-After"] = "0" } }
      local res, err = c:ping()
      assert_error(res, err, status == 401 and "auth" or "http")
      assert.equals(status, err.status)
      assert.equals(1, err.attempts)
      assert.equals(1, requests(PING))
      assert.equals(0, #retry_events(events))
    end)
  end

  it("a 404 from a real route is not retried", function()
    local c = ducky.client(H.opts { retries = 2 })
    local res, err = c:request("GET", "/no/such/route", { auth = false })
    assert_error(res, err, "http")
    assert.equals(404, err.status)
    assert.equals(1, err.attempts)
    assert.equals(1, requests("/v3/no/such/route"))
  end)

  for _, method in ipairs { "POST", "PATCH" } do
    it(method .. " is not retried on 503", function()
      local c, events = H.client_with_log { retries = 2 }
      H.fault { path = ECHO, status = 503, times = 3, headers = { ["Retry-After"] = "0" } }
      local res, err = c:request(method, "/echo", { auth = false, json = { a = 1 } })
      assert_error(res, err, "http")
      assert.equals(503, err.status)
      assert.equals(1, err.attempts)
      assert.equals(1, requests(ECHO))
      assert.equals(0, #retry_events(events))
    end)

    it(method .. " is retried when the connection is refused", function()
      local base = ("http://127.0.0.1:%d/v3"):format(H.free_port())
      local c, events = H.client_with_log { retries = 2, base_url = base }
      local res, err = c:request(method, "/echo", { auth = false, json = { a = 1 } })
      assert_error(res, err, "network")
      assert.equals(3, err.attempts)
      assert.equals(7, err.code) -- CURLE_COULDNT_CONNECT
      local r = retry_events(events)
      assert.equals(2, #r)
      assert.equals(2, r[1].attempt)
      assert.equals(3, r[2].attempt)
      assert.equals("curl 7", r[1].reason)
      assert.is_true(r[1].wait <= 0.5 and r[2].wait <= 1, r[1].wait .. " " .. r[2].wait)
    end)
  end

  for _, method in ipairs { "GET", "PUT", "DELETE", "HEAD", "OPTIONS" } do
    it(method .. " is retried on 503", function()
      local c = ducky.client(H.opts { retries = 2 })
      H.fault { path = ECHO, status = 503, headers = { ["Retry-After"] = "0" } }
      local res, err = c:request(method, "/echo", { query = { public = "1" } })
      assert.is_nil(err, err and tostring(err))
      assert.equals(200, res.status)
      assert.equals(2, res.attempts)
      assert.equals(2, requests(ECHO))
      if method ~= "HEAD" then assert.equals(method, res.json.method) end
    end)
  end

  it("PUT with a body is retried and the body resent", function()
    local c = ducky.client(H.opts { retries = 1 })
    H.fault { path = ECHO, status = 502, headers = { ["Retry-After"] = "0" } }
    local res = assert(c:request("PUT", "/echo", { query = { public = "1" }, json = { x = "y" } }))
    assert.equals(2, res.attempts)
    assert.same({ x = "y" }, res.json.json)
  end)

  it("retries per request override the client's", function()
    local c = ducky.client(H.opts { retries = 0 })
    H.fault { path = PING, status = 503, times = 2, headers = { ["Retry-After"] = "0" } }
    local res = assert(c:request("GET", "/ping", { auth = false, retries = 2 }))
    assert.equals(3, res.attempts)
    H.reset()
    local c3 = ducky.client(H.opts { retries = 3 })
    H.fault { path = PING, status = 503, times = 2, headers = { ["Retry-After"] = "0" } }
    local res2, err = c3:request("GET", "/ping", { auth = false, retries = 0 })
    assert_error(res2, err, "http")
    assert.equals(1, err.attempts)
    assert.equals(1, requests(PING))
  end)

  it("all retries stay inside the timeout", function()
    local c, events = H.client_with_log { retries = 5, timeout = 1.5 }
    H.fault { path = PING, status = 503, times = 6, headers = { ["Retry-After"] = "1" } }
    local t0 = socket.gettime()
    local res, err = c:ping()
    local elapsed = socket.gettime() - t0
    assert.is_nil(res)
    assert.is_true(ducky.is_error(err))
    assert.is_true(elapsed < 1.65, tostring(elapsed))
    assert.is_true(err.attempts < 6, tostring(err.attempts))
    assert.equals(2, err.attempts)
    assert.equals(2, requests(PING))
    assert.equals(1, #retry_events(events))
  end)

  -- found by review: the replay counted against retries, so with retries = 1 a
  -- 503 to the replayed request ended the call
  it("a 401 replay spends none of the retries", function()
    local c, events, o = H.client_with_log { retries = 1 }
    assert(c:ping_protected())
    H.fault { path = ECHO, client_id = o.client_id, status = 401 }
    H.fault { path = ECHO, client_id = o.client_id, status = 503, headers = { ["Retry-After"] = "0" } }
    local res, err = c:request("GET", "/echo")
    assert.is_nil(err, err and tostring(err))
    assert.equals(200, res.status)
    assert.equals(3, res.attempts)
    assert.equals(3, requests(ECHO))
    assert.equals(2, H.exchanges(o.client_id))
    local r = retry_events(events)
    assert.equals(1, #r)
    assert.equals(3, r[1].attempt)
    assert.equals(1, c:stats().retries)
    assert.equals(1, c:stats().replays_401)
    -- retries = 0: the replay still goes, and its 503 ends the call
    H.fault { path = ECHO, client_id = o.client_id, status = 401 }
    H.fault { path = ECHO, client_id = o.client_id, status = 503, headers = { ["Retry-After"] = "0" } }
    local res2, err2 = c:request("GET", "/echo", { retries = 0 })
    assert_error(res2, err2, "http")
    assert.equals(503, err2.status)
    assert.equals(2, err2.attempts)
    assert.equals(2, c:stats().replays_401)
    assert.equals(1, c:stats().retries)
  end)

  -- found by review: a timeout ducky's own deadline found (between attempts, or
  -- while waiting for another client's exchange) said retryable = false
  it("a timeout found between attempts is retryable like libcurl's", function()
    local c, events = H.client_with_log { retries = 2, timeout = 2 }
    H.fault { path = PING, status = 503, times = 3, headers = { ["Retry-After"] = "1" } }
    local op = c:start("GET", "/ping", { auth = false })
    H.wait_until(function() c:step(0.05); return #retry_events(events) == 1 end, 5, "the first retry")
    socket.sleep(2.1) -- nobody steps: the retry's time comes after the deadline
    while not op:done() do c:step(0.05) end
    local res, err = op:result()
    assert_error(res, err, "timeout")
    assert.matches("before attempt 2", err.message)
    assert.equals(1, err.attempts)
    assert.is_true(err.retryable)
  end)

  it("a timeout waiting for another client's token exchange is retryable", function()
    local o = H.opts { timeout = 5 }
    H.fault { path = "/oauth/token", client_id = o.client_id, delay = 1 }
    local a = ducky.client(o)
    local lead = a:start_token()
    H.wait_until(function() a:step(0.02); return H.requests_to("/oauth/token") >= 1 end, 5, "a's exchange")
    o.timeout = 0.3
    local b = ducky.client(o)
    local res, err = b:ping_protected()
    assert_error(res, err, "timeout")
    assert.matches("waiting for a token exchange", err.message)
    assert.is_true(err.retryable)
    while not lead:done() do a:step(0.05) end
    assert(lead:result())
    assert(b:ping_protected())
    assert.equals(1, H.exchanges(o.client_id))
  end)

  -- found by review (fault matrix row "token slow", seen under ASan): the
  -- exchange's deadline was the client's timeout from a few microseconds after
  -- the call's, so a host woken at the call's deadline failed it with "timed
  -- out waiting for a token exchange" and no attempts, before libcurl's timer
  -- ended the exchange with the real error
  it("a call leading an exchange with the client's timeout gets the exchange's timeout", function()
    local o = H.opts { timeout = 0.5 }
    H.fault { path = "/oauth/token", client_id = o.client_id, delay = 1 }
    local c = ducky.client(o)
    local op = c:start("GET", "/ping/protected")
    H.wait_until(function() c:step(0.02); return H.requests_to("/oauth/token") >= 1 end, 5, "the exchange")
    -- ducky's clock past the call's deadline, libcurl's timer not yet due: the
    -- host wakes the engine in between
    H.shift_clock(0.45)
    c:step(0)
    H.reset_clock()
    while not op:done() do c:step(0.05) end
    local res, err = op:result()
    assert_error(res, err, "timeout")
    assert.is_nil(err.message:find("waiting for a token exchange", 1, true), err.message)
    assert.matches("oauth/token", err.message)
    assert.equals(1, err.attempts)
    assert.is_true(err.retryable)
  end)

  -- the stand-in reads half the body, then closes while the client still sends
  for _, t in ipairs { { "PUT", true }, { "DELETE", true }, { "POST", false }, { "PATCH", false } } do
    local method, again = t[1], t[2]
    local outcome = again and "retried, its body sent whole" or "not sent again"
    it(("%s dropped mid-upload is %s"):format(method, outcome), function()
      local c, events = H.client_with_log { retries = 2 }
      local body = ("0123456789abcdef"):rep(64 * 1024) -- 1 MiB
      H.fault { path = ECHO, drop = "mid_upload" }
      local res, err = c:request(method, "/echo", { auth = false, query = { public = "1" }, body = body })
      if again then
        assert.is_nil(err, err and tostring(err))
        assert.equals(2, res.attempts)
        assert.equals(#body, #res.json.body)
        assert.equals(1, #retry_events(events))
        assert.equals(2, requests(ECHO))
      else
        assert_error(res, err, "network")
        assert.equals(1, err.attempts)
        assert.is_true(err.retryable) -- may succeed again: whether to resend is the caller's call
        assert.equals(0, #retry_events(events))
        assert.equals(1, requests(ECHO))
      end
    end)
  end

  it("an attempt after a wait gets only the time left: a slow one ends at the timeout", function()
    local c, events = H.client_with_log { retries = 3, timeout = 1.5 }
    H.fault { path = PING, status = 503, headers = { ["Retry-After"] = "1" } }
    H.fault { path = PING, delay = 2 }
    local t0 = socket.gettime()
    local res, err = c:ping()
    local elapsed = socket.gettime() - t0
    assert_error(res, err, "timeout")
    assert.is_true(elapsed >= 1.45 and elapsed < 1.7, tostring(elapsed))
    assert.equals(2, err.attempts)
    assert.is_true(err.retryable)
    assert.equals(1, #retry_events(events))
  end)

  it("a call's events come in order, each with the contract's fields", function()
    local c, events, o = H.client_with_log { retries = 2 }
    H.fault { path = ECHO, client_id = o.client_id, status = 503, headers = { ["Retry-After"] = "0" } }
    H.fault { path = ECHO, client_id = o.client_id, status = 401 }
    local res = assert(c:request("GET", "/echo"))
    assert.equals(3, res.attempts)
    local names = {}
    for i, ev in ipairs(events) do names[i] = ev.event end
    assert.same({ "token", "retry", "replay_401", "token" }, names)
    for _, i in ipairs { 1, 4 } do
      assert.equals("exchange", events[i].source)
      assert.is_true(events[i].seconds_left > 0)
      assert.matches("^%x+$", events[i].fingerprint)
    end
    assert.are_not.equal(events[1].fingerprint, events[4].fingerprint)
    assert.same({ event = "retry", attempt = 2, reason = "503", wait = 0 }, events[2])
    assert.same({ event = "replay_401" }, events[3])
  end)

  it("a dropped connection on GET is retried", function()
    local c, events = H.client_with_log { retries = 2 }
    H.fault { path = PING, drop = "before_headers" }
    local res, err = c:ping()
    assert.is_nil(err, err and tostring(err))
    assert.equals(2, res.attempts)
    local r = retry_events(events)
    assert.equals(1, #r)
    assert.matches("^curl %d+$", r[1].reason)
  end)

  it("a connection dropped mid-body on GET is retried", function()
    local c = ducky.client(H.opts { retries = 2 })
    H.fault { path = ECHO, drop = "mid_body" }
    local res, err = c:request("GET", "/echo", { query = { public = "1" } })
    assert.is_nil(err, err and tostring(err))
    assert.equals(2, res.attempts)
  end)

  it("a dropped connection on POST is not retried (fresh connection)", function()
    local c = ducky.client(H.opts { retries = 2 })
    H.fault { path = ECHO, drop = "before_headers", times = 3 }
    local res, err = c:request("POST", "/echo", { auth = false, query = { public = "1" }, json = {} })
    assert_error(res, err, "network")
    assert.equals(1, err.attempts)
    assert.equals(1, requests(ECHO))
  end)

  it("a dropped connection on POST is not resent (reused keep-alive connection)", function()
    local c = ducky.client(H.opts { retries = 2 })
    assert(c:ping()) -- leaves a keep-alive connection for the POST to reuse
    H.fault { path = ECHO, drop = "before_headers", times = 3 }
    local res, err = c:request("POST", "/echo", { auth = false, query = { public = "1" }, json = {} })
    assert_error(res, err, "network")
    assert.equals(1, err.attempts)
    -- the server received the POST once: nothing may send it again
    assert.equals(1, requests(ECHO))
  end)

  it("err.attempts counts every attempt", function()
    local c = ducky.client(H.opts { retries = 2 })
    H.fault { path = PING, status = 503, times = 3, headers = { ["Retry-After"] = "0" } }
    local res, err = c:ping()
    assert_error(res, err, "http")
    assert.equals(503, err.status)
    assert.equals(3, err.attempts)
    assert.is_true(err.retryable)
    assert.equals(3, requests(PING))
    assert.equals(2, c:stats().retries)
  end)

  it("retries of an authenticated call count with its token exchange", function()
    local c, _, o = H.client_with_log { retries = 2 }
    H.fault { path = "/v3/ping/protected", client_id = o.client_id, status = 503,
      times = 2, headers = { ["Retry-After"] = "0" } }
    local res = assert(c:ping_protected())
    assert.equals(3, res.attempts)
    assert.equals(1, H.exchanges(o.client_id))
  end)

  it("a log function that yields is ignored as one that raises", function()
    local n = 0
    local c = ducky.client(H.opts { retries = 2, log = function(ev) n = n + 1; coroutine.yield(ev) end })
    H.fault { path = PING, status = 503, times = 2, headers = { ["Retry-After"] = "0" } }
    local co = coroutine.create(function() return c:ping() end)
    local ok, res, err = coroutine.resume(co)
    assert.is_true(ok, tostring(res))
    assert.equals("dead", coroutine.status(co))
    assert.is_nil(err, err and tostring(err))
    assert.equals(200, res.status)
    assert.equals(3, res.attempts)
    assert.equals(2, n)
  end)

  it("an error raised by log is ignored", function()
    local n = 0
    local c = ducky.client(H.opts { retries = 2, log = function() n = n + 1; error("log exploded") end })
    H.fault { path = PING, status = 503, times = 2, headers = { ["Retry-After"] = "0" } }
    local res, err = c:ping()
    assert.is_nil(err, err and tostring(err))
    assert.equals(3, res.attempts)
    assert.equals(2, n)
    assert.equals(2, c:stats().retries)
  end)
end)
