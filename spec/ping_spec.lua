-- client:ping() (no token) and client:ping_protected() (with the token),
-- over plain HTTP and over HTTPS with the stand-in's CA.
local H = require("spec.helpers")
local ducky = require("ducky")

local transports = {
  http = function() return {} end,
  https = function()
    return { base_url = H.base_url("https"), token_url = H.token_url("https"), ca_file = H.ca_file() }
  end,
}

for _, kind in ipairs({ "http", "https" }) do
  describe("ping over " .. kind, function()
    local c, id

    before_each(function()
      local o = H.opts(transports[kind]())
      id = o.client_id
      c = ducky.client(o)
    end)

    after_each(function() c:close() end)

    it("ping() answers 200 pong in one attempt", function()
      local before = H.stats().requests_by_path["/v3/ping"] or 0
      local res, err = c:ping()
      assert.is_nil(err)
      assert.equals(200, res.status)
      assert.equals(1, res.attempts)
      assert.is_table(res.json)
      assert.equals("pong", res.json.message)
      assert.is_string(res.body)
      assert.same({ message = "pong" }, require("cjson").decode(res.body))
      assert.matches("^application/json", res.headers["content-type"])
      assert.equals(before + 1, H.stats().requests_by_path["/v3/ping"])
    end)

    it("ping() sends no Authorization header and makes no token exchange", function()
      local res = assert(c:ping())
      assert.equals(200, res.status)
      local st = H.stats()
      assert.is_false(st.last_ping_had_auth)
      assert.equals("/v3/ping", st.last_api_auth.path)
      assert.is_false(st.last_api_auth.authorization)
      assert.equals(0, H.exchanges(id))
      assert.equals(0, c:stats().token_fetches)
    end)

    it("ping() sends no Authorization header even when a token is cached", function()
      assert(c:ping_protected())
      assert.equals(1, H.exchanges(id))
      local res = assert(c:ping())
      assert.equals("pong", res.json.message)
      local st = H.stats()
      assert.is_false(st.last_ping_had_auth)
      assert.is_false(st.last_api_auth.authorization)
      assert.are_not.equals(id, st.last_api_auth.client_id)
      assert.equals(1, H.exchanges(id))
    end)

    it("ping_protected() gets a token and answers ready = true", function()
      local res, err = c:ping_protected()
      assert.is_nil(err)
      assert.equals(200, res.status)
      assert.equals(1, res.attempts)
      assert.is_true(res.json.ready)
      assert.equals("pong", res.json.message)
      local st = H.stats()
      assert.equals("/v3/ping/protected", st.last_api_auth.path)
      assert.is_true(st.last_api_auth.authorization)
      assert.equals(id, st.last_api_auth.client_id)
      assert.equals(1, st.exchanges_by_client[id])
    end)

    it("ping_protected() reuses the token", function()
      for _ = 1, 5 do
        local res = assert(c:ping_protected())
        assert.is_true(res.json.ready)
      end
      assert.equals(1, H.exchanges(id))
      local st = c:stats()
      assert.equals(5, st.requests)
      assert.equals(1, st.token_fetches)
      assert.equals(4, st.token_cache_hits)
    end)

    it("ping_protected() with a wrong secret is an auth error", function()
      local o = H.opts(transports[kind]())
      o.client_secret = "not-the-secret"
      local bad = ducky.client(o)
      local res, err = bad:ping_protected()
      assert.is_nil(res)
      assert.is_true(ducky.is_error(err))
      assert.equals("auth", err.kind)
      assert.equals("access_denied", err.code)
      assert.is_nil(H.stats().exchanges_by_client[o.client_id])
      -- ping needs no credentials, so it still works
      assert.equals(200, assert(bad:ping()).status)
      bad:close()
    end)
  end)
end

describe("ping over https", function()
  it("without the stand-in's CA is a tls error", function()
    local c = ducky.client(H.opts{ base_url = H.base_url("https"), token_url = H.token_url("https"),
                                   ca_file = H.other_ca_file() })
    local res, err = c:ping()
    assert.is_nil(res)
    assert.equals("tls", err.kind)
    c:close()
  end)
end)
