-- The constructor and the client object: options, defaults, environment,
-- module constants, tostring, close/__gc/__close, ducky.is_error.
local H = require("spec.helpers")
local ducky = require("ducky")

local BUILD = os.getenv("DUCKY_BUILD") or "build"

local function new(overrides) return ducky.client(H.opts(overrides)) end

-- Runs `script` in a child Lua (the one under test) with the given environment (a table name -> value;
-- the DUCKY_* variables of this process are removed first). Returns ok, output.
local function run_child(env, script)
  local dir = H.tmpdir()
  local file = dir .. "/child.lua"
  H.write_file(file, script)
  local parts = { "env" }
  for _, name in ipairs({ "DUCKY_CLIENT_ID", "DUCKY_CLIENT_SECRET", "DUCKY_BASE_URL",
                          "DUCKY_TOKEN_URL", "DUCKY_AUDIENCE" }) do
    parts[#parts + 1] = "-u " .. name
  end
  parts[#parts + 1] = string.format("%q", "LUA_CPATH=./" .. BUILD .. "/?.so;;")
  parts[#parts + 1] = string.format("%q", "XDG_CACHE_HOME=" .. dir .. "/cache")
  local names = {}
  for k in pairs(env) do names[#names + 1] = k end
  table.sort(names)
  for _, k in ipairs(names) do
    parts[#parts + 1] = string.format("%q", k .. "=" .. env[k])
  end
  parts[#parts + 1] = H.LUA .. " " .. file
  local out, code = H.run(table.concat(parts, " "))
  os.execute("rm -rf '" .. dir .. "'")
  return code == 0, out
end

describe("ducky module", function()
  it("has a version and the production defaults", function()
    assert.is_string(ducky._VERSION)
    assert.matches("^%d+%.%d+%.%d+", ducky._VERSION)
    assert.equals("https://api.ducky.eco/v3", ducky.BASE_URL)
    assert.equals("https://ducky-prod.eu.auth0.com/oauth/token", ducky.TOKEN_URL)
    assert.equals("ducky-api-prod", ducky.AUDIENCE)
    assert.is_function(ducky.client)
    assert.is_function(ducky.is_error)
  end)

  it("the version is VERSION's, its one source (spec/build_spec.lua checks the rest)", function()
    local f = assert(io.open("VERSION"))
    local v = f:read("*l")
    f:close()
    assert.equals(v, ducky._VERSION)
  end)
end)

describe("ducky.client options", function()
  it("accepts every option of the contract with the right type", function()
    local events = {}
    local c = ducky.client(H.opts{
      audience = H.audience(),
      token_auth = "json",
      timeout = 2.5,
      connect_timeout = 1.5,
      retries = 1,
      refresh_margin = 30,
      token_cache = false,
      ca_file = H.ca_file(),
      ca_path = "/etc/ssl/certs",
      insecure = false,
      user_agent = "spec-agent/1",
      headers = { ["X-Spec"] = "yes" },
      max_body = 1024 * 1024,
      token_params = { scope = "read:all" },
      auth_backoff = 30,
      max_exchanges_per_hour = 10,
      log = function(ev) events[#events + 1] = ev end,
    })
    local res, err = c:ping_protected()
    assert.is_nil(err)
    assert.equals(200, res.status)
    assert.is_true(res.json.ready)
    assert.is_true(#events > 0)
    c:close()
  end)

  it("accepts proxy and insecure = true", function()
    local c = new{ proxy = "http://127.0.0.1:1", insecure = true }
    c:close()
  end)

  it("accepts token_auth json, form and basic", function()
    for _, auth in ipairs({ "json", "form", "basic" }) do
      local c = new{ token_auth = auth }
      local res, err = c:ping_protected()
      assert.is_nil(err, auth)
      assert.equals(200, res.status, auth)
      assert.equals(auth, H.stats().last_token_request.auth_method, auth)
      c:close()
    end
  end)

  it("accepts token_cache = nil, false, a path and a {load, store} table", function()
    local dir = H.tmpdir()
    local store = {}
    local values = {
      false,
      dir .. "/tokens",
      { load = function(key) return store[key] end, store = function(key, e) store[key] = e end },
    }
    for i, v in ipairs(values) do
      local ok, c = pcall(new, { token_cache = v })
      assert.is_true(ok, "token_cache value #" .. i .. ": " .. tostring(c))
      local res, err = c:ping_protected()
      assert.is_nil(err, "token_cache value #" .. i)
      assert.is_true(res.json.ready)
      c:close()
    end
    os.execute("rm -rf '" .. dir .. "'")
  end)

  it("accepts an empty table and no argument (nothing contacted)", function()
    ducky.client({ token_cache = false }):close()
    local c = ducky.client()
    assert.equals("userdata", type(c))
    c:close()
  end)

  -- name -> { a value of the wrong type, what the option must be }
  local wrong = {
    client_id = { 42, "a string" }, client_secret = { true, "a string" }, base_url = { 1, "a string" },
    token_url = { {}, "a string" }, audience = { false, "a string" }, token_auth = { 1, "a string" },
    timeout = { "5", "a number" }, connect_timeout = { "1", "a number" }, retries = { "2", "a number" },
    refresh_margin = { {}, "a number" }, token_cache = { 12, "false, a path or a table" },
    ca_file = { 1, "a string" }, ca_path = { true, "a string" }, insecure = { "no", "a boolean" },
    proxy = { 8080, "a string" }, user_agent = { 1, "a string" }, headers = { "X-A: b", "a table" },
    max_body = { "1", "a number" }, token_params = { "scope=x", "a table" },
    auth_backoff = { "60", "a number" }, max_exchanges_per_hour = { "20", "a number" },
    log = { "print", "a function" },
  }
  for name, case in pairs(wrong) do
    local value, want = case[1], case[2]
    it("raises naming the option when " .. name .. " has the wrong type (" .. type(value) .. ")",
      function()
        H.raises(new, ("ducky.client: option '%s' must be %s, not %s"):format(name, want, type(value)),
          { [name] = value })
      end)
  end

  it("raises naming an unknown option", function()
    H.raises(new, "ducky.client: unknown option 'client_secrt'", { client_secrt = "x" })
    H.raises(new, "ducky.client: unknown option 'retry'", { retry = 3 })
  end)

  it("raises when the options are not a table", function()
    H.raises(ducky.client, "ducky.client: options must be a table, not string", "https://api.ducky.eco/v3")
    H.raises(ducky.client, "ducky.client: options must be a table, not number", 42)
  end)

  for _, url in ipairs({ "", "not a url", "api.ducky.eco/v3", "ftp://api.ducky.eco/v3",
                         "http://", "file:///etc/passwd" }) do
    it("raises on a malformed base_url " .. string.format("%q", url), function()
      H.raises(new, "ducky.client: base_url is not an http(s) URL: " .. url, { base_url = url })
    end)
    it("raises on a malformed token_url " .. string.format("%q", url), function()
      H.raises(new, "ducky.client: token_url is not an http(s) URL: " .. url, { token_url = url })
    end)
  end

  it("raises on an unknown token_auth", function()
    local must = "ducky.client: option 'token_auth' must be \"json\", \"form\", \"basic\", "
      .. "\"private_key_jwt\" or \"tls_client_auth\", not "
    H.raises(new, must .. '"oauth2"', { token_auth = "oauth2" })
    H.raises(new, must .. '"JSON"', { token_auth = "JSON" })
    H.raises(new, must .. '""', { token_auth = "" })
  end)

  -- the headers, and the message (a name is shown up to its first NUL)
  local bad_headers = {
    { { ["X-A"] = "a\r\nX-Injected: 1" }, "header 'X-A' holds CR, LF or NUL" },
    { { ["X-A"] = "a\rb" }, "header 'X-A' holds CR, LF or NUL" },
    { { ["X-A"] = "a\nb" }, "header 'X-A' holds CR, LF or NUL" },
    { { ["X-A"] = "a\0b" }, "header 'X-A' holds CR, LF or NUL" },
    { { ["X-A\r\nX-B"] = "v" }, "invalid header name 'X-A\r\nX-B'" },
    { { ["X-A\n"] = "v" }, "invalid header name 'X-A\n'" },
    { { ["X-A\r"] = "v" }, "invalid header name 'X-A\r'" },
    { { ["X\0A"] = "v" }, "invalid header name 'X'" },
  }
  for i, case in ipairs(bad_headers) do
    it("raises on a client header holding CR, LF or NUL (#" .. i .. ")", function()
      H.raises(new, "ducky.client: " .. case[2], { headers = case[1] })
    end)
  end

  local out_of_range = {
    { "timeout", 0 }, { "timeout", -1 }, { "timeout", 0 / 0 },
    { "connect_timeout", 0 }, { "connect_timeout", -5 },
    { "retries", -1 },
    { "refresh_margin", -1 },
    { "max_body", 0 }, { "max_body", -1 },
    { "auth_backoff", -1 },
    { "max_exchanges_per_hour", -1 },
  }
  for _, case in ipairs(out_of_range) do
    local name, value = case[1], case[2]
    it("raises naming " .. name .. " when it is out of range (" .. tostring(value) .. ")", function()
      local shown = value == value and tostring(value) or "" -- NaN prints as nan or -nan
      H.raises(new, ("ducky.client: option '%s' is out of range: %s"):format(name, shown), { [name] = value })
    end)
  end

  it("accepts fractional timeouts", function()
    local c = new{ timeout = 0.75, connect_timeout = 0.25 }
    local res = assert(c:ping())
    assert.equals(200, res.status)
    c:close()
  end)
end)

describe("missing credentials", function()
  local has_env = os.getenv("DUCKY_CLIENT_ID") or os.getenv("DUCKY_CLIENT_SECRET")

  it("do not raise; ping works, ping_protected and token give a config error", function()
    if has_env then
      pending("DUCKY_CLIENT_ID/SECRET set in this environment")
      return
    end
    local c = new{ client_id = H.NIL, client_secret = H.NIL }
    local before = H.stats().requests_by_path["/oauth/token"] or 0
    local res, err = c:ping()
    assert.is_nil(err)
    assert.equals(200, res.status)
    assert.equals("pong", res.json.message)

    res, err = c:ping_protected()
    assert.is_nil(res)
    assert.is_true(ducky.is_error(err))
    assert.equals("config", err.kind)
    assert.is_string(err.message)

    local tok
    tok, err = c:token()
    assert.is_nil(tok)
    assert.equals("config", err.kind)
    assert.equals(before, H.stats().requests_by_path["/oauth/token"] or 0)
    c:close()
  end)

  it("only a client_id, or only a secret, is the same config error", function()
    if has_env then
      pending("DUCKY_CLIENT_ID/SECRET set in this environment")
      return
    end
    for _, o in ipairs({ { client_secret = H.NIL }, { client_id = H.NIL } }) do
      local c = new(o)
      local res, err = c:ping_protected()
      assert.is_nil(res)
      assert.equals("config", err.kind)
      assert.equals(200, assert(c:ping()).status)
      c:close()
    end
  end)
end)

-- issue 19 item 20: an empty string is no credential, as an empty DUCKY_* variable is
describe("empty credentials", function()
  it("an empty client_id or client_secret counts as unset: config 'no credentials', no exchange", function()
    local ok, out = run_child({ DUCKY_TOKEN_URL = H.token_url(), DUCKY_BASE_URL = H.base_url() }, [[
local ducky = require("ducky")
for _, auth in ipairs { "json", "form", "basic" } do
  for _, o in ipairs { { client_id = "", client_secret = "s" }, { client_id = "i", client_secret = "" },
      { client_id = "", client_secret = "" }, { client_id = "i", client_secret_file = "" } } do
    o.token_auth, o.token_cache, o.retries = auth, false, 0
    local c = ducky.client(o)
    local res, err = c:ping_protected()
    print(auth, res and "ok" or err.kind .. ": " .. err.message)
    c:close()
  end
end
local c = ducky.client { client_id = "i", token_auth = "private_key_jwt", private_key_file = "",
  private_key = "", token_cache = false }
local _, err = c:token()
print("private_key_jwt", err.kind .. ": " .. err.message)
print("cases", 3 * 4 + 1)
]])
    assert.is_true(ok, out)
    local lines = 0
    for line in out:gmatch("[^\n]+") do
      if not line:find("^cases") then
        lines = lines + 1
        assert.matches("^%S+\tconfig: no credentials: set client_id", line)
      end
    end
    assert.equals(tonumber(out:match("cases\t(%d+)")), lines, out)
  end)

  it("an empty client_secret with DUCKY_CLIENT_SECRET set takes the variable, as nil would", function()
    local id = H.new_id("empty-secret")
    local ok, out = run_child({ DUCKY_CLIENT_SECRET = H.secret(id) }, ([[
local ducky = require("ducky")
local c = ducky.client { client_id = %q, client_secret = "", base_url = %q, token_url = %q, audience = %q,
  token_cache = false, retries = 0 }
local res, err = c:ping_protected()
print(res and "status " .. res.status or tostring(err))
]]):format(id, H.base_url(), H.token_url(), H.audience()))
    assert.is_true(ok, out)
    assert.matches("status 200", out)
    assert.equals(1, H.exchanges(id))
  end)
end)

describe("defaults from DUCKY_* environment variables", function()
  local SCRIPT = [[
local ducky = require("ducky")
local c = ducky.client{ token_cache = false, retries = 0, timeout = 5 }
local res, err = c:ping()
print("ping", res and res.status or tostring(err))
res, err = c:ping_protected()
print("protected", res and tostring(res.json.ready) or tostring(err))
c:close()
]]

  it("take base_url, token_url, audience, client_id and client_secret", function()
    local id = H.new_id("env")
    local before = H.stats().requests_by_path["/v3/ping"] or 0
    local ok, out = run_child({
      DUCKY_BASE_URL = H.base_url(), DUCKY_TOKEN_URL = H.token_url(),
      DUCKY_AUDIENCE = H.audience(), DUCKY_CLIENT_ID = id, DUCKY_CLIENT_SECRET = H.secret(id),
    }, SCRIPT)
    assert.is_true(ok, out)
    assert.matches("ping\t200\n", out, 1, true)
    assert.matches("protected\ttrue\n", out, 1, true)
    local st = H.stats()
    assert.equals(before + 1, st.requests_by_path["/v3/ping"])
    assert.equals(1, st.exchanges_by_client[id])
    assert.equals(id, st.last_token_request.client_id)
    assert.equals(H.audience(), st.last_token_request.params.audience)
    assert.equals(id, st.last_api_auth.client_id)
  end)

  it("DUCKY_AUDIENCE is what the token request carries", function()
    local id = H.new_id("env-aud")
    local ok, out = run_child({
      DUCKY_BASE_URL = H.base_url(), DUCKY_TOKEN_URL = H.token_url(),
      DUCKY_AUDIENCE = "some-other-audience", DUCKY_CLIENT_ID = id,
      DUCKY_CLIENT_SECRET = H.secret(id),
    }, SCRIPT)
    assert.is_true(ok, out)
    assert.matches("ping\t200\n", out, 1, true)
    assert.matches("protected\tducky auth error", out, 1, true)
    assert.equals("some-other-audience", H.stats().last_token_request.params.audience)
    assert.equals(0, H.exchanges(id))
  end)

  it("options given in Lua win over the environment", function()
    local id = H.new_id("env-opt")
    local script = string.format([[
local ducky = require("ducky")
local c = ducky.client{ token_cache = false, retries = 0, timeout = 5, base_url = %q,
  token_url = %q, audience = %q, client_id = %q, client_secret = %q }
local res, err = c:ping_protected()
print("protected", res and tostring(res.json.ready) or tostring(err))
]], H.base_url(), H.token_url(), H.audience(), id, H.secret(id))
    local ok, out = run_child({
      DUCKY_BASE_URL = "http://127.0.0.1:1/v3", DUCKY_TOKEN_URL = "http://127.0.0.1:1/oauth/token",
      DUCKY_AUDIENCE = "wrong", DUCKY_CLIENT_ID = "wrong-id", DUCKY_CLIENT_SECRET = "wrong",
    }, script)
    assert.is_true(ok, out)
    assert.matches("protected\ttrue\n", out, 1, true)
    assert.equals(1, H.exchanges(id))
  end)

  it("without environment or options, the production URLs are the defaults", function()
    -- nothing is contacted: a client with no options is built and closed
    local ok, out = run_child({}, [[
local ducky = require("ducky")
local c = ducky.client{ token_cache = false }
print(tostring(c):find(ducky.BASE_URL, 1, true) ~= nil)
c:close()
print("done")
]])
    assert.is_true(ok, out)
    assert.matches("done\n", out, 1, true)
  end)

  -- issue 19 item 12: one strict reader for every number variable
  local NUMBER_CHILD = [[
local ducky = require("ducky")
local ok, e = pcall(ducky.client, { token_cache = false })
print(ok and "no error" or ("raised: " .. tostring(e)))
if ok then e:close() print("defaults: " .. require("cjson").encode(ducky.defaults())) end
]]
  local refused = {
    DUCKY_TIMEOUT = { "0x10", " 5", "5 ", "inf", "nan", "", "1e3", "+5", "-1", "5.", ".5", "5,5" },
    DUCKY_CONNECT_TIMEOUT = { "NaN", "0" },
    DUCKY_RETRIES = { "2.5", "0x2", "101" },
    DUCKY_MAX_BODY = { "1.5", "1e6", "infinity" },
  }
  local cases = {}
  for name, values in pairs(refused) do
    for _, value in ipairs(values) do cases[#cases + 1] = { name, value } end
  end
  for _, case in ipairs(cases) do
    local name, value = case[1], case[2]
    it(("%s=%q raises naming the variable, not echoing the value"):format(name, value), function()
      local ok, out = run_child({ [name] = value }, NUMBER_CHILD)
      assert.is_true(ok, out)
      assert.matches("raised: ducky.client: " .. name .. " must be a ", out, 1, true)
      if #value > 2 then assert.is_nil(out:find(value, 1, true), out) end
    end)
  end

  it("numbers in digits, with a fraction where the option takes one, are read as such", function()
    local ok, out = run_child({ DUCKY_TIMEOUT = "2.5", DUCKY_CONNECT_TIMEOUT = "0.001", DUCKY_RETRIES = "03",
      DUCKY_MAX_BODY = "1048576" }, NUMBER_CHILD)
    assert.is_true(ok, out)
    local d = require("cjson").decode(out:match("defaults: (%b{})"))
    assert.equals(2.5, d.timeout)
    assert.equals(0.001, d.connect_timeout)
    assert.equals(3, d.retries)
    assert.equals(1048576, d.max_body)
  end)

  it("a whole-number option given a fraction in Lua raises too", function()
    for _, name in ipairs { "retries", "max_body", "max_exchanges_per_hour" } do
      H.raises(new, "ducky.client: option '" .. name .. "' must be a whole number, not 2.5", { [name] = 2.5 })
    end
  end)

  it("a malformed DUCKY_BASE_URL raises like a malformed option", function()
    local ok, out = run_child({ DUCKY_BASE_URL = "not a url" }, [[
local ducky = require("ducky")
local ok, e = pcall(ducky.client, { token_cache = false })
print(ok and "no error" or ("raised: " .. tostring(e)))
]])
    assert.is_true(ok, out)
    assert.matches("raised: .*base_url", out)
  end)
end)

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
