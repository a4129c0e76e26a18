-- Token rules (DESIGN.md "Token rules", "Observability") against the local stand-in.
local H = require("spec.helpers")
local ducky = require("ducky")
local cjson = require("cjson")
local socket = require("socket")
local mime = require("mime")

local TOKEN_PATH = "/oauth/token"
local PING_PATH = "/v3/ping/protected"

local find_events = H.events_named

local function token_requests()
  return H.stats().requests_by_path[TOKEN_PATH] or 0
end

-- RFC 6749 Appendix B form decoding ('+' is a space)
local function form_decode(s)
  return (s:gsub("+", " "):gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

local assert_error = H.assert_error

-- a 200 answer from the token endpoint with `body`, for one client id
local function token_answer(id, body)
  H.fault { path = TOKEN_PATH, client_id = id, status = 200,
    body = type(body) == "string" and body or cjson.encode(body) }
end

describe("token cache", function()
  before_each(function() H.reset() end)
  after_each(function() H.reset_clock() end)

  it("50 protected pings make exactly one token exchange", function()
    local c, events = H.client_with_log()
    for i = 1, 50 do
      local res, err = c:ping_protected()
      assert.is_nil(err, err and tostring(err))
      assert.equals(200, res.status, "call " .. i)
      assert.is_true(res.json.ready)
    end
    local st = H.stats()
    assert.equals(50, st.requests_by_path[PING_PATH])
    assert.equals(1, st.requests_by_path[TOKEN_PATH])
    assert.equals(1, st.exchanges)
    local cs = c:stats()
    assert.equals(50, cs.requests)
    assert.equals(1, cs.token_fetches)
    assert.equals(49, cs.token_cache_hits)
    assert.equals(0, cs.errors)
    local tokens = find_events(events, "token")
    assert.equals(50, #tokens)
    assert.equals("exchange", tokens[1].source)
    for i = 2, 50 do assert.equals("memory", tokens[i].source) end
  end)

  it("two clients with the same credentials share one token", function()
    local o = H.opts()
    local a, b = ducky.client(o), ducky.client(o)
    assert(a:ping_protected())
    assert(b:ping_protected())
    assert(a:ping_protected())
    assert.equals(1, H.exchanges(o.client_id))
    assert.equals(0, b:stats().token_fetches)
    assert.equals(1, b:stats().token_cache_hits)
    assert.equals((a:token()), (b:token()))
  end)

  it("a different secret never shares: the second client is refused", function()
    local o = H.opts()
    local a = ducky.client(o)
    assert(a:ping_protected())
    local before = token_requests()
    local o2 = {}
    for k, v in pairs(o) do o2[k] = v end
    o2.client_secret = "wrong-" .. o.client_secret
    local b = ducky.client(o2)
    local res, err = b:ping_protected()
    assert_error(res, err, "auth")
    assert.equals(401, err.status)
    assert.equals("access_denied", err.code)
    assert.equals(before + 1, token_requests())
    assert.equals(1, H.exchanges(o.client_id))
    local tok, terr = b:token()
    assert.is_nil(tok)
    assert.equals("auth", terr.kind)
  end)

  it("a different audience, token_params or token_auth gets its own exchange", function()
    local o = H.opts()
    local id = o.client_id
    local function with(over)
      local t = {}
      for k, v in pairs(o) do t[k] = v end
      for k, v in pairs(over) do t[k] = v end
      return ducky.client(t)
    end
    assert(with({}):ping_protected())
    assert.equals(1, H.exchanges(id))
    assert(with({ token_params = { scope = "read:footprints" } }):ping_protected())
    assert.equals(2, H.exchanges(id))
    assert(with({ token_auth = "form" }):ping_protected())
    assert.equals(3, H.exchanges(id))
    assert(with({ token_auth = "basic" }):ping_protected())
    assert.equals(4, H.exchanges(id))
    -- another audience: the stand-in refuses it, which proves the endpoint was asked
    local before = token_requests()
    local res, err = with({ audience = "some-other-api" }):ping_protected()
    assert_error(res, err, "auth")
    assert.equals(403, err.status)
    assert.equals(before + 1, token_requests())
    assert.equals(4, H.exchanges(id))
    -- and the original is still cached
    assert(with({}):ping_protected())
    assert.equals(4, H.exchanges(id))
  end)

  it("token_cache = false still caches within the process", function()
    local o = H.opts { token_cache = false }
    local c = ducky.client(o)
    for _ = 1, 3 do assert(c:ping_protected()) end
    assert.equals(1, H.exchanges(o.client_id))
  end)

  it("invalidate() makes the next call exchange again", function()
    local c, events, o = H.client_with_log()
    assert(c:ping_protected())
    c:invalidate()
    local res = assert(c:ping_protected())
    assert.equals(200, res.status)
    assert.equals(2, H.exchanges(o.client_id))
    local tokens = find_events(events, "token")
    assert.equals("exchange", tokens[2].source)
    -- invalidate on another client with the same credentials drops the shared token
    local other = ducky.client(o)
    other:invalidate()
    assert(c:ping_protected())
    assert.equals(3, H.exchanges(o.client_id))
  end)
end)

describe("token request", function()
  before_each(function() H.reset() end)

  it("json: an Auth0-style JSON body", function()
    local o = H.opts { token_auth = "json" }
    local c = ducky.client(o)
    assert(c:ping_protected())
    local r = H.stats().last_token_request
    assert.matches("^application/json", r.content_type)
    assert.equals("json", r.auth_method)
    assert.is_false(r.authorization)
    assert.equals(o.client_id, r.client_id)
    assert.same({ client_id = o.client_id, audience = H.audience(),
      grant_type = "client_credentials" }, r.params)
    local body = cjson.decode(r.body)
    assert.equals(o.client_secret, body.client_secret)
    assert.equals(1, H.exchanges(o.client_id))
  end)

  it("form: an RFC 6749 form body with the secret in it", function()
    local o = H.opts { token_auth = "form" }
    local c = ducky.client(o)
    assert(c:ping_protected())
    local r = H.stats().last_token_request
    assert.matches("^application/x%-www%-form%-urlencoded", r.content_type)
    assert.equals("form", r.auth_method)
    assert.is_false(r.authorization)
    assert.same({ client_id = o.client_id, audience = H.audience(),
      grant_type = "client_credentials" }, r.params)
    assert.matches("client_secret=", r.body, 1, true)
    assert.equals(1, H.exchanges(o.client_id))
  end)

  it("basic: HTTP Basic client authentication, no secret in the body", function()
    local o = H.opts { token_auth = "basic" }
    local c = ducky.client(o)
    assert(c:ping_protected())
    local r = H.stats().last_token_request
    assert.matches("^application/x%-www%-form%-urlencoded", r.content_type)
    assert.equals("basic", r.auth_method)
    assert.is_true(r.authorization)
    assert.matches("^Basic ", r.authorization_value)
    assert.same({ audience = H.audience(), grant_type = "client_credentials" }, r.params)
    assert.is_nil(r.body:find("client_secret", 1, true))
    assert.is_nil(r.body:find(o.client_secret, 1, true))
    assert.equals(1, H.exchanges(o.client_id))
  end)

  for _, auth in ipairs { "json", "form", "basic" } do
    it(auth .. ": ids and secrets with ':' '%' '+' ' ' and non-ASCII", function()
      local id = H.new_id("we:ird%2B+ id é ü")
      local o = H.opts { client_id = id, client_secret = H.secret(id), token_auth = auth }
      local c = ducky.client(o)
      local res, err = c:ping_protected()
      assert.is_nil(err, err and tostring(err))
      assert.equals(200, res.status)
      assert.equals(1, H.exchanges(id))
      local r = H.stats().last_token_request
      assert.equals(id, r.client_id)
      assert.equals(auth, r.auth_method)
      if auth == "basic" then
        -- RFC 6749 §2.3.1: form-encode id and secret, join with ':', then base64
        local raw = mime.unb64(r.authorization_value:match("^Basic (%S+)$"))
        local eid, esecret = raw:match("^([^:]*):([^:]*)$")
        assert.is_string(eid, "exactly one ':' in " .. raw)
        assert.equals(id, form_decode(eid))
        assert.equals(o.client_secret, form_decode(esecret))
        assert.is_nil(r.body:find("client_secret", 1, true))
      end
    end)
  end

  for _, auth in ipairs { "json", "form" } do
    it(auth .. ": token_params reach the token endpoint", function()
      local o = H.opts { token_auth = auth,
        token_params = { scope = "read:footprints write:x", resource = "https://r.example/a?b=c&d" } }
      local c = ducky.client(o)
      assert(c:ping_protected())
      local p = H.stats().last_token_request.params
      assert.equals("read:footprints write:x", p.scope)
      assert.equals("https://r.example/a?b=c&d", p.resource)
      assert.equals("client_credentials", p.grant_type)
      assert.equals(H.audience(), p.audience)
      assert.equals(o.client_id, p.client_id)
    end)
  end
end)

describe("token answer validation", function()
  before_each(function() H.reset() end)
  after_each(function() H.reset_clock() end)

  local bad = {
    { "missing access_token", { token_type = "Bearer", expires_in = 3600 } },
    { "empty access_token", { access_token = "", token_type = "Bearer", expires_in = 3600 } },
    { "non-string access_token", { access_token = 12345, token_type = "Bearer", expires_in = 3600 } },
    { "table access_token", { access_token = { "x" }, token_type = "Bearer", expires_in = 3600 } },
    { "control char in access_token",
      '{"access_token":"abc\\u0001def","token_type":"Bearer","expires_in":3600}' },
    { "newline in access_token",
      '{"access_token":"abc\\r\\nX-Evil: 1","token_type":"Bearer","expires_in":3600}' },
    { "space in access_token", { access_token = "abc def", token_type = "Bearer", expires_in = 3600 } },
    { "token_type mac", { access_token = "abcdef", token_type = "mac", expires_in = 3600 } },
    { "token_type missing", { access_token = "abcdef", expires_in = 3600 } },
    { "expires_in 0", { access_token = "abcdef", token_type = "Bearer", expires_in = 0 } },
    { "expires_in negative", { access_token = "abcdef", token_type = "Bearer", expires_in = -5 } },
    { "expires_in string", { access_token = "abcdef", token_type = "Bearer", expires_in = "3600" } },
    { "expires_in missing", { access_token = "abcdef", token_type = "Bearer" } },
    { "not JSON", "<html>this is not json</html>" },
    { "truncated JSON", '{"access_token":"abc' },
    { "a JSON array", '["abcdef","Bearer",3600]' },
    { "an empty JSON array", "[]" },
    { "a JSON string", '"abcdef"' },
    { "empty body", "" },
  }
  for _, case in ipairs(bad) do
    it(case[1] .. " -> decode error", function()
      local o = H.opts()
      local c = ducky.client(o)
      if case[2] == "" then
        H.fault { path = TOKEN_PATH, client_id = o.client_id, status = 200, body = "" }
      else
        token_answer(o.client_id, case[2])
      end
      local res, err = c:ping_protected()
      assert_error(res, err, "decode")
      assert.equals(0, H.stats().requests_by_path[PING_PATH] or 0)
      -- a failed exchange is paced: the same error, the endpoint not asked
      local _, again = c:token()
      assert.equals("decode", again.kind)
      assert.equals(1, token_requests())
      H.shift_clock(H.BACKOFF_CAP) -- one back-off step later
      local tok, left = c:token() -- the fault is spent: a real exchange now
      assert.is_string(tok, tostring(left))
      assert.matches("^tok_", tok)
      assert(c:ping_protected())
    end)
  end

  it("token_type 'bearer' in lower case is accepted", function()
    -- a real token for the id, fetched by a client with another cache key
    local o = H.opts()
    local first = ducky.client(o)
    local real = assert(first:token())
    local o2 = {}
    for k, v in pairs(o) do o2[k] = v end
    o2.token_auth = "form"
    local c = ducky.client(o2)
    token_answer(o.client_id, { access_token = real, token_type = "bearer", expires_in = 3600 })
    local res, err = c:ping_protected()
    assert.is_nil(err, err and tostring(err))
    assert.equals(200, res.status)
    local tok, left = c:token()
    assert.equals(real, tok)
    assert.is_true(left > 3590 and left <= 3600, tostring(left))
    assert.equals(1, H.exchanges(o.client_id))
  end)
end)

describe("token endpoint errors", function()
  after_each(function() H.reset_clock() end)
  before_each(function() H.reset() end)

  it("401 access_denied -> auth error with status, code and description", function()
    local o = H.opts { client_secret = "not-the-secret" }
    local c = ducky.client(o)
    local res, err = c:ping_protected()
    assert_error(res, err, "auth")
    assert.equals(401, err.status)
    assert.equals("access_denied", err.code)
    assert.equals("Unauthorized", err.description)
    assert.equals(0, H.stats().requests_by_path[PING_PATH] or 0)
  end)

  it("403 -> auth error with status, code and description", function()
    local o = H.opts()
    local c = ducky.client(o)
    H.fault { path = TOKEN_PATH, client_id = o.client_id, status = 403,
      body = { error = "unauthorized_client", error_description = "Grant type not allowed" } }
    local res, err = c:ping_protected()
    assert_error(res, err, "auth")
    assert.equals(403, err.status)
    assert.equals("unauthorized_client", err.code)
    assert.equals("Grant type not allowed", err.description)
  end)

  it("400 invalid_request -> auth error", function()
    local o = H.opts()
    local c = ducky.client(o)
    H.fault { path = TOKEN_PATH, client_id = o.client_id, status = 400,
      body = { error = "invalid_request", error_description = "Missing required parameter" } }
    local res, err = c:ping_protected()
    assert_error(res, err, "auth")
    assert.equals(400, err.status)
    assert.equals("invalid_request", err.code)
    assert.equals("Missing required parameter", err.description)
    -- not a refused credential: no auth_backoff, one back-off step, then an exchange
    H.shift_clock(H.BACKOFF_CAP)
    assert(c:ping_protected())
    assert.equals(1, H.exchanges(o.client_id))
  end)

  for _, status in ipairs { 429, 503 } do
    it(status .. " is retried, then an http error with the status", function()
      local c, events, o = H.client_with_log { retries = 2 }
      H.fault { path = TOKEN_PATH, client_id = o.client_id, status = status, times = 3,
        headers = { ["Retry-After"] = "0" },
        body = { error = "too_many_requests", error_description = "slow down" } }
      local res, err = c:ping_protected()
      assert_error(res, err, "http")
      assert.equals(status, err.status)
      assert.equals(3, err.attempts)
      assert.equals(3, token_requests())
      assert.equals(0, H.exchanges(o.client_id))
      assert.equals(2, c:stats().retries)
      local retries = find_events(events, "retry")
      assert.equals(2, #retries)
      assert.equals(2, retries[1].attempt)
      assert.equals(3, retries[2].attempt)
      assert.equals(tostring(status), retries[2].reason)
    end)

    it(status .. " once, then the retry gets a token", function()
      local c, events, o = H.client_with_log { retries = 2 }
      H.fault { path = TOKEN_PATH, client_id = o.client_id, status = status,
        headers = { ["Retry-After"] = "0" } }
      local res, err = c:ping_protected()
      assert.is_nil(err, err and tostring(err))
      assert.equals(200, res.status)
      assert.equals(2, token_requests())
      assert.equals(1, H.exchanges(o.client_id))
      local retries = find_events(events, "retry")
      assert.equals(1, #retries)
      assert.equals(2, retries[1].attempt)
      assert.equals(tostring(status), retries[1].reason)
      assert.equals(0, retries[1].wait)
    end)
  end
end)

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

  it("is capped at half a token's life", function()
    local c, events, o = H.client_with_log { refresh_margin = 60 }
    H.config(o.client_id, 4)
    assert(c:ping_protected())
    local tok, left = c:token()
    assert.matches("^tok_", tok)
    assert.is_true(left > 3 and left <= 4, tostring(left))
    assert(c:ping_protected()) -- right away: cached
    assert.equals(1, H.exchanges(o.client_id))
    socket.sleep(2.2) -- 1.8 s left: inside the (capped) 2 s margin
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

describe("serve-stale (rule 6)", function()
  before_each(function() H.reset() end)

  it("keeps the still-valid token when a refresh inside the margin fails (503)", function()
    local c, events, o = H.client_with_log()
    H.config(o.client_id, 4)
    assert(c:ping_protected())
    local tok = c:token()
    socket.sleep(2.2)
    H.fault { path = TOKEN_PATH, client_id = o.client_id, status = 503, times = 1 }
    local res, err = c:ping_protected()
    assert.is_nil(err, err and tostring(err))
    assert.equals(200, res.status)
    assert.equals(1, H.exchanges(o.client_id))
    assert.equals(2, token_requests())
    local stale = find_events(events, "stale_token")
    assert.equals(1, #stale)
    assert.is_string(stale[1].reason)
    assert.is_true(stale[1].seconds_left > 0 and stale[1].seconds_left < 2, tostring(stale[1].seconds_left))
    assert.is_true(c:stats().stale_tokens >= 1)
    assert.equals(tok, (c:token()))
    -- no new refresh attempt right after a failed one (5 s pause)
    assert(c:ping_protected())
    assert.equals(2, token_requests())
    assert.equals(1, H.exchanges(o.client_id))
  end)

  it("keeps the still-valid token when the credential is refused meanwhile", function()
    local c, events, o = H.client_with_log()
    H.config(o.client_id, 4)
    assert(c:ping_protected())
    socket.sleep(2.2)
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
    assert.equals(1, token_requests())
    local res2, err2 = c:ping_protected()
    assert_error(res2, err2, "auth")
    assert.equals("invalid_client", err2.code)
    assert.equals(1, token_requests())
    -- another client with the same credentials fails fast too
    local res3, err3 = ducky.client(o):ping_protected()
    assert_error(res3, err3, "auth")
    assert.equals("invalid_client", err3.code)
    assert.equals(1, token_requests())
    -- after the backoff the endpoint is asked again
    H.unban(o.client_id)
    socket.sleep(0.8)
    assert(c:ping_protected())
    assert.equals(2, token_requests())
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
    assert.equals(1, token_requests())
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
    assert.equals(2, token_requests())
    assert.equals(2, H.exchanges(o.client_id))
    local _, err2 = c:token()
    assert.equals("limit", err2.kind)
    assert.equals(2, token_requests())
  end)

  it("failed exchanges never spend max_exchanges_per_hour: the back-off paces them", function()
    local o = H.opts { max_exchanges_per_hour = 2 }
    local c = ducky.client(o)
    H.fault { path = TOKEN_PATH, client_id = o.client_id, status = 503, times = 5 }
    for i = 1, 5 do
      assert.equals("http", select(2, c:ping_protected()).kind)
      assert.equals(i, token_requests()) -- one try per back-off step, not one per call
      assert.equals("http", select(2, c:ping_protected()).kind)
      assert.equals(i, token_requests())
      H.shift_clock(H.BACKOFF_CAP)
    end
    assert(c:ping_protected()) -- the endpoint is back: a token at once, not a limit error
    assert.equals(6, token_requests())
  end)
end)

describe("custom token store", function()
  before_each(function() H.reset() end)

  it("store receives (key, entry) after an exchange", function()
    local calls = {}
    local store = {
      load = function() return nil end,
      store = function(key, entry) calls[#calls + 1] = { key = key, entry = entry } end,
    }
    local c, _, o = H.client_with_log { token_cache = store }
    H.config(o.client_id, 600)
    local t0 = os.time()
    assert(c:ping_protected())
    assert(c:ping_protected())
    assert.equals(1, #calls)
    local key, e = calls[1].key, calls[1].entry
    assert.is_string(key)
    assert.is_true(#key > 0)
    assert.is_nil(key:find(o.client_secret, 1, true))
    assert.equals((c:token()), e.access_token)
    assert.equals("Bearer", e.token_type)
    assert.equals(600, e.expires_in)
    assert.is_true(e.expires_at >= t0 + 599 and e.expires_at <= os.time() + 601, tostring(e.expires_at))
    -- invalidate drops it from the store
    c:invalidate()
    assert.equals(2, #calls)
    assert.equals(key, calls[2].key)
    assert.is_nil(calls[2].entry)
  end)

  it("a client with a different key does not see another key's entry", function()
    local db = {}
    local store = {
      load = function(key) return db[key] end,
      store = function(key, entry) db[key] = entry end,
    }
    local o = H.opts { token_cache = store }
    assert(ducky.client(o):ping_protected())
    local o2 = {}
    for k, v in pairs(o) do o2[k] = v end
    o2.token_auth = "form"
    local c2 = ducky.client(o2)
    assert(c2:ping_protected())
    assert.equals(2, H.exchanges(o.client_id))
    assert.equals(0, c2:stats().token_store_hits)
  end)

  it("a valid entry from load makes a client skip the exchange", function()
    local slot
    local loads = 0
    local store = { -- one slot whatever the key: both clients map to it
      load = function() loads = loads + 1; return slot end,
      store = function(_, entry) slot = entry end,
    }
    local o = H.opts { token_cache = store }
    local a = ducky.client(o)
    assert(a:ping_protected())
    assert.equals(1, H.exchanges(o.client_id))
    assert.is_table(slot)
    local o2 = {}
    for k, v in pairs(o) do o2[k] = v end
    o2.token_auth = "form" -- another cache key: the memory cache cannot help
    local events = {}
    o2.log = function(ev) events[#events + 1] = ev end
    local b = ducky.client(o2)
    local res, err = b:ping_protected()
    assert.is_nil(err, err and tostring(err))
    assert.equals(200, res.status)
    assert.equals(1, H.exchanges(o.client_id))
    assert.equals(1, token_requests())
    assert.equals(1, b:stats().token_store_hits)
    assert.equals(0, b:stats().token_fetches)
    assert.equals("store", find_events(events, "token")[1].source)
    assert.equals(slot.access_token, (b:token()))
    assert.is_true(loads >= 2)
  end)

  it("an expired entry from load is not used", function()
    local o = H.opts()
    local real = assert(ducky.client(o):token())
    local o2 = {}
    for k, v in pairs(o) do o2[k] = v end
    o2.token_auth = "form"
    o2.token_cache = {
      load = function()
        return { access_token = real, token_type = "Bearer", expires_at = os.time() - 10, expires_in = 3600 }
      end,
      store = function() end,
    }
    local b = ducky.client(o2)
    assert(b:ping_protected())
    assert.equals(2, H.exchanges(o.client_id))
    assert.equals(0, b:stats().token_store_hits)
  end)

  it("errors raised in load and store are logged as store_error; the request succeeds", function()
    local c, events, o = H.client_with_log { token_cache = {
      load = function() error("load exploded") end,
      store = function() error("store exploded") end,
    } }
    local res, err = c:ping_protected()
    assert.is_nil(err, err and tostring(err))
    assert.equals(200, res.status)
    assert.equals(1, H.exchanges(o.client_id))
    local errs = find_events(events, "store_error")
    local loads, stores = 0, 0
    for _, ev in ipairs(errs) do
      assert.equals("store", ev.source)
      assert.is_string(ev.reason)
      if ev.reason:find("load exploded", 1, true) then loads = loads + 1 end
      if ev.reason:find("store exploded", 1, true) then stores = stores + 1 end
    end
    assert.is_true(loads >= 1, "a store_error for load")
    assert.equals(1, stores)
    assert.equals(#errs, loads + stores)
    assert(c:ping_protected()) -- from memory: the store is not asked again
    assert.equals(#errs, #find_events(events, "store_error"))
    c:invalidate() -- store(key, nil) raising is logged too, not raised
    local after = find_events(events, "store_error")
    assert.equals(#errs + 1, #after)
    assert.matches("store exploded", after[#after].reason, 1, true)
    assert.equals(1, H.exchanges(o.client_id))
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
        token_answer(id, { access_token = "bad token", token_type = "Bearer", expires_in = 60 })
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
