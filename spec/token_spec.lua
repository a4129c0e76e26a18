-- Token rules (DESIGN.md "Token rules", "Observability") against the local stand-in:
-- the cache, the token request, the answer's checks and the endpoint's errors.
-- The rules after that (401 replay, margin, serve-stale, protection, the secret):
-- spec/token_rules_spec.lua; custom token stores: spec/custom_store_spec.lua.
local H = require("spec.helpers")
local ducky = require("ducky")
local cjson = require("cjson")
local mime = require("mime")

local TOKEN_PATH = "/oauth/token"
local PING_PATH = "/v3/ping/protected"

local find_events = H.events_named

-- RFC 6749 Appendix B form decoding ('+' is a space)
local function form_decode(s)
  return (s:gsub("+", " "):gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

local assert_error = H.assert_error

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
    local before = H.requests_to(TOKEN_PATH)
    local o2 = {}
    for k, v in pairs(o) do o2[k] = v end
    o2.client_secret = "wrong-" .. o.client_secret
    local b = ducky.client(o2)
    local res, err = b:ping_protected()
    assert_error(res, err, "auth")
    assert.equals(401, err.status)
    assert.equals("access_denied", err.code)
    assert.equals(before + 1, H.requests_to(TOKEN_PATH))
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
    local before = H.requests_to(TOKEN_PATH)
    local res, err = with({ audience = "some-other-api" }):ping_protected()
    assert_error(res, err, "auth")
    assert.equals(403, err.status)
    assert.equals(before + 1, H.requests_to(TOKEN_PATH))
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
      -- the first back-off step its whole 1 s (it draws from 0 to 1 s: a short
      -- draw had ended by the token() below under ASan, seen in .ci/run)
      H.fix_jitter(1)
      local o = H.opts()
      local c = ducky.client(o)
      if case[2] == "" then
        H.fault { path = TOKEN_PATH, client_id = o.client_id, status = 200, body = "" }
      else
        H.token_answer(o.client_id, case[2])
      end
      local res, err = c:ping_protected()
      assert_error(res, err, "decode")
      assert.equals(0, H.stats().requests_by_path[PING_PATH] or 0)
      -- a failed exchange is paced: the same error, the endpoint not asked
      local _, again = c:token()
      assert.equals("decode", again.kind)
      assert.equals(1, H.requests_to(TOKEN_PATH))
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
    H.token_answer(o.client_id, { access_token = real, token_type = "bearer", expires_in = 3600 })
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
      assert.equals(3, H.requests_to(TOKEN_PATH))
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
      assert.equals(2, H.requests_to(TOKEN_PATH))
      assert.equals(1, H.exchanges(o.client_id))
      local retries = find_events(events, "retry")
      assert.equals(1, #retries)
      assert.equals(2, retries[1].attempt)
      assert.equals(tostring(status), retries[1].reason)
      assert.equals(0, retries[1].wait)
    end)
  end
end)
