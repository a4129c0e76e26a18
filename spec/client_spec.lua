-- The module and the constructor: module constants, options, their types and
-- ranges. Credentials missing or from the environment: spec/client_env_spec.lua;
-- the client object (tostring, close/__gc/__close, ducky.is_error, stats):
-- spec/client_object_spec.lua.
local H = require("spec.helpers")
local ducky = require("ducky")

local new = H.client

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

  -- found by review: the client secret went to a plain-http token_url as is
  it("refuses plain http to another machine unless insecure; this machine is fine", function()
    for _, name in ipairs { "token_url", "base_url" } do
      local what = name == "token_url" and "the client credentials" or "the bearer token"
      for _, url in ipairs { "http://auth.example.com/oauth/token", "http://10.0.0.5:8080/v3",
                             "HTTP://api.ducky.eco/v3", "http://[2001:db8::1]/v3",
                             -- found by review: names that begin like a loopback address
                             -- passed as one ("127." was all that was checked)
                             "http://127.attacker.example/oauth/token", "http://127.0.0.1.nip.io/v3",
                             "http://127.0.0.1%2eexample.com/v3" } do
        H.raises(new, ("ducky.client: %s is plain http to another machine: %s would cross the"
          .. " network unencrypted (use https; insecure = true allows it)"):format(name, what),
          { [name] = url })
        assert(new { [name] = url, insecure = true }):close()
      end
      for _, url in ipairs { "http://localhost:8080/v3", "http://127.0.0.1/v3", "http://127.1.2.3:9/v3",
                             "http://[::1]:8080/v3", "https://auth.example.com/oauth/token",
                             "http://LOCALHOST/v3", "http://127.1/v3", "http://[0:0:0:0:0:0:0:1]/v3" } do
        assert(new { [name] = url }):close()
      end
    end
  end)

  -- found by review: plain http to this machine went through the proxy the
  -- environment's http_proxy (or the proxy option) named, which may be another
  -- machine: the secret crossed the network in clear after all. A child with
  -- the proxy variables set calls the stand-in over plain http; the "proxy" is
  -- a listener here that must get nothing.
  describe("a plain-http URL on this machine never goes through a proxy", function()
    local socket = require("socket")
    local CHILD = [==[
      local H = require("spec.helpers")
      local id = os.getenv("HX_ID")
      local c = require("ducky").client(H.opts { client_id = id, client_secret = H.secret(id), timeout = 3,
        proxy = os.getenv("HX_PROXY") })
      local res, err = c:ping_protected()
      print(res and res.status or tostring(err))
    ]==]
    local function run(env, proxy_option)
      local srv = assert(socket.bind("127.0.0.1", 0))
      local proxy = ("http://127.0.0.1:%d"):format(select(2, srv:getsockname()))
      env.HX_ID = H.new_id("proxy")
      for k, v in pairs(env) do if v == "PROXY" then env[k] = proxy end end
      if proxy_option then env.HX_PROXY = proxy end
      local out = H.run_lua(CHILD, env)
      srv:settimeout(0.2)
      local conn = srv:accept()
      local got = conn and conn:receive("*l")
      srv:close()
      if conn then conn:close() end
      assert.is_nil(got, "the proxy got: " .. tostring(got))
      assert.equals("200", out:match("^%s*(.-)%s*$"))
      assert.equals(1, H.exchanges(env.HX_ID))
    end

    it("http_proxy from the environment", function() run { http_proxy = "PROXY" } end)
    it("ALL_PROXY from the environment", function() run { ALL_PROXY = "PROXY" } end)
    it("http_proxy, with the environment's no_proxy for other hosts", function()
      run { http_proxy = "PROXY", no_proxy = "example.com,.example.org" }
    end)
    it("the proxy option", function() run({}, true) end)
  end)

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
