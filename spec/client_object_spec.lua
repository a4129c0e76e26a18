-- The client object: tostring, close/__gc/__close, ducky.is_error, the error
-- object in strings, stats() and cache_key() (spec/client_spec.lua: the options).
local H = require("spec.helpers")
local ducky = require("ducky")

local new = H.client

describe("tostring(client)", function()
  it("never shows the secret, before and after close", function()
    local id = H.new_id("tostring")
    local secret = H.secret(id)
    for _, auth in ipairs({ "json", "form", "basic" }) do
      local c = ducky.client(H.opts{ client_id = id, client_secret = secret, token_auth = auth })
      local s = tostring(c)
      assert.is_string(s)
      assert.is_nil(s:find(secret, 1, true))
      assert.is_nil(s:find("\n", 1, true))
      assert(c:ping_protected())
      assert.is_nil(tostring(c):find(secret, 1, true))
      c:close()
      s = tostring(c)
      assert.is_string(s)
      assert.is_nil(s:find(secret, 1, true))
    end
  end)

  it("the secret is not in errors or log events either", function()
    local id = H.new_id("leak")
    local secret = "very-secret-" .. id
    local seen = {}
    local c = ducky.client(H.opts{ client_id = id, client_secret = secret,
                                   log = function(ev) seen[#seen + 1] = ev end })
    local res, err = c:ping_protected()
    assert.is_nil(res)
    assert.equals("auth", err.kind)
    assert.is_nil(tostring(err):find(secret, 1, true))
    for k, v in pairs(err) do
      if type(v) == "string" then assert.is_nil(v:find(secret, 1, true), k) end
    end
    for _, ev in ipairs(seen) do
      for k, v in pairs(ev) do
        if type(v) == "string" then assert.is_nil(v:find(secret, 1, true), k) end
      end
    end
    c:close()
  end)
end)

describe("close", function()
  it("is idempotent", function()
    local c = new()
    assert(c:ping())
    c:close()
    c:close()
    c:close()
  end)

  it("a closed client raises on every method", function()
    local c = new()
    assert(c:ping_protected())
    c:close()
    local calls = {
      ping = function() return c:ping() end,
      ping_protected = function() return c:ping_protected() end,
      request = function() return c:request("GET", "/echo") end,
      token = function() return c:token() end,
      invalidate = function() return c:invalidate() end,
      stats = function() return c:stats() end,
    }
    for name, f in pairs(calls) do
      local ok, e = pcall(f)
      assert.is_false(ok, name .. " did not raise on a closed client")
      assert.matches("closed", tostring(e), 1, true)
    end
  end)

  it("a never-used client closes cleanly", function()
    for _ = 1, 10 do new():close() end
  end)

  it("__close closes the client at the end of its block (Lua 5.4)", function()
    local chunk = (loadstring or load)([[
      local ducky, opts = ...
      local kept
      do
        local c <close> = ducky.client(opts)
        kept = c
        local res = assert(c:ping())
        assert(res.status == 200)
      end
      return kept
    ]])
    if not chunk then
      pending("this Lua has no <close> variables")
      return
    end
    local c = chunk(ducky, H.opts())
    local ok, e = pcall(c.ping, c)
    assert.is_false(ok)
    assert.matches("closed", tostring(e), 1, true)
    assert.is_string(tostring(c))
  end)

  it("__close also runs when the block exits with an error", function()
    local chunk = (loadstring or load)([[
      local ducky, opts, box = ...
      local c <close> = ducky.client(opts)
      box.c = c
      error("leaving the block")
    ]])
    if not chunk then
      pending("this Lua has no <close> variables")
      return
    end
    local box = {}
    local ok, e = pcall(chunk, ducky, H.opts(), box)
    assert.is_false(ok)
    assert.matches("leaving the block", tostring(e), 1, true)
    local ok2 = pcall(box.c.ping, box.c)
    assert.is_false(ok2)
    box.c:close() -- still idempotent after __close
  end)
end)

describe("ducky.is_error", function()
  it("is true for a ducky error", function()
    local c = new{ base_url = H.base_url() }
    local res, err = c:request("GET", "/status/404")
    assert.is_nil(res)
    assert.is_true(ducky.is_error(err))
    c:close()
  end)

  it("is true for a config error made without any request", function()
    local c = new()
    local res, err = c:request("GET", "http://example.invalid/v3/echo")
    assert.is_nil(res)
    assert.is_true(ducky.is_error(err))
    assert.equals("config", err.kind)
    c:close()
  end)

  it("is false for anything else", function()
    local c = new()
    for _, v in ipairs({ 1, "ducky http error", true, {}, { kind = "http", message = "x" },
                         c, print, setmetatable({}, { __tostring = function() return "e" end }) }) do
      assert.is_false(ducky.is_error(v), tostring(v))
    end
    assert.is_false(ducky.is_error(nil))
    assert.is_false(ducky.is_error())
    c:close()
  end)

  it("assert(res, err) raises with a readable one-line message", function()
    local c = new()
    local ok, e = pcall(function() return assert(c:request("GET", "/status/500")) end)
    assert.is_false(ok)
    local msg = tostring(e)
    assert.matches("^ducky http error: ", msg)
    assert.truthy(msg:find("500", 1, true), msg)
    assert.is_nil(msg:find("\n", 1, true))
    c:close()
  end)
end)

describe("the error object in strings", function()
  it("joins strings as its one line, on either side of .., and refuses other values", function()
    local c = new()
    local _, err = c:request("GET", "/status/404")
    assert.equals("failed: " .. tostring(err), "failed: " .. err)
    assert.equals(tostring(err) .. "!", err .. "!")
    assert.equals(tostring(err) .. 1, err .. 1)
    H.raises(function() return err .. {} end, "attempt to concatenate")
    H.raises(function() return err .. err .. nil end, "attempt to concatenate")
    c:close()
  end)
end)

describe("client:stats", function()
  it("counts requests and token fetches of this client", function()
    local c = new()
    assert(c:ping())
    assert(c:ping_protected())
    assert(c:ping_protected())
    local st = c:stats()
    assert.equals(3, st.requests)
    assert.equals(1, st.token_fetches)
    assert.equals(1, st.token_cache_hits)
    assert.equals(0, st.retries)
    -- by source, in the words of token() and the token events
    assert.same({ memory = 1, exchange = 1, file = 0, store = 0 }, st.tokens)
    local _, _, info = c:token()
    assert.equals("memory", info.source)
    assert.equals(2, c:stats().tokens.memory)
    c:close()
  end)

  it("stats(t) fills t and its tables in place, for a caller reading them on every call", function()
    local c = new()
    assert(c:ping_protected())
    local t = { mine = true }
    assert.equals(t, c:stats(t))
    local tokens, limits = t.tokens, t.rate_limit
    assert(c:ping_protected())
    c:stats(t)
    assert.equals(tokens, t.tokens)
    assert.equals(limits, t.rate_limit)
    assert.same(c:stats().tokens, t.tokens)
    assert.equals(2, t.requests)
    assert.is_true(t.mine)
    c:close()
  end)

  it("cache_key(): the same for the same credentials, another for another secret", function()
    local o = H.opts{}
    local a, b = ducky.client(o), ducky.client(o)
    assert.matches("^%x+$", a:cache_key())
    assert.equals(64, #a:cache_key())
    assert.equals(a:cache_key(), b:cache_key())
    local other = {}
    for k, v in pairs(o) do other[k] = v end
    other.client_secret = o.client_secret .. "-other"
    assert.are_not.equals(a:cache_key(), ducky.client(other):cache_key())
    a:close()
    assert.has_error(function() a:cache_key() end, "client:cache_key: attempt to use a closed ducky client")
  end)
end)
