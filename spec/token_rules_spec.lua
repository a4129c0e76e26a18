-- Token rules 2, 5, 6, 7 and 8 (DESIGN.md "Token rules") against the local
-- stand-in: the 401 replay, the refresh margin, serve-stale, the protection of
-- the provider, and the secret that never appears. (spec/token_spec.lua: the
-- cache, the token request and answer, the endpoint's errors.)
local H = require("spec.helpers")
local ducky = require("ducky")

local TOKEN_PATH = "/oauth/token"
local PING_PATH = "/v3/ping/protected"

local find_events = H.events_named
local assert_error = H.assert_error

describe("401 from the API (rule 5)", function()
  before_each(function() H.reset() end)

  it("drops the token, exchanges once, replays and succeeds", function()
    local c, events, o = H.client_with_log()
    assert(c:ping_protected())
    local old = c:token()
    H.fault { path = PING_PATH, client_id = o.client_id, status = 401, times = 1,
      body = { error = "invalid_token", error_description = "revoked" } }
    local res, err = c:ping_protected()
    assert.is_nil(err, err and tostring(err))
    assert.equals(200, res.status)
    assert.equals(2, H.exchanges(o.client_id))
    assert.equals(3, H.stats().requests_by_path[PING_PATH])
    assert.equals(1, #find_events(events, "replay_401"))
    assert.equals(1, c:stats().replays_401)
    assert.are_not.equal(old, (c:token()))
  end)

  it("a replay after a real revocation works too", function()
    local c, _, o = H.client_with_log()
    assert(c:ping_protected())
    assert.equals(1, H.revoke(o.client_id).revoked)
    local res = assert(c:ping_protected())
    assert.equals(200, res.status)
    assert.equals(2, H.exchanges(o.client_id))
    assert.equals(1, c:stats().replays_401)
  end)

  it("two 401s -> auth error with status 401", function()
    local c, events, o = H.client_with_log()
    assert(c:ping_protected())
    H.fault { path = PING_PATH, client_id = o.client_id, status = 401, times = 2,
      body = { error = "invalid_token", error_description = "nope" } }
    local res, err = c:ping_protected()
    assert_error(res, err, "auth")
    assert.equals(401, err.status)
    assert.equals(2, err.attempts)
    assert.equals(2, H.exchanges(o.client_id))
    assert.equals(1, #find_events(events, "replay_401"))
    assert.equals(1, c:stats().replays_401)
  end)

  it("403 never triggers an exchange", function()
    local c, events, o = H.client_with_log()
    assert(c:ping_protected())
    H.fault { path = PING_PATH, client_id = o.client_id, status = 403,
      body = { error = "forbidden" } }
    local res, err = c:ping_protected()
    assert_error(res, err, "http")
    assert.equals(403, err.status)
    assert.equals(1, H.exchanges(o.client_id))
    assert.equals(0, #find_events(events, "replay_401"))
    assert.equals(0, c:stats().replays_401)
    assert(c:ping_protected())
    assert.equals(1, H.exchanges(o.client_id))
  end)

  it("a late 401 does not drop a token another client just refreshed", function()
    local o = H.opts()
    local id = o.client_id
    local a = ducky.client(o)
    local b_events = {}
    local armed, a_token = false, nil
    local ob = {}
    for k, v in pairs(o) do ob[k] = v end
    ob.log = function(ev)
      b_events[#b_events + 1] = ev
      -- B has copied its (old) token and is about to send it: meanwhile the old
      -- token is revoked and A refreshes.
      if armed and ev.event == "token" then
        armed = false
        H.revoke(id)
        a:invalidate()
        assert(a:ping_protected())
        a_token = a:token()
      end
    end
    local b = ducky.client(ob)
    assert(b:ping_protected()) -- exchange 1: the old token
    local old = b:token()
    assert.equals(1, H.exchanges(id))
    armed = true
    local res, err = b:ping_protected() -- sent with the old token: 401, late
    assert.is_nil(err, err and tostring(err))
    assert.equals(200, res.status)
    assert.is_string(a_token)
    assert.are_not.equal(old, a_token)
    -- A's fresh token survived B's late 401: B replayed with it, no third exchange
    assert.equals(2, H.exchanges(id))
    assert.equals(1, b:stats().replays_401)
    assert.equals(a_token, (b:token()))
    assert(a:ping_protected())
    assert.equals(a_token, (a:token()))
    assert.equals(2, H.exchanges(id))
  end)
end)

describe("refresh margin (rule 2)", function()
  before_each(function() H.reset() end)
  after_each(function() H.reset_clock() end)

  it("is capped at half a token's life", function()
    local c, events, o = H.client_with_log { refresh_margin = 60 }
    H.config(o.client_id, 4)
    assert(c:ping_protected())
    local tok, left = c:token()
    assert.matches("^tok_", tok)
    assert.is_true(left > 3 and left <= 4, tostring(left))
    assert(c:ping_protected()) -- right away: cached
    assert.equals(1, H.exchanges(o.client_id))
    H.shift_clock(2.2) -- 1.8 s left: inside the (capped) 2 s margin
    assert(c:ping_protected())
    assert.equals(2, H.exchanges(o.client_id))
    local tok2, left2 = c:token()
    assert.are_not.equal(tok, tok2)
    assert.is_true(left2 > 3 and left2 <= 4, tostring(left2))
    local sources = {}
    for _, ev in ipairs(find_events(events, "token")) do sources[#sources + 1] = ev.source end
    assert.same({ "exchange", "memory", "memory", "exchange", "memory" }, sources)
  end)
end)

describe("a token spent on arrival", function()
  before_each(function() H.reset() end)
  after_each(function() H.fix_jitter(nil) end)

  -- found by review: expires_in 1e-7 made one call do 20 exchanges back to
  -- back (the per-hour cap), as each token had expired before it could be used
  it("is an error paced like a failure: one exchange per back-off step", function()
    H.fix_jitter(1) -- the first step is its whole second
    local c, events, o = H.client_with_log { token_cache = false }
    H.config(o.client_id, 1e-7)
    local res, err = c:ping_protected()
    assert.is_nil(res)
    assert.equals("decode", err.kind, tostring(err))
    assert.matches("too soon to use", err.message)
    assert.equals(1, H.exchanges(o.client_id))
    res, err = c:ping_protected() -- within the step: the same error, no exchange
    assert.is_nil(res)
    assert.matches("too soon to use", err.message)
    assert.equals(1, H.exchanges(o.client_id))
    H.config(o.client_id, nil) -- the endpoint mends: the next step gets a token
    H.wait_until(function() return c:ping_protected() ~= nil end, 3, "a token once the endpoint mends", 0.1)
    assert.equals(2, H.exchanges(o.client_id))
    assert.equals(1, #find_events(events, "token"))
    c:close()
  end)
end)

describe("the hourly cap (rule 7)", function()
  before_each(function() H.reset() end)

  -- found by review: the exchange of a leader nobody stepped, taken over by
  -- another client after the stall, published its token uncounted: the cap let
  -- twice its value through
  it("counts the exchange of a leader another client took over", function()
    local o = H.opts{ max_exchanges_per_hour = 2, timeout = 10, token_cache = false }
    H.fault{ path = TOKEN_PATH, client_id = o.client_id, delay = 2, times = 2 }
    local a, b = ducky.client(o), ducky.client(o)
    local op = a:start_token()
    while H.requests_to(TOKEN_PATH) < 1 do a:step(0.05) end -- a's exchange is under way
    assert(b:token()) -- nobody steps a: b takes over after the stall, a second exchange
    while not op:done() do a:step(1) end
    assert(op:result()) -- a's exchange ends too: two in all
    assert.equals(2, H.exchanges(o.client_id))
    b:invalidate()
    local tok, err = b:token()
    assert.is_nil(tok)
    assert.equals("limit", err.kind)
    assert.equals(2, H.exchanges(o.client_id))
    a:close()
    b:close()
  end)
end)

describe("serve-stale (rule 6)", function()
  before_each(function() H.reset() end)
  after_each(function() H.reset_clock() end)

  it("keeps the still-valid token when a refresh inside the margin fails (503)", function()
    local c, events, o = H.client_with_log()
    H.config(o.client_id, 4)
    assert(c:ping_protected())
    local tok = c:token()
    H.shift_clock(2.2)
    H.fault { path = TOKEN_PATH, client_id = o.client_id, status = 503, times = 1 }
    local res, err = c:ping_protected()
    assert.is_nil(err, err and tostring(err))
    assert.equals(200, res.status)
    assert.equals(1, H.exchanges(o.client_id))
    assert.equals(2, H.requests_to(TOKEN_PATH))
    local stale = find_events(events, "stale_token")
    assert.equals(1, #stale)
    assert.is_string(stale[1].reason)
    assert.is_true(stale[1].seconds_left > 0 and stale[1].seconds_left < 2, tostring(stale[1].seconds_left))
    assert.is_true(c:stats().stale_tokens >= 1)
    assert.equals(tok, (c:token()))
    -- no new refresh attempt right after a failed one (5 s pause)
    assert(c:ping_protected())
    assert.equals(2, H.requests_to(TOKEN_PATH))
    assert.equals(1, H.exchanges(o.client_id))
  end)

  it("keeps the still-valid token when the credential is refused meanwhile", function()
    local c, events, o = H.client_with_log()
    H.config(o.client_id, 4)
    assert(c:ping_protected())
    H.shift_clock(2.2)
    H.ban(o.client_id)
    local res, err = c:ping_protected()
    assert.is_nil(err, err and tostring(err))
    assert.equals(200, res.status)
    local stale = find_events(events, "stale_token")
    assert.equals(1, #stale)
    assert.equals("invalid_client", stale[1].reason)
    assert.is_true(c:stats().stale_tokens >= 1)
  end)
end)

describe("revocation protection (rule 7)", function()
  before_each(function() H.reset() end)
  after_each(function() H.reset_clock() end)

  it("after invalid_client, fails fast for auth_backoff without asking again", function()
    local o = H.opts { auth_backoff = 0.7 }
    local c = ducky.client(o)
    H.ban(o.client_id)
    local res, err = c:ping_protected()
    assert_error(res, err, "auth")
    assert.equals("invalid_client", err.code)
    assert.equals(401, err.status)
    assert.equals(1, H.requests_to(TOKEN_PATH))
    local res2, err2 = c:ping_protected()
    assert_error(res2, err2, "auth")
    assert.equals("invalid_client", err2.code)
    assert.equals(1, H.requests_to(TOKEN_PATH))
    -- another client with the same credentials fails fast too
    local res3, err3 = ducky.client(o):ping_protected()
    assert_error(res3, err3, "auth")
    assert.equals("invalid_client", err3.code)
    assert.equals(1, H.requests_to(TOKEN_PATH))
    -- after the backoff the endpoint is asked again
    H.unban(o.client_id)
    H.shift_clock(0.8)
    assert(c:ping_protected())
    assert.equals(2, H.requests_to(TOKEN_PATH))
    assert.equals(1, H.exchanges(o.client_id))
  end)

  it("access_denied (wrong secret) also fails fast", function()
    local o = H.opts { client_secret = "definitely-wrong" }
    local c = ducky.client(o)
    local _, err = c:ping_protected()
    assert.equals("access_denied", err.code)
    local _, err2 = c:ping_protected()
    assert.equals("auth", err2.kind)
    assert.equals("access_denied", err2.code)
    assert.equals(1, H.requests_to(TOKEN_PATH))
  end)

  it("max_exchanges_per_hour: the next exchange is a limit error, not a request", function()
    local o = H.opts { max_exchanges_per_hour = 2 }
    local c = ducky.client(o)
    assert(c:ping_protected())
    c:invalidate()
    assert(c:ping_protected())
    c:invalidate()
    local res, err = c:ping_protected()
    assert_error(res, err, "limit")
    assert.equals(2, H.requests_to(TOKEN_PATH))
    assert.equals(2, H.exchanges(o.client_id))
    local _, err2 = c:token()
    assert.equals("limit", err2.kind)
    assert.equals(2, H.requests_to(TOKEN_PATH))
  end)

  it("failed exchanges never spend max_exchanges_per_hour: the back-off paces them", function()
    H.fix_jitter(1) -- whole steps: the call right after a failure finds the back-off on
    local o = H.opts { max_exchanges_per_hour = 2 }
    local c = ducky.client(o)
    H.fault { path = TOKEN_PATH, client_id = o.client_id, status = 503, times = 5 }
    for i = 1, 5 do
      assert.equals("http", select(2, c:ping_protected()).kind)
      assert.equals(i, H.requests_to(TOKEN_PATH)) -- one try per back-off step, not one per call
      assert.equals("http", select(2, c:ping_protected()).kind)
      assert.equals(i, H.requests_to(TOKEN_PATH))
      H.shift_clock(H.BACKOFF_CAP)
    end
    assert(c:ping_protected()) -- the endpoint is back: a token at once, not a limit error
    assert.equals(6, H.requests_to(TOKEN_PATH))
  end)
end)

describe("the secret never appears (rule 8)", function()
  before_each(function() H.reset() end)

  local TOKEN_PATTERN = "tok_" .. ("%x"):rep(32)

  -- every string reachable from v (keys, values, tostring of tables with metatables)
  local function strings(v, out, seen)
    out, seen = out or {}, seen or {}
    if type(v) == "table" then
      if seen[v] then return out end
      seen[v] = true
      out[#out + 1] = tostring(v)
      for k, x in pairs(v) do
        strings(k, out, seen)
        strings(x, out, seen)
      end
    elseif v ~= nil then
      out[#out + 1] = tostring(v)
    end
    return out
  end

  local function escaped(s)
    return (s:gsub("[^%w%-%._~]", function(ch) return ("%%%02X"):format(ch:byte()) end))
  end

  it("in no error, log event or tostring(client) across many scenarios", function()
    local seen_errors, seen_events, seen_clients, secrets, tokens = {}, {}, {}, {}, {}
    local function run(over, scenario)
      local id = H.new_id("leak-check")
      local o = H.opts(over)
      o.client_id = id
      o.client_secret = over.client_secret or H.secret(id)
      secrets[#secrets + 1] = o.client_secret
      o.log = function(ev) seen_events[#seen_events + 1] = ev end
      local c = ducky.client(o)
      seen_clients[#seen_clients + 1] = tostring(c)
      local results = { scenario(c, id, o) }
      for _, r in ipairs(results) do
        if ducky.is_error(r) then seen_errors[#seen_errors + 1] = r end
      end
      local tok = c:token()
      if type(tok) == "string" then tokens[#tokens + 1] = tok end
      seen_clients[#seen_clients + 1] = tostring(c)
      c:close()
      seen_clients[#seen_clients + 1] = tostring(c)
    end
    local function calls(n)
      return function(c)
        local out = {}
        for _ = 1, n do
          local _, err = c:ping_protected()
          out[#out + 1] = err
        end
        local _, terr = c:token()
        out[#out + 1] = terr
        return (table.unpack or unpack)(out)
      end
    end
    local SECRET = "Zq9-UNIQUE-SECRET-7f3e:%+ é"
    for _, auth in ipairs { "json", "form", "basic" } do
      run({ token_auth = auth }, calls(3))
      run({ token_auth = auth, client_secret = SECRET .. auth }, calls(2))
      run({ token_auth = auth, retries = 1 }, function(c, id)
        H.fault { path = TOKEN_PATH, client_id = id, status = 503, times = 2,
          headers = { ["Retry-After"] = "0" }, body = { error = "unavailable" } }
        return calls(1)(c)
      end)
      run({ token_auth = auth }, function(c, id)
        H.ban(id)
        return calls(2)(c)
      end)
      run({ token_auth = auth }, function(c, id)
        H.token_answer(id, { access_token = "bad token", token_type = "Bearer", expires_in = 60 })
        return calls(1)(c)
      end)
      run({ token_auth = auth }, function(c, id)
        assert(c:ping_protected())
        H.fault { path = PING_PATH, client_id = id, status = 401, times = 2 }
        return calls(1)(c)
      end)
      run({ token_auth = auth, max_exchanges_per_hour = 1 }, function(c)
        assert(c:ping_protected())
        c:invalidate()
        return calls(1)(c)
      end)
      run({ token_auth = auth, token_url = "http://127.0.0.1:1/oauth/token", timeout = 1 }, calls(1))
      run({ token_auth = auth, token_cache = { load = function() error("x") end,
        store = function() error("y") end } }, calls(1))
    end
    assert.is_true(#seen_errors >= 20, "errors collected: " .. #seen_errors)
    assert.is_true(#seen_events >= 20, "events collected: " .. #seen_events)
    local haystack = {}
    for _, e in ipairs(seen_errors) do strings(e, haystack) end
    for _, e in ipairs(seen_events) do strings(e, haystack) end
    for _, s in ipairs(seen_clients) do haystack[#haystack + 1] = s end
    for _, s in ipairs(haystack) do
      for _, secret in ipairs(secrets) do
        assert.is_nil(s:find(secret, 1, true), "secret leaked in: " .. s)
        assert.is_nil(s:find(escaped(secret), 1, true), "encoded secret leaked in: " .. s)
      end
    end
    -- tokens: at most a short fingerprint in log events
    local in_events = {}
    for _, e in ipairs(seen_events) do strings(e, in_events) end
    for _, s in ipairs(in_events) do
      assert.is_nil(s:find(TOKEN_PATTERN), "access token in a log event: " .. s)
      for _, tok in ipairs(tokens) do
        assert.is_nil(s:find(tok, 1, true), "access token in a log event: " .. s)
      end
    end
  end)
end)
