-- Secrets of private_key_jwt and tls_client_auth (spec/token_auth_spec.lua,
-- spec/token_auth_tls_spec.lua): neither a private key, nor a key password, nor an
-- assertion reaches an error, a log event, tostring(client), stats() or the token
-- cache file.
local H = require("spec.helpers")
local A = require("spec.support.token_auth")
local ducky = require("ducky")

local TOKEN = A.TOKEN
local ok_token, key_copy, rm = A.ok_token, A.key_copy, A.rm

local strings_of = H.strings_of

-- the PEM text, each base64 line of it, the base64 body in one piece
local function pem_forms(pem)
  local f = { pem, (pem:gsub("%-%-%-%-%-[^\n]*%-%-%-%-%-", ""):gsub("%s", "")) }
  for line in pem:gmatch("[^\n]+") do
    if not line:find("^%-%-%-%-%-") and #line >= 16 then f[#f + 1] = line end
  end
  return f
end

local function assertion_forms(jwt)
  if not jwt then return {} end
  return { jwt, jwt:match("([^.]+)$") }
end

local find_leak = H.find_leak
local S = require("spec.support.heap_scan")

-- runs fn(client) for a client made from o with a log; checks what it produced
local function no_leak(o, forms_of, fn)
  local events = {}
  o.log = function(ev) events[#events + 1] = ev end
  local ok, c = pcall(ducky.client, o)
  local err
  if ok then
    local _
    _, err = fn(c)
  else
    err = c
    c = nil
  end
  local forms = forms_of()
  local texts = strings_of(err)
  if err ~= nil then texts[#texts + 1] = tostring(err) end
  assert.is_nil(find_leak(texts, forms), "error")
  assert.is_nil(find_leak(strings_of(events), forms), "log event")
  if c then
    local ct = strings_of(c:stats(), { tostring(c) })
    c:close()
    ct[#ct + 1] = tostring(c)
    assert.is_nil(find_leak(ct, forms), "tostring(client) or stats()")
  end
  return err, events
end

describe("secrets", function()
  local function last_assertion_text() return H.stats().last_token_request.params.client_assertion end

  describe("private_key_jwt: neither key nor assertion leaks", function()
    local function forms(key_file)
      local pem = H.read_file(key_file)
      return function()
        local f = pem_forms(pem)
        for _, a in ipairs(assertion_forms(last_assertion_text())) do f[#f + 1] = a end
        return f
      end
    end

    it("on success, with a token cache file", function()
      local dir = H.tmpdir()
      local o = H.jwt_opts("rsa", { token_cache = dir .. "/tokens" })
      local err, events = no_leak(o, forms(o.private_key_file), function(c)
        ok_token(c:token())
        return c:ping_protected()
      end)
      assert.is_nil(err)
      assert.is_true(#events > 0)
      local f = forms(o.private_key_file)()
      assert.is_nil(find_leak({ H.read_file(dir .. "/tokens") or "" }, f), "token cache file")
      rm(dir)
    end)

    it("on an auth error (another key)", function()
      local o = H.jwt_opts("rsa", { private_key_file = H.jwt_key("rsa_other").private_key_file })
      local err = no_leak(o, forms(o.private_key_file), function(c) return c:ping_protected() end)
      assert.equals("auth", err.kind)
    end)

    it("on a token endpoint failure", function()
      local o = H.jwt_opts("ec", { signing_alg = "ES256" })
      H.fault { path = TOKEN, client_id = o.client_id, status = 500, body = { error = "server_error" } }
      local err = no_leak(o, forms(o.private_key_file), function(c) return c:ping_protected() end)
      assert.equals("http", err.kind)
    end)

    it("on config errors: key text with the wrong signing_alg, a group-readable key file", function()
      local pem_file = H.jwt_key("ec").private_key_file
      local o = H.jwt_opts("ec", { private_key_file = H.NIL, private_key = H.read_file(pem_file) })
      local err = no_leak(o, forms(pem_file), function(c) return c:ping_protected() end)
      assert.equals("config", err.kind)
      local path, dir = key_copy(H.jwt_key("rsa").private_key_file, "0644")
      o = H.jwt_opts("rsa", { private_key_file = path })
      err = no_leak(o, forms(path), function(c) return c:ping_protected() end)
      assert.equals("config", err.kind)
      rm(dir)
    end)
  end)

  describe("tls_client_auth: neither key nor password leaks", function()
    local function forms(o)
      local f = pem_forms(H.read_file(o.client_key))
      if o.client_key_password then f[#f + 1] = o.client_key_password end
      return function() return f end
    end

    it("on success", function()
      local o = H.mtls_opts(nil, { password = "pw-" .. H.new_id("secret") })
      assert.is_nil((no_leak(o, forms(o), function(c) return c:ping_protected() end)))
    end)

    it("on an auth error (another CA) and with the wrong password", function()
      local o = H.mtls_opts(nil, { ca = "other_ca", password = "pw-" .. H.new_id("secret") })
      assert.equals("auth", no_leak(o, forms(o), function(c) return c:ping_protected() end).kind)
      o = H.mtls_opts(nil, { password = "pw-" .. H.new_id("secret") })
      local f = forms(o)
      o.client_key_password = "wrong-" .. H.new_id("secret")
      local wrong = o.client_key_password
      assert.is_not_nil(no_leak(o, function()
        local t = f()
        t[#t + 1] = wrong
        return t
      end, function(c) return c:ping_protected() end))
    end)
  end)

  -- The private key after close(): a child reads the key only through its file
  -- (the path in the environment; the password in DUCKY_CLIENT_KEY_PASSWORD,
  -- which never becomes a Lua string), makes its calls, then scans its memory
  -- (spec/support/heap_scan.lua) for pieces of the key's PEM lines and of its
  -- private number (RSA's private exponent, EC's scalar), both as written and
  -- byte-reversed, as OpenSSL's BIGNUMs hold them, and for the password.
  describe("no piece of a private key is left in memory after close()", function()
    -- needles of the key in file (password: its password): {name, bytes}
    local function key_needles(file, password)
      local out, code = H.run(("%sopenssl pkey -in %s -passin pass:%s -text -noout")
        :format(H.CLEAN_ENV, H.quote(file), H.quote(password or "")))
      assert.equals(0, code, out)
      local label = out:find("\nprivateExponent:", 1, true) and "privateExponent" or "priv"
      local hex = out:match("\n" .. label .. ":\n(.-)\n%S"):gsub("[%s:]", ""):gsub("^00", "")
      local n = hex:gsub("..", function(x) return string.char(tonumber(x, 16)) end)
      local list = { { label .. " (bytes 9-32)", n:sub(9, 32) },
        { label .. ", byte-reversed (bytes 9-32)", n:reverse():sub(9, 32) } }
      local i = 0
      for line in H.read_file(file):gmatch("[^\n]+") do
        i = i + 1
        if #line >= 48 and not line:find("^%-%-%-%-%-") then
          list[#list + 1] = { "PEM line " .. i, line:sub(9, 40) }
        end
      end
      if password then list[#list + 1] = { "client_key_password", password } end
      return list
    end

    local CHILD = S.NEEDLES .. [==[
      local H = require("spec.helpers")
      local ducky = require("ducky")
      local o = { client_id = os.getenv("HX_ID"), token_cache = false, retries = 0, timeout = 10,
        audience = H.audience(), token_auth = os.getenv("HX_AUTH"), ca_file = H.ca_file() }
      if o.token_auth == "private_key_jwt" then
        o.base_url, o.token_url = H.base_url(), H.token_url()
        o.private_key_file, o.signing_alg = os.getenv("HX_KEY"), os.getenv("HX_ALG")
      else
        o.base_url, o.token_url = H.base_url("mtls"), H.token_url("mtls")
        o.client_cert, o.client_key = os.getenv("HX_CERT"), os.getenv("HX_KEY")
      end
      local c = ducky.client(o)
      assert(c:ping_protected())
      c:invalidate()
      assert(c:request("GET", "/echo")) -- a second exchange
      if os.getenv("HX_CLOSE") == "1" then c:close() else OPEN = c end
      c = nil -- luacheck: ignore 311
    ]==] .. S.SCAN

    -- way: "private_key_jwt", "tls_client_auth" or "tls_client_auth, encrypted key"
    local function run(way, close)
      local auth = way:match("^[%w_]+")
      local env, needles = { HX_AUTH = auth, HX_CLOSE = close and "1" or "0" }
      if os.getenv("ASAN_OPTIONS") then env.ASAN_OPTIONS = os.getenv("ASAN_OPTIONS") .. ":detect_leaks=0" end
      if auth == "private_key_jwt" then
        local o = H.jwt_opts("rsa")
        env.HX_ID, env.HX_KEY, env.HX_ALG = o.client_id, o.private_key_file, "RS256"
        needles = key_needles(o.private_key_file)
      else
        local password = way:find("encrypted", 1, true) and "pw-" .. H.new_id("secret") or nil
        local o = H.mtls_opts(nil, { key_type = "RSA", password = password })
        env.HX_ID, env.HX_CERT, env.HX_KEY = o.client_id, o.client_cert, o.client_key
        env.DUCKY_CLIENT_KEY_PASSWORD = password
        needles = key_needles(o.client_key, password)
      end
      local out, code = H.run_lua(CHILD, S.env(needles, env))
      assert.matches("scanned %d+ bytes in %d+ regions", out)
      return out, code
    end

    for _, way in ipairs { "private_key_jwt", "tls_client_auth", "tls_client_auth, encrypted key" } do
      it(way .. ": the scan finds the key while the client is open (the scan's own check)", function()
        local out, code = run(way, false)
        assert.equals(1, code, out)
        assert.matches("FOUND %a+, byte%-reversed", out)
      end)

      it(way .. ": none after close()", function()
        local out, code = run(way, true)
        assert.equals(0, code, out)
      end)
    end
  end)
end)
