-- Outages end when the provider recovers (issue 19 §A): failures are paced by a
-- back-off every caller shares and never spend the hourly budget; a valid
-- token is served from wherever it came while refreshes fail; a store that
-- cannot be written costs one report, not an exchange per call; a burst of
-- 401s refreshes once per back-off step. Time is moved, not waited for.
local H = require("spec.helpers")
local ducky = require("ducky")

local TOKEN = "/oauth/token"

describe("token availability under faults", function()
  before_each(function() H.reset() end)
  after_each(function() H.reset_clock() end)

  it("an outage of the token endpoint: one try per back-off step, back within one step", function()
    local o = H.opts{ max_exchanges_per_hour = 2 }
    local c = ducky.client(o)
    local down = 6 -- the endpoint fails its next 6 exchanges, then answers again
    H.fault{ path = TOKEN, client_id = o.client_id, status = 503, times = down }
    local t, failed_at, recovered_at, kinds = 0, nil, nil, {}
    while not recovered_at do
      local res, err = c:ping_protected()
      if res then
        recovered_at = t
      else
        kinds[err.kind] = true
        if H.requests_to(TOKEN) == down and not failed_at then failed_at = t end
      end
      assert.is_true(t < 600, "not back after 10 minutes of calls")
      H.shift_clock(0.5) -- a call every 0.5 s
      t = t + 0.5
    end
    assert.same({ http = true }, kinds) -- never "limit": failures do not spend the budget
    assert.equals(down + 1, H.requests_to(TOKEN)) -- one try per step, not one per call
    assert.is_true(recovered_at - failed_at <= H.BACKOFF_CAP,
      ("back %.1f s after the endpoint was"):format(recovered_at - failed_at))
    assert.is_true(t > down, "the calls came faster than the tries") -- they were paced
    -- and the budget is whole: a new token after an invalidate is no limit error
    c:invalidate()
    assert(c:ping_protected())
  end)

  it("every caller of the key in the process shares the back-off", function()
    H.fix_jitter(1) -- a whole first step (1 s), not a draw that may end before b asks
    local o = H.opts{}
    local a, b = ducky.client(o), ducky.client(o)
    H.fault{ path = TOKEN, client_id = o.client_id, status = 503, times = 1 }
    assert.equals("http", select(2, a:token()).kind)
    assert.equals("http", select(2, b:token()).kind) -- told, not asked again
    assert.equals(1, H.requests_to(TOKEN))
    H.shift_clock(H.BACKOFF_CAP)
    assert(b:token())
    assert.equals(2, H.requests_to(TOKEN))
  end)

  it("a store's valid token inside its margin is served while the refresh fails", function()
    local o = H.opts{}
    -- a real token for this id, fetched under another cache key (form, not json)
    local seed = assert(ducky.client(H.opts{ client_id = o.client_id,
      client_secret = o.client_secret, token_auth = "form" }):token())
    local events = {}
    -- valid for 30 s more: inside the 60 s margin
    local entry = { access_token = seed, token_type = "Bearer", expires_in = 3600,
      expires_at = os.time() + 30 }
    local store = { load = function() return entry end, store = function() end }
    local c = ducky.client(H.opts{ client_id = o.client_id, client_secret = o.client_secret,
      token_cache = store, log = function(ev) events[#events + 1] = ev end })
    H.reset()
    H.fault{ path = TOKEN, client_id = o.client_id, status = 503, times = 100 }
    for i = 1, 30 do
      local tok = c:token()
      assert.equals(seed, tok, "call " .. i)
      H.shift_clock(0.5)
    end
    assert(c:ping_protected()) -- the API takes it
    assert.is_true(H.requests_to(TOKEN) <= 6, "tries: " .. H.requests_to(TOKEN))
    local stale = H.events_named(events, "stale_token")
    assert.is_true(#stale >= 1)
    assert.equals("http", stale[1].reason)
  end)

  it("a valid token in the file cache is served by new processes while refreshes fail", function()
    local dir = H.tmpdir()
    local o = H.opts{}
    -- a token with 9 s left in the file cache: written by a client, then aged
    local writer = ducky.client(H.opts{ client_id = o.client_id, client_secret = o.client_secret,
      token_cache = dir .. "/t.token" })
    H.config(o.client_id, 69) -- 69 s tokens: the margin is 34.5 s
    local tok = assert(writer:token())
    writer:close()
    H.fault{ path = TOKEN, client_id = o.client_id, status = 503, times = 100 }
    local script = ([[
      local H = require("spec.helpers")
      H.shift_clock(60) -- 9 s left, inside the margin
      local c = require("ducky").client(H.opts{ client_id = %q, client_secret = %q,
        token_cache = %q })
      local tok, left, info = c:token()
      print(tok, info and info.source, left)
    ]]):format(o.client_id, o.client_secret, dir .. "/t.token")
    for i = 1, 4 do
      local out, code = H.run_lua(script)
      assert.equals(0, code, out)
      assert.matches(tok, out, 1, true)
      assert.is_truthy(out:find("file", 1, true) or out:find("memory", 1, true), "run " .. i .. ": " .. out)
    end
    os.execute("rm -rf '" .. dir .. "'")
  end)

  it("processes sharing the file cache share the back-off after a failed exchange", function()
    local dir = H.tmpdir()
    local o = H.opts{}
    H.fault{ path = TOKEN, client_id = o.client_id, status = 503, times = 1 }
    local script = ([[
      local H = require("spec.helpers")
      require("ducky")._test.fix_jitter(1) -- a whole step: 1 s after the first failure
      H.shift_clock(tonumber(os.getenv("SHIFT")))
      local c = require("ducky").client(H.opts{ client_id = %q, client_secret = %q,
        token_cache = %q })
      local tok, err = c:token()
      print(tok and "token" or err.kind, tok and "" or err.message)
    ]]):format(o.client_id, o.client_secret, dir .. "/t.token")
    local out = H.run_lua(script, { SHIFT = 0 })
    assert.matches("^http", out)
    assert.equals(1, H.requests_to(TOKEN))
    out = H.run_lua(script, { SHIFT = 0 }) -- another process, a moment later
    assert.matches("^http%s.*another process", out)
    assert.equals(1, H.requests_to(TOKEN)) -- told by the file, not asked again
    out = H.run_lua(script, { SHIFT = H.BACKOFF_CAP + 1 }) -- a back-off step later
    assert.matches("^token", out)
    assert.equals(2, H.requests_to(TOKEN))
    os.execute("rm -rf '" .. dir .. "'")
  end)

  -- found by review: a time further ahead than any step (the wall clock
  -- stepped back after a failure, or garbage: inf) held every process of the
  -- user until the clock caught up
  it("a shared back-off further ahead than any step is not waited on", function()
    local dir = H.tmpdir()
    local o = H.opts{ token_cache = dir .. "/t.token" }
    local c = ducky.client(o)
    local key = c:cache_key()
    for _, ahead in ipairs { "%.3f", "inf" } do
      local f = assert(io.open(dir .. "/t.token.lock", "w"))
      f:write(("retry_at " .. ahead .. " http %s\n"):format(os.time() + 7200, key))
      f:close()
      os.execute("chmod 600 '" .. dir .. "/t.token.lock'")
      local tok, err = c:token()
      assert.is_truthy(tok, tostring(err))
      c:invalidate()
    end
    assert.equals(2, H.exchanges(o.client_id))
    c:close()
    os.execute("rm -rf '" .. dir .. "'")
  end)

  -- found by review: one user-named file for two credentials shared its lock
  -- file's back-off too, so one credential's failing endpoint held the other
  it("two credentials in one user-named file each have their own back-off", function()
    local dir = H.tmpdir()
    local a, b = H.opts{ token_cache = dir .. "/t.token" }, H.opts{ token_cache = dir .. "/t.token" }
    H.fault{ path = TOKEN, client_id = a.client_id, status = 503, times = 1 }
    local ca, cb = ducky.client(a), ducky.client(b)
    local tok, err = ca:token()
    assert.is_nil(tok)
    assert.equals("http", err.kind)
    assert.matches("^retry_at ", H.read_file(dir .. "/t.token.lock"))
    tok, err = cb:token()
    assert.is_truthy(tok, tostring(err))
    assert.equals(1, H.exchanges(b.client_id))
    ca:close()
    cb:close()
    os.execute("rm -rf '" .. dir .. "'")
  end)

  it("a store that cannot be written is reported once, never an exchange per call", function()
    local o = H.opts{}
    local events = {}
    local store = { load = function() return nil end, store = function() error("disk full") end }
    local c = ducky.client(H.opts{ client_id = o.client_id, client_secret = o.client_secret,
      token_cache = store, log = function(ev) events[#events + 1] = ev end })
    for _ = 1, 20 do assert(c:ping_protected()) end
    assert.equals(1, H.exchanges(o.client_id))
    local errs = H.events_named(events, "store_error")
    assert.equals(1, #errs)
    assert.matches("token_cache.store: .*disk full", errs[1].reason)
  end)

  it("a burst of 401s from the API refreshes once per back-off step, then calls succeed", function()
    local o = H.opts{}
    local c = ducky.client(o)
    assert(c:ping_protected())
    local burst = 12
    H.fault{ path = "/v3/ping/protected", status = 401, times = burst,
      body = { error = "invalid_token", error_description = "rejected" } }
    local t, ok_at = 0, nil
    while not ok_at do
      local res, err = c:ping_protected()
      if res then ok_at = t else assert.equals("auth", err.kind) end
      assert.is_true(t < 300, "not back")
      H.shift_clock(0.1) -- ten calls a second
      t = t + 0.1
    end
    -- the first two drops refresh at once; later ones wait a growing step
    assert.is_true(H.exchanges(o.client_id) <= 8, "exchanges: " .. H.exchanges(o.client_id))
    assert.is_true(H.exchanges(o.client_id) >= 2)
  end)
end)
