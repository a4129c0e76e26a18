-- Issue 13, "a hostile world": what an outside adversarial pass found, one
-- describe per item (its number in the name), each against the local stand-in.
-- Elsewhere: items 1, 2, 14 (the file cache) and 20 in spec/file_store_spec.lua;
-- 3, 4 and 5 in spec/secrets_spec.lua; 9's Redis cases in spec/redis_spec.lua;
-- the fault matrix (spec/support/model/fault_matrix.lua) has rows for most of them.
local H = require("spec.helpers")
local ducky = require("ducky")
local socket = require("socket")

local TOKEN = "/oauth/token"
local RETRY_NOW = { ["Retry-After"] = "0" }

local named = H.events_named

-- no byte below 0x20 and no DEL
local function assert_clean(line)
  assert.is_string(line)
  local at = line:find("[%z\1-\31\127]")
  assert.is_nil(at, "control byte in " .. ("%q"):format(line:sub(1, 300)))
end

-- a real token from the stand-in for client `id`, fetched under another cache
-- key (token_auth form) so that the process-wide cache of the json key stays empty
local function real_token(id)
  local seed = ducky.client(H.opts { client_id = id, client_secret = H.secret(id), token_auth = "form" })
  local tok = assert(seed:token())
  seed:close()
  return tok
end

-- a store that hands out `entry` once (the first load), then has nothing
local function store_once(entry)
  local given = false
  return {
    load = function()
      if given then return nil end
      given = true
      return entry
    end,
    store = function() end,
  }
end

-- the time on ducky's clock: socket.gettime() moved as H.shift_clock moved it
local function now()
  return socket.gettime() + H.clock_offset()
end

-- moves ducky's clock until now() reaches t (instead of sleeping until then)
local function sleep_until(t)
  local left = t - now()
  if left > 0 then H.shift_clock(left) end
end

describe("a hostile world (issue 13)", function()
  before_each(function() H.reset() end)
  after_each(function() H.reset_clock() end)

  describe("6: control characters from the server", function()
    it("are escaped as \\xNN in tostring(err); err.request_id and err.description keep them", function()
      local c = ducky.client(H.opts {})
      assert(c:token())
      H.fault { path = "/v3/echo", status = 400, headers = { ["X-Request-Id"] = "\27[31mred\7" },
        body = { error = "x", error_description = "a\rb\27[2Jc" } }
      local res, err = c:request("GET", "/echo")
      assert.is_nil(res)
      assert.equals("http", err.kind)
      local line = tostring(err)
      assert_clean(line)
      assert.truthy(line:find(": a\\x0db\\x1b[2Jc", 1, true), "the description, escaped: " .. line)
      assert.truthy(line:find("\\x1b[31mred\\x07", 1, true), "the request id, escaped: " .. line)
      assert.equals("\27[31mred\7", err.request_id)
      assert.equals("a\rb\27[2Jc", err.description)
      c:close()
    end)

    it("every byte below 0x20 and DEL, tab included, as lower-case \\xNN", function()
      local c = ducky.client(H.opts {})
      assert(c:token())
      H.fault { path = "/v3/echo", status = 409, body = { error = "x", error_description = "t\tu\127v\31w" } }
      local _, err = c:request("GET", "/echo")
      local line = tostring(err)
      assert_clean(line)
      assert.truthy(line:find("t\\x09u\\x7fv\\x1fw", 1, true), line)
      assert.equals("t\tu\127v\31w", err.description)
      c:close()
    end)

    it("a token endpoint's refusal: tostring(err) escaped, err.description raw", function()
      local o = H.opts {}
      H.fault { path = TOKEN, client_id = o.client_id, status = 400,
        body = { error = "invalid_request", error_description = "a\rb\27[2Jc" } }
      local c = ducky.client(o)
      local res, err = c:ping_protected()
      assert.is_nil(res)
      assert.equals("auth", err.kind)
      assert_clean(tostring(err))
      assert.truthy(tostring(err):find("a\\x0db\\x1b[2Jc", 1, true), tostring(err))
      assert.equals("a\rb\27[2Jc", err.description)
      c:close()
    end)
  end)

  describe("7: auth_backoff and a still-valid token", function()
    -- Token rules are about time here. The token comes from a store with
    -- expires_at 7.3 s ahead and refresh_margin 7, so it enters its margin
    -- after 0.3 s instead of after half a lifetime; the waits then follow the
    -- rules: a failed refresh is tried again min(5 s, margin / 4) = 1.75 s
    -- later, and today's fixed 5 s is passed once too, while the token is valid.
    it("serves the token for as long as it is valid, without asking the endpoint, then fails", function()
      local o = H.opts { refresh_margin = 7, auth_backoff = 60, timeout = 5 }
      local id = o.client_id
      local tok = real_token(id)
      local expires_at = socket.gettime() + 7.3
      o.token_cache = store_once { access_token = tok, token_type = "Bearer", expires_at = expires_at,
        expires_in = 3600 }
      local events = {}
      o.log = function(ev) events[#events + 1] = ev end
      local c = ducky.client(o)
      local res, err = c:ping_protected() -- the store's token, 7.3 s left: outside the margin
      assert.is_nil(err, err and tostring(err))
      assert.equals("store", named(events, "token")[1].source, "not the store's token")
      assert.equals(200, res.status)
      assert.equals(1, H.exchanges(id)) -- real_token's
      H.ban(id)

      sleep_until(expires_at - 6.9) -- inside the margin
      res, err = c:ping_protected() -- a refresh, refused (invalid_client): served stale
      assert.is_nil(err, err and tostring(err))
      assert.equals(200, res.status)
      local stale = named(events, "stale_token")
      assert.equals(1, #stale)
      assert.equals("invalid_client", stale[1].reason)
      local refused_at = now()
      local asked = H.requests_to(TOKEN)

      sleep_until(refused_at + 1.9) -- auth_backoff: no refresh yet, the token served
      res, err = c:ping_protected()
      assert.is_nil(err, "1.9 s after the refusal: " .. tostring(err))
      assert.equals(200, res.status)

      sleep_until(refused_at + 5.2) -- past 5 s too; the token still has ~1.7 s
      assert.is_true(now() < expires_at - 0.5)
      res, err = c:ping_protected()
      assert.is_nil(err, "5.2 s after the refusal: " .. tostring(err))
      assert.equals(200, res.status)
      assert.equals(asked, H.requests_to(TOKEN), "the token endpoint was asked during auth_backoff")
      assert.equals(1, H.exchanges(id))

      sleep_until(expires_at + 0.1) -- expired: nothing valid to serve
      res, err = c:ping_protected()
      assert.is_nil(res)
      assert.equals("auth", err.kind, tostring(err))
      assert.equals("invalid_client", err.code)
      assert.equals(asked, H.requests_to(TOKEN), "the token endpoint was asked during auth_backoff")
      c:close()
    end)
  end)

  describe("8: a client without credentials", function()
    it("gets the config error on every call, never the hourly limit", function()
      local c = ducky.client(H.opts { client_id = H.NIL, client_secret = H.NIL })
      for i = 1, 25 do
        local res, err = c:ping_protected()
        assert.is_nil(res)
        assert.equals("config", err.kind, ("call %d: %s"):format(i, tostring(err)))
        assert.matches("^no credentials", err.message)
      end
      c:close()
    end)
  end)

  describe("9: a time budget for every store call", function()
    it("load, store, lock and unlock get it as their last argument", function()
      local calls = {}
      local function record(name, result)
        return function(...)
          calls[#calls + 1] = { name = name, n = select("#", ...), args = { ... } }
          return result
        end
      end
      local store = { load = record("load"), store = record("store"), lock = record("lock", true),
        unlock = record("unlock") }
      local c = ducky.client(H.opts { token_cache = store, timeout = 3 })
      assert(c:ping_protected())
      c:invalidate() -- store(key, nil, timeout)
      local names = {}
      for i, call in ipairs(calls) do names[i] = call.name end
      assert.same({ "load", "lock", "load", "store", "unlock", "store" }, names)
      for i, call in ipairs(calls) do
        local what = ("%s (call %d)"):format(call.name, i)
        local n = call.name == "store" and 3 or 2
        assert.equals(n, call.n, what .. ": number of arguments")
        local budget = call.args[n]
        assert.is_number(budget, what)
        assert.is_true(budget > 0, what .. ": " .. tostring(budget))
        -- at most a half of the call's time for lock, a quarter for the others
        local cap = call.name == "lock" and 3 / 2 or 3 / 4
        assert.is_true(budget <= cap + 1e-6, what .. ": " .. tostring(budget))
      end
      assert.is_table(calls[4].args[2]) -- the entry
      assert.is_nil(calls[6].args[2]) -- a drop
      c:close()
    end)

    it("a lock never granted (left by a dead process): exchanges without it, within timeout", function()
      local granted = 0
      local store = {
        load = function() return nil end,
        store = function() end,
        lock = function(_, timeout) -- keeps failing until its budget is spent
          local stop = socket.gettime() + (tonumber(timeout) or 0)
          while socket.gettime() < stop do socket.sleep(0.02) end
          return false
        end,
        unlock = function() granted = granted + 1 end,
      }
      local o = H.opts { token_cache = store, timeout = 3 }
      local c = ducky.client(o)
      local t0 = socket.gettime()
      local res, err = c:ping_protected()
      local elapsed = socket.gettime() - t0
      assert.is_nil(err, err and tostring(err))
      assert.equals(200, res.status)
      -- the bound is the contract (no call outlives its timeout), not a speed figure
      assert.is_true(elapsed < 3, "took " .. elapsed)
      assert.equals(1, H.exchanges(o.client_id))
      assert.equals(0, granted) -- never unlocked: never locked
      c:close()
    end)
  end)

  describe("10: a callback using another client with the same credentials", function()
    -- the inner client's timeout is long: waiting for the exchange it sits in
    -- would show as a timeout error after 8 s
    local INNER_TIMEOUT = 8

    local function pair(overrides)
      local o = H.opts(overrides)
      local other = ducky.client(H.opts { client_id = o.client_id, client_secret = o.client_secret,
        timeout = INNER_TIMEOUT })
      return o, other
    end

    local function check_inner(inner)
      assert.is_true(inner.ran, "the callback did not run")
      assert.is_true(ducky.is_error(inner.err), "inner result: " .. tostring(inner.res))
      assert.equals("config", inner.err.kind, tostring(inner.err))
      assert.truthy(inner.err.message:find("under way", 1, true), inner.err.message)
      assert.is_true(inner.elapsed < INNER_TIMEOUT / 2, "the inner call took " .. inner.elapsed)
    end

    it("log during the exchange (on a retry) calls other:ping_protected(): config error at once", function()
      local o, other = pair { retries = 2, timeout = 5 }
      local inner = {}
      o.log = function(ev)
        if ev.event == "retry" and not inner.ran then
          inner.ran = true
          local t0 = socket.gettime()
          inner.res, inner.err = other:ping_protected()
          inner.elapsed = socket.gettime() - t0
        end
      end
      H.fault { path = TOKEN, client_id = o.client_id, status = 503, headers = RETRY_NOW }
      local c = ducky.client(o)
      local res, err = c:ping_protected()
      check_inner(inner)
      assert.is_nil(err, err and tostring(err))
      assert.equals(200, res.status)
      c:close()
      other:close()
    end)

    it("a store's load() calls other:token(): config error at once", function()
      local o, other = pair { timeout = 5 }
      local inner = {}
      o.token_cache = {
        load = function()
          if not inner.ran then
            inner.ran = true
            local t0 = socket.gettime()
            inner.res, inner.err = other:token()
            inner.elapsed = socket.gettime() - t0
          end
          return nil
        end,
        store = function() end,
      }
      local c = ducky.client(o)
      local res, err = c:ping_protected()
      check_inner(inner)
      assert.is_nil(err, err and tostring(err))
      assert.equals(200, res.status)
      c:close()
      other:close()
    end)

    it("during a refresh while the token is valid: the current token at once", function()
      -- a store's token 7.3 s from expiry with refresh_margin 7: inside the margin after 0.3 s
      local o, other = pair { retries = 2, timeout = 5, refresh_margin = 7 }
      local tok = real_token(o.client_id)
      local expires_at = socket.gettime() + 7.3
      o.token_cache = store_once { access_token = tok, token_type = "Bearer", expires_at = expires_at,
        expires_in = 3600 }
      local inner = {}
      o.log = function(ev)
        if ev.event == "retry" and not inner.ran then
          inner.ran = true
          local t0 = socket.gettime()
          local tok2, err2 = other:token() -- the token and its seconds left, or nil and an error
          inner.res, inner.err = tok2, not tok2 and err2 or nil
          inner.elapsed = socket.gettime() - t0
        end
      end
      local c = ducky.client(o)
      assert.equals(tok, (assert(c:token())))
      sleep_until(expires_at - 6.9)
      H.fault { path = TOKEN, client_id = o.client_id, status = 503, headers = RETRY_NOW }
      local new, left = c:token() -- the refresh: 503, a retry event, then a new token
      assert.is_true(inner.ran, "the callback did not run")
      assert.is_nil(inner.err, inner.err and tostring(inner.err))
      assert.equals(tok, inner.res)
      assert.is_true(inner.elapsed < INNER_TIMEOUT / 2, "the inner call took " .. inner.elapsed)
      assert.is_string(new, tostring(left))
      assert.is_not.equals(tok, new)
      c:close()
      other:close()
    end)
  end)

  describe("11: Authorization is reserved", function()
    it("in the client's headers: raises when the client is made", function()
      for _, name in ipairs { "Authorization", "authorization", "AUTHORIZATION" } do
        H.raises(ducky.client, "ducky.client: headers: Authorization is ducky's to send (the token); "
          .. "send your own on a request with auth = false", H.opts { headers = { [name] = "Bearer mine" } })
      end
    end)

    it("in a request's headers: raises with auth (the default), nothing sent", function()
      local c = ducky.client(H.opts {})
      assert(c:token())
      local before = H.stats().requests
      for _, opts in ipairs {
        { headers = { Authorization = "Bearer mine" } },
        { headers = { authorization = "Bearer mine" }, auth = true },
      } do
        H.raises(c.request, "client:request: an Authorization header of your own needs auth = false",
          c, "GET", "/echo", opts)
      end
      assert.equals(before, H.stats().requests)
      c:close()
    end)

    it("in a request's headers with auth = false: sent as given, alone", function()
      local o = H.opts {}
      local c = ducky.client(o)
      local res = assert(c:request("GET", "/echo", { auth = false, query = { public = "1" },
        headers = { Authorization = "Basic Zm9vOmJhcg==" } }))
      assert.equals("Basic Zm9vOmJhcg==", res.json.headers.authorization)
      assert.equals(0, H.exchanges(o.client_id))
      c:close()
    end)
  end)

  describe("12: retries after sending only for GET, HEAD, PUT, DELETE, OPTIONS", function()
    local cases = {
      { "LOCK", 1 }, { "MKCOL", 1 }, { "PURGE", 1 }, { "POST", 1 }, { "PATCH", 1 },
      { "GET", 3 }, { "HEAD", 3 }, { "PUT", 3 }, { "DELETE", 3 }, { "OPTIONS", 3 },
    }
    local c
    before_each(function()
      c = ducky.client(H.opts { retries = 2 })
      assert(c:token())
    end)
    after_each(function() c:close() end)

    for _, case in ipairs(cases) do
      local method, attempts = case[1], case[2]
      it(("%s answered 503: %d attempt%s (request and batch)"):format(method, attempts,
        attempts == 1 and "" or "s"), function()
        H.fault { path = "/v3/echo", status = 503, times = 3, headers = RETRY_NOW }
        local res, err = c:request(method, "/echo")
        assert.is_nil(res)
        assert.equals(503, err.status, tostring(err))
        assert.equals(attempts, err.attempts, "request(): " .. tostring(err))
        assert.equals(attempts, H.stats().requests_by_path["/v3/echo"])

        H.reset()
        H.fault { path = "/v3/echo", status = 503, times = 3, headers = RETRY_NOW }
        local out = c:batch({ { method, "/echo" } })
        assert.is_nil(out[1].res)
        assert.equals(503, out[1].err.status, tostring(out[1].err))
        assert.equals(attempts, out[1].err.attempts, "batch(): " .. tostring(out[1].err))
        assert.equals(attempts, H.stats().requests_by_path["/v3/echo"])
      end)
    end
  end)

  describe("13: HEAD", function()
    it("an answer announcing a Content-Length over max_body is a success with an empty body", function()
      local c = ducky.client(H.opts { max_body = 1000 })
      assert(c:token())
      H.fault { path = "/v3/echo", huge = 5000 }
      local res, err = c:request("HEAD", "/echo")
      assert.is_nil(err, err and tostring(err))
      assert.equals(200, res.status)
      assert.equals("", res.body)
      assert.equals("5000", res.headers["content-length"])
      c:close()
    end)
  end)

  describe("15: oversized answer headers", function()
    local c
    before_each(function()
      c = ducky.client(H.opts { retries = 3, timeout = 20 })
      assert(c:token())
    end)
    after_each(function() c:close() end)

    local function check(res, err)
      assert.is_nil(res)
      assert.equals("limit", err.kind, tostring(err))
      assert.truthy(err.message:lower():find("header", 1, true), err.message)
      assert.equals(1, err.attempts, tostring(err))
      assert.equals(1, H.stats().requests_by_path["/v3/echo"])
    end

    it("one header of 10 MB: a limit error naming the headers, not retried", function()
      H.fault { path = "/v3/echo", status = 200, body = "{}", times = 4,
        headers = { ["X-Big"] = string.rep("a", 10 * 1000 * 1000) } }
      check(c:request("GET", "/echo"))
    end)

    it("400 KB over 100 headers: a limit error naming the headers, not retried", function()
      local values = {}
      for i = 1, 100 do values[i] = string.rep("b", 4000) end
      H.fault { path = "/v3/echo", status = 200, body = "{}", times = 4, headers = { ["X-Many"] = values } }
      check(c:request("GET", "/echo"))
    end)
  end)

  describe("16: a NUL inside a string option", function()
    local function ca() return H.ca_file() end
    local options = {
      { "client_id", function(o) return o.client_id end },
      { "client_secret", function(o) return o.client_secret end },
      { "base_url", function() return H.base_url() end },
      { "token_url", function() return H.token_url() end },
      { "audience", function() return H.audience() end },
      { "token_auth", function() return "json" end },
      { "http_version", function() return "2" end },
      { "ca_file", ca },
      { "ca_path", function() return "/etc/ssl/certs" end },
      { "proxy", function() return "http://127.0.0.1:1" end },
      { "user_agent", function() return "agent" end },
      { "token_cache", function() return "/nonexistent/token" end },
    }
    for _, case in ipairs(options) do
      it(case[1] .. ": raises naming it", function()
        local o = H.opts {}
        o[case[1]] = case[2](o) .. "\0tail"
        H.raises(ducky.client, ("ducky.client: option '%s' holds NUL"):format(case[1]), o)
      end)
    end
  end)

  describe("17: a Retry-After of 400 digits", function()
    it("ends the retries; err.retry_after is at least max_retry_after", function()
      local c = ducky.client(H.opts { retries = 2 })
      assert(c:token())
      H.fault { path = "/v3/echo", status = 503, times = 3, body = "{}",
        headers = { ["Retry-After"] = string.rep("9", 400) } }
      local res, err = c:request("GET", "/echo")
      assert.is_nil(res)
      assert.equals(503, err.status)
      assert.equals(1, err.attempts, tostring(err))
      assert.is_number(err.retry_after)
      assert.is_true(err.retry_after >= 30, tostring(err.retry_after))
      c:close()
    end)
  end)

  describe("18: only JSON numbers are numbers", function()
    it("a token answer with expires_in 0x10 is a decode error", function()
      local o = H.opts {}
      H.fault { path = TOKEN, client_id = o.client_id, status = 200,
        body = '{"access_token":"tok_hexlifetime","token_type":"Bearer","expires_in":0x10}' }
      local c = ducky.client(o)
      local res, err = c:ping_protected()
      assert.is_nil(res)
      assert.equals("decode", err.kind, tostring(err))
      c:close()
    end)

    it("a token answer with expires_in \"3600\" (a string) is a decode error", function()
      local o = H.opts {}
      H.fault { path = TOKEN, client_id = o.client_id, status = 200,
        body = '{"access_token":"tok_stringlifetime","token_type":"Bearer","expires_in":"3600"}' }
      local c = ducky.client(o)
      local _, err = c:ping_protected()
      assert.equals("decode", err.kind, tostring(err))
      c:close()
    end)

    it("an API answer of JSON holding 0x10 is a decode error with the body kept", function()
      local c = ducky.client(H.opts {})
      assert(c:token())
      H.fault { path = "/v3/echo", status = 200, body = '{"n":0x10}', content_type = "application/json" }
      local res, err = c:request("GET", "/echo")
      assert.is_nil(res, res and ("json.n = " .. tostring(res.json and res.json.n)))
      assert.equals("decode", err.kind)
      assert.equals(200, err.status)
      assert.equals('{"n":0x10}', err.body)
      c:close()
    end)

    it("the host's own lua-cjson settings are left as they were", function()
      local cjson = require("cjson")
      local ok, v = pcall(cjson.decode, '{"n":0x10}')
      local c = ducky.client(H.opts {})
      H.fault { path = "/v3/echo", status = 200, body = '{"n":0x10}', content_type = "application/json" }
      c:request("GET", "/echo")
      c:close()
      local ok2, v2 = pcall(cjson.decode, '{"n":0x10}')
      assert.equals(ok, ok2)
      if ok then assert.equals(v.n, v2.n) end
    end)
  end)

  describe("19: token_cache = true", function()
    it("raises, naming token_cache and true", function()
      H.raises(ducky.client, "ducky.client: option 'token_cache' must be false, a path or a table, not true",
        H.opts { token_cache = true })
    end)
  end)
end)
