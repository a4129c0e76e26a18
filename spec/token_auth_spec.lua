-- Client authentication without a shared secret (issue 14, parts 2 and 3):
-- token_auth = "private_key_jwt" (RFC 7523 §2.2, Auth0 "Private Key JWT") and
-- token_auth = "tls_client_auth" (RFC 8705), against the stand-in's verifier
-- (spec/support/standin/standin_auth.py). Each spec uses a fresh client id with a key
-- registered for it (H.jwt_opts) or a certificate made for it (H.mtls_opts).
local H = require("spec.helpers")
local ducky = require("ducky")
local cjson = require("cjson")

local TOKEN = "/oauth/token"
local ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
local KEY_OF = { RS256 = "rsa", RS384 = "rsa", PS256 = "rsa", ES256 = "ec" }

local function token_requests() return H.stats().requests_by_path[TOKEN] or 0 end

local function ok_call(res, err)
  assert.is_nil(err, err and tostring(err))
  assert.is_table(res)
  return res
end

local function ok_token(tok, left)
  assert.is_string(tok, tostring(left))
  return tok
end

local function auth_error(res, err, code)
  assert.is_nil(res)
  assert.is_true(ducky.is_error(err), "expected a ducky.error, got " .. tostring(err))
  assert.equals("auth", err.kind, tostring(err))
  assert.equals(401, err.status, tostring(err))
  assert.equals(code or "invalid_client", err.code, tostring(err))
  return err
end

-- The config error a client with options o gives, and no token request made:
-- raised by ducky.client as a ducky.error, or returned by the first call that
-- needs a token (then also the client, closed).
local function config_error(o)
  local before = token_requests()
  local ok, c = pcall(ducky.client, o)
  if not ok then
    assert.is_true(ducky.is_error(c), "ducky.client raised something else than a ducky.error: "
      .. tostring(c))
    assert.equals("config", c.kind, tostring(c))
    return c
  end
  local res, err = c:ping_protected()
  assert.is_nil(res)
  assert.is_true(ducky.is_error(err), tostring(err))
  assert.equals("config", err.kind, tostring(err))
  assert.equals(before, token_requests())
  c:close()
  return err, c
end

-- a copy of a key file with this mode, in a fresh 0700 directory
local function key_copy(src, mode)
  local dir = H.tmpdir()
  local path = dir .. "/key.pem"
  H.write_file(path, H.read_file(src))
  assert(os.execute(("chmod %s '%s'"):format(mode, path)))
  return path, dir
end

local function rm(dir) os.execute("rm -rf '" .. dir .. "'") end

local function is_root()
  local out = H.run("id -u")
  return out:match("^0%s*$") ~= nil
end

-- the token request's fields minus the assertion itself, and the assertion
local function token_request()
  local tr = H.stats().last_token_request
  local params = {}
  for k, v in pairs(tr.params or {}) do params[k] = v end
  local assertion = params.client_assertion
  params.client_assertion = nil
  return tr, params, assertion
end

describe("private_key_jwt", function()
  describe("signs an assertion the stand-in accepts", function()
    for _, alg in ipairs { "RS256", "RS384", "PS256", "ES256" } do
      it(alg .. ": one exchange; the request and the assertion are RFC 7523's", function()
        local o = H.jwt_opts(KEY_OF[alg], { signing_alg = alg, key_id = "kid-" .. alg }, { alg = alg })
        local c = ducky.client(o)
        local res = ok_call(c:ping_protected())
        assert.equals(200, res.status)
        ok_call(c:request("GET", "/echo"))
        assert.equals(1, H.exchanges(o.client_id))

        local tr, params, assertion = token_request()
        assert.equals("private_key_jwt", tr.auth_method)
        assert.matches("^application/x%-www%-form%-urlencoded", tr.content_type)
        assert.is_false(tr.authorization)
        assert.same({
          grant_type = "client_credentials", client_id = o.client_id, audience = H.audience(),
          client_assertion_type = ASSERTION_TYPE,
        }, params)
        assert.matches("^[%w_%-]+%.[%w_%-]+%.[%w_%-]+$", assertion) -- base64url, no padding

        local a = H.stats().last_assertion
        assert.is_true(a.valid, a.error)
        assert.same({ alg = alg, typ = "JWT", kid = "kid-" .. alg }, a.header)
        assert.equals(o.client_id, a.claims.iss)
        assert.equals(o.client_id, a.claims.sub)
        assert.equals(H.origin("http") .. "/", a.claims.aud)
        assert.equals(60, a.claims.exp - a.claims.iat)
        assert.is_true(math.abs(a.claims.iat - os.time()) <= 5, tostring(a.claims.iat))
        assert.is_string(a.claims.jti)
        assert.is_true(#a.claims.jti >= 22 and #a.claims.jti <= 64, a.claims.jti) -- 128+ random bits
        c:close()
      end)
    end

    it("RS256 is the default signing_alg; no key_id, no kid", function()
      local o = H.jwt_opts("rsa")
      ok_call(ducky.client(o):ping_protected())
      local a = H.stats().last_assertion
      assert.is_true(a.valid, a.error)
      assert.same({ alg = "RS256", typ = "JWT" }, a.header)
    end)

    it("private_key takes the PEM text instead of a file", function()
      local o = H.jwt_opts("ec", {
        private_key_file = H.NIL, private_key = H.read_file(H.jwt_key("ec").private_key_file),
        signing_alg = "ES256",
      })
      ok_call(ducky.client(o):ping_protected())
      assert.equals(1, H.exchanges(o.client_id))
    end)

    it("a PKCS#1 key file (BEGIN RSA PRIVATE KEY) works too", function()
      local o = H.jwt_opts("rsa", { private_key_file = H.jwt_key("rsa").pkcs1_file, signing_alg = "PS256" })
      ok_call(ducky.client(o):ping_protected())
      assert.equals(1, H.exchanges(o.client_id))
    end)

    it("token_params go along with the assertion", function()
      local o = H.jwt_opts("rsa", { token_params = { scope = "read:footprints" } })
      ok_token(ducky.client(o):token())
      local _, params = token_request()
      assert.equals("read:footprints", params.scope)
      assert.equals(ASSERTION_TYPE, params.client_assertion_type)
    end)

    it("a client_secret set as well is not sent", function()
      local o = H.jwt_opts("rsa", { client_secret = "secret-not-to-be-sent" })
      ok_token(ducky.client(o):token())
      local tr, params = token_request()
      assert.is_nil(params.client_secret)
      assert.is_false(tr.authorization)
      assert.is_nil(tr.body:find("secret-not-to-be-sent", 1, true))
    end)

    it("over https the default aud is the https origin with a trailing slash", function()
      local o = H.jwt_opts("rsa", { token_url = H.token_url("https"), base_url = H.base_url("https"),
        ca_file = H.ca_file() })
      ok_call(ducky.client(o):ping_protected())
      local a = H.stats().last_assertion
      assert.is_true(a.valid, a.error)
      assert.equals(H.origin("https") .. "/", a.claims.aud)
    end)

    it("assertion_audience: the token endpoint URL, for a server that wants it", function()
      local url = H.token_url("http")
      local o = H.jwt_opts("rsa", { assertion_audience = url }, { audiences = { url } })
      ok_call(ducky.client(o):ping_protected())
      local a = H.stats().last_assertion
      assert.is_true(a.valid, a.error)
      assert.equals(url, a.claims.aud)
      -- another client registered the same way, left on the default audience, is refused
      local o2 = H.jwt_opts("rsa", nil, { audiences = { url } })
      local err = auth_error(ducky.client(o2):ping_protected())
      assert.matches("aud", err.description)
      assert.equals(0, H.exchanges(o2.client_id))
    end)

    it("a fresh assertion for every exchange", function()
      local o = H.jwt_opts("rsa")
      local c = ducky.client(o)
      local seen = {}
      for i = 1, 3 do
        ok_token(c:token())
        local a = H.stats().last_assertion
        assert.is_true(a.valid, a.error)
        assert.is_nil(seen[a.claims.jti], "jti reused: " .. a.claims.jti)
        seen[a.claims.jti] = true
        assert.equals(i, H.exchanges(o.client_id))
        c:invalidate()
      end
      c:close()
    end)

    it("a retried exchange signs a new assertion (the server had used the first one)", function()
      local o = H.jwt_opts("rsa", { retries = 1 })
      -- the stand-in verifies the assertion (using up its jti), issues a token, drops the answer
      H.fault { path = TOKEN, client_id = o.client_id, drop = "mid_body" }
      local before = token_requests()
      local res = ok_call(ducky.client(o):ping_protected())
      assert.equals(200, res.status)
      assert.equals(before + 2, token_requests())
      assert.equals(1, H.exchanges(o.client_id)) -- a dropped answer is not an exchange
      assert.is_true(H.stats().last_assertion.valid)
    end)

    it("clients with the same id and key share a token; another key of that id does not", function()
      local o = H.jwt_opts("rsa")
      H.jwt_client(o.client_id, { key = "ec", add = true })
      local a, b = ducky.client(o), ducky.client(o)
      ok_call(a:ping_protected())
      ok_call(b:ping_protected())
      assert.equals(1, H.exchanges(o.client_id))
      local other = {}
      for k, v in pairs(o) do other[k] = v end
      other.private_key_file, other.signing_alg = H.jwt_key("ec").private_key_file, "ES256"
      local c = ducky.client(other)
      ok_call(c:ping_protected())
      assert.equals(2, H.exchanges(o.client_id))
      assert.are_not.equals(a:token(), c:token())
      a:close(); b:close(); c:close()
    end)
  end)

  describe("refused by the server: an auth error", function()
    it("a key that is not the registered one", function()
      local o = H.jwt_opts("rsa", { private_key_file = H.jwt_key("rsa_other").private_key_file })
      local err = auth_error(ducky.client(o):ping_protected())
      assert.matches("signature", err.description)
      assert.equals(0, H.exchanges(o.client_id))
      local a = H.stats().last_assertion
      assert.is_false(a.valid)
      assert.equals(o.client_id, a.claims.iss)
    end)

    it("a client id with no key registered", function()
      local o = H.jwt_opts("rsa")
      H.jwt_client(o.client_id, { remove = true })
      auth_error(ducky.client(o):ping_protected())
      assert.equals(0, H.exchanges(o.client_id))
    end)

    it("an algorithm the credential does not allow", function()
      local o = H.jwt_opts("rsa", { signing_alg = "PS256" }, { alg = "RS256" })
      local err = auth_error(ducky.client(o):ping_protected())
      assert.matches("alg", err.description)
    end)
  end)

  describe("key problems are config errors, without a request", function()
    local function with_key_file(mode, fn)
      local path, dir = key_copy(H.jwt_key("rsa").private_key_file, mode)
      local ok, e = pcall(fn, path)
      rm(dir)
      if not ok then error(e, 0) end
    end

    for _, mode in ipairs { "0640", "0604", "0644", "0660" } do
      it("a private_key_file with mode " .. mode .. " (group or others may read), naming the file", function()
        with_key_file(mode, function(path)
          local err = config_error(H.jwt_opts("rsa", { private_key_file = path }))
          assert.is_truthy(tostring(err):find(path, 1, true), tostring(err))
        end)
      end)
    end

    it("a private_key_file mode 0600 of the user is accepted", function()
      with_key_file("0600", function(path)
        ok_call(ducky.client(H.jwt_opts("rsa", { private_key_file = path })):ping_protected())
      end)
    end)

    it("a private_key_file owned by another user, naming the file", function()
      if not is_root() then
        pending("needs root to give the file away")
        return
      end
      with_key_file("0600", function(path)
        assert(os.execute(("chown 65534 '%s'"):format(path)))
        local err = config_error(H.jwt_opts("rsa", { private_key_file = path }))
        assert.is_truthy(tostring(err):find(path, 1, true), tostring(err))
      end)
    end)

    it("a private_key_file that does not exist, naming the file", function()
      local path = H.tmpdir() .. "/no-such-key.pem"
      local err = config_error(H.jwt_opts("rsa", { private_key_file = path }))
      assert.is_truthy(tostring(err):find(path, 1, true), tostring(err))
      rm(path:match("^(.*)/"))
    end)

    it("a private_key_file that holds no private key, naming the file", function()
      local path, dir = key_copy(H.jwt_key("rsa").public_key_file, "0600")
      local err = config_error(H.jwt_opts("rsa", { private_key_file = path }))
      assert.is_truthy(tostring(err):find(path, 1, true), tostring(err))
      rm(dir)
    end)

    it("private_key text that is not a PEM private key", function()
      config_error(H.jwt_opts("rsa", { private_key_file = H.NIL,
        private_key = "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n" }))
    end)

    for _, case in ipairs {
      { "ec", "RS256" }, { "ec", "PS256" }, { "ec", "RS384" }, { "rsa", "ES256" },
    } do
      it(("a%s key with signing_alg %s"):format(case[1] == "ec" and "n EC" or "n RSA", case[2]),
      function()
        local err = config_error(H.jwt_opts(case[1], { signing_alg = case[2] }))
        assert.matches(case[2], tostring(err), 1, true)
      end)
    end

    -- issue 19 item 11
    describe("keys made here with openssl", function()
      local dir
      before_each(function() dir = H.tmpdir() end)
      after_each(function() rm(dir) end)

      -- a fresh private key (genpkey algorithm and options), mode 0600, and its public key's PEM
      local function new_key(name, algorithm, ...)
        local path = dir .. "/" .. name .. ".pem"
        local opts = {}
        for _, o in ipairs { ... } do opts[#opts + 1] = "-pkeyopt " .. o end
        local out, code = H.run(("%sopenssl genpkey -algorithm %s %s -out '%s' && chmod 600 '%s' "
          .. "&& openssl pkey -in '%s' -pubout"):format(H.CLEAN_ENV, algorithm, table.concat(opts, " "), path,
          path, path))
        assert.equals(0, code, out)
        return path, out:match("%-%-%-%-%-BEGIN PUBLIC KEY.-%-%-%-%-%-END PUBLIC KEY%-%-%-%-%-\n?")
      end

      it("an RSA key under 2048 bits is refused for every RSA alg, naming the file", function()
        local path = new_key("small", "RSA", "rsa_keygen_bits:1024")
        for _, alg in ipairs { "RS256", "RS384", "PS256" } do
          local err = config_error(H.jwt_opts("rsa", { private_key_file = path, signing_alg = alg }))
          assert.equals(("the key in %s is an RSA key under 2048 bits: %s needs an RSA%s key of 2048 bits "
            .. "or more"):format(path, alg, alg == "PS256" and " or RSA-PSS" or ""), err.message)
        end
      end)

      it("an RSA key of 2048 bits is accepted", function()
        local path, pub = new_key("rsa2048", "RSA", "rsa_keygen_bits:2048")
        local o = H.jwt_opts("rsa", { private_key_file = path })
        H.jwt_client(o.client_id, { public_key = pub }) -- in place of the stand-in's key
        ok_call(ducky.client(o):ping_protected())
        assert.equals(1, H.exchanges(o.client_id))
      end)

      it("an RSA-PSS key signs PS256, and the stand-in accepts the assertion", function()
        local path, pub = new_key("pss", "RSA-PSS", "rsa_keygen_bits:2048")
        local o = H.jwt_opts("rsa", { private_key_file = path, signing_alg = "PS256" })
        H.jwt_client(o.client_id, { public_key = pub, alg = "PS256" })
        ok_call(ducky.client(o):ping_protected())
        assert.equals(1, H.exchanges(o.client_id))
        local a = H.stats().last_assertion
        assert.is_true(a.valid, a.error)
        assert.equals("PS256", a.header.alg)
      end)

      it("an RSA-PSS key is refused for RS256 and RS384 (PKCS#1 v1.5 signatures)", function()
        local path = new_key("pss", "RSA-PSS", "rsa_keygen_bits:2048")
        for _, alg in ipairs { "RS256", "RS384" } do
          local err = config_error(H.jwt_opts("rsa", { private_key_file = path, signing_alg = alg }))
          assert.equals(("the key in %s is an RSA-PSS key, which signs PS256 only: %s needs an RSA key of "
            .. "2048 bits or more"):format(path, alg), err.message)
        end
      end)

      it("an RSA-PSS key that cannot sign PS256 (restricted to SHA-512): config, naming the file", function()
        local path = new_key("pss512", "RSA-PSS", "rsa_keygen_bits:2048", "rsa_pss_keygen_md:sha512",
          "rsa_pss_keygen_mgf1_md:sha512")
        local err = config_error(H.jwt_opts("rsa", { private_key_file = path, signing_alg = "PS256" }))
        assert.equals(("signing the client assertion (PS256) with the key in %s failed"):format(path),
          err.message)
      end)
    end)

    it("no key at all: ping works, ping_protected is a config error", function()
      local o = H.jwt_opts("rsa", { private_key_file = H.NIL })
      local c = ducky.client(o)
      assert.equals(200, ok_call(c:ping()).status)
      config_error(o)
    end)

    it("an unknown signing_alg is a programmer error: ducky.client raises", function()
      for _, alg in ipairs { "HS256", "none", "ES512" } do
        H.raises(function() ducky.client(H.jwt_opts("rsa", { signing_alg = alg })) end, ("ducky.client: "
          .. 'option \'signing_alg\' must be "RS256", "RS384", "PS256" or "ES256", not "%s"'):format(alg))
      end
    end)
  end)

  -- ducky never makes such assertions: crafted by spec/support/standin/make_jwt.py and
  -- posted to the stand-in directly, to show that its verifier refuses them.
  describe("the stand-in refuses crafted assertions", function()
    local id, aud
    before_each(function()
      id = H.new_id("crafted")
      aud = H.origin("http") .. "/"
      H.jwt_client(id, { key = "rsa" })
      H.jwt_client(id, { key = "ec", add = true })
    end)

    local function refused(t, pattern)
      t.client_id, t.aud = t.client_id or id, t.aud or aud
      local status, ans = H.post_assertion(id, H.make_jwt(t))
      assert.equals(401, status, cjson.encode(ans))
      assert.equals("invalid_client", ans.error)
      if pattern then assert.matches(pattern, ans.error_description) end
      assert.equals(0, H.exchanges(id))
    end

    it("accepts a good one, once: a replay is refused", function()
      local jwt = H.make_jwt { client_id = id, aud = aud }
      local status, ans = H.post_assertion(id, jwt)
      assert.equals(200, status, cjson.encode(ans))
      status, ans = H.post_assertion(id, jwt)
      assert.equals(401, status)
      assert.equals("invalid_client", ans.error)
      assert.matches("already been used", ans.error_description)
      assert.equals(1, H.exchanges(id))
    end)

    it("expired", function() refused({ iat_in = -600, exp_in = -540 }, "expired") end)
    it("living more than 5 minutes", function() refused({ exp_in = 301 }, "5 minutes") end)
    it("issued in the future", function() refused({ iat_in = 60, exp_in = 90 }, "iat") end)
    it("signed with another key", function() refused({ key = "rsa_other" }, "signature") end)
    it("for another audience", function() refused({ aud = H.token_url("http") }, "aud") end)
    it("iss is not the client id", function() refused({ claims = { iss = "someone-else" } }, "iss") end)
    it("without jti", function() refused({ claims = { jti = cjson.null } }, "jti") end)
    it("alg in the header is not the one signed with", function()
      refused({ alg = "RS384", sign_alg = "RS256" }, "signature")
    end)
    it("PS256 with OpenSSL's default salt length (RFC 7518 wants the hash length)", function()
      refused({ alg = "PS256", pss_salt = "max" }, "signature")
    end)
    it("ES256 with a DER signature (RFC 7518 wants r || s)", function()
      refused({ alg = "ES256", key = "ec", ecdsa_der = true }, "signature")
    end)
  end)
end)

describe("tls_client_auth", function()
  it("accepted with the right certificate; the request carries the client id and no secret", function()
    local o = H.mtls_opts()
    local c = ducky.client(o)
    assert.equals(200, ok_call(c:ping_protected()).status)
    assert.equals(1, H.exchanges(o.client_id))
    local tr, params = token_request()
    assert.equals("tls_client_auth", tr.auth_method)
    assert.equals(o.client_id, tr.client_cert)
    assert.is_false(tr.authorization)
    assert.equals(o.client_id, params.client_id)
    assert.equals("client_credentials", params.grant_type)
    assert.equals(H.audience(), params.audience)
    assert.is_nil(params.client_secret)
    assert.is_nil(params.client_assertion_type)
    c:close()
  end)

  it("an RSA key encrypted with client_key_password", function()
    local o = H.mtls_opts(nil, { key_type = "RSA", password = "pw-" .. H.new_id() })
    assert.matches("ENCRYPTED", H.read_file(o.client_key))
    ok_call(ducky.client(o):ping_protected())
    assert.equals(1, H.exchanges(o.client_id))
  end)

  it("the wrong client_key_password: a config error naming the key file, no exchange", function()
    local o = H.mtls_opts({ client_key_password = "not-the-password" }, { password = "pw-" .. H.new_id() })
    local err = config_error(o)
    assert.equals("client_key " .. o.client_key .. " cannot be decrypted with client_key_password",
      err.message)
    assert.equals(0, H.exchanges(o.client_id))
  end)

  it("an encrypted key without client_key_password: an error, and no prompt reads stdin", function()
    local o = H.mtls_opts(nil, { password = "pw-" .. H.new_id() })
    local script = ([[
local ducky = require("ducky")
local c = ducky.client{ client_id = %q, base_url = %q, token_url = %q, audience = %q,
  ca_file = %q, token_auth = "tls_client_auth", client_cert = %q, client_key = %q,
  token_cache = false, retries = 0 }
local res, err = c:ping_protected()
print(res and "ok" or err.kind .. ": " .. err.message)
print("stdin left: " .. tostring(io.read("*l")))
]]):format(o.client_id, o.base_url, o.token_url, o.audience, o.ca_file, o.client_cert,
      o.client_key)
    local dir = H.tmpdir()
    H.write_file(dir .. "/child.lua", script)
    local out = H.run(("printf 'pw-guess\n' | %s %s '%s/child.lua'"):format(H.CHILD_ENV, H.LUA, dir))
    os.execute("rm -rf '" .. dir .. "'")
    assert.is_truthy(("\n" .. out):find("\nconfig: client_key " .. o.client_key
      .. " holds an encrypted key: set client_key_password\n", 1, true), out)
    assert.matches("stdin left: pw%-guess", out) -- nobody read the caller's input
    assert.is_nil(out:find("pass phrase", 1, true), out)
    assert.equals(0, H.exchanges(o.client_id))
  end)

  it("a key made unreadable to others later is refused even with a token cached", function()
    local o = H.mtls_opts { token_cache = H.NIL } -- the file cache, shared
    ok_call(ducky.client(o):ping_protected())
    local path, dir = key_copy(o.client_key, "0644")
    o.client_key = path
    local err = config_error(o)
    assert.is_truthy(tostring(err):find(path, 1, true), tostring(err))
    rm(dir)
  end)

  it("without a certificate: auth", function()
    local o = H.mtls_opts { client_cert = H.NIL, client_key = H.NIL }
    local err = auth_error(ducky.client(o):ping_protected())
    assert.matches("certificate", err.description)
    assert.equals(0, H.exchanges(o.client_id))
  end)

  it("with a certificate from another CA: auth", function()
    local o = H.mtls_opts(nil, { ca = "other_ca" })
    local err = auth_error(ducky.client(o):ping_protected())
    assert.matches("CA", err.description)
    assert.equals(0, H.exchanges(o.client_id))
  end)

  it("with another client's certificate: auth", function()
    local o = H.mtls_opts()
    local theirs = H.mtls_client(H.new_id("other"))
    o.client_cert, o.client_key = theirs.cert_file, theirs.key_file
    auth_error(ducky.client(o):ping_protected())
    assert.equals(0, H.exchanges(o.client_id))
  end)

  -- issue 19 item 10: a pair libcurl could not use is a config error naming the
  -- file at fault, found before any handshake (no connection to the token endpoint)
  describe("a certificate and key that cannot be used: config, naming the file, no exchange", function()
    it("a key that is not the certificate's", function()
      local o = H.mtls_opts()
      local theirs = H.mtls_client(H.new_id("other"))
      o.client_key = theirs.key_file
      local err = config_error(o)
      assert.equals(("client_key %s is not the key of client_cert %s"):format(o.client_key, o.client_cert),
        err.message)
    end)

    it("no client_key, and none in the certificate's file", function()
      local o = H.mtls_opts { client_key = H.NIL, client_key_password = H.NIL }
      local err = config_error(o)
      assert.equals(("client_cert %s holds no PEM private key: set client_key to the key's file")
        :format(o.client_cert), err.message)
    end)

    it("a client_cert that holds no certificate (the key file given twice)", function()
      local o = H.mtls_opts()
      o.client_cert = o.client_key
      local err = config_error(o)
      assert.equals(("client_cert %s holds no PEM certificate"):format(o.client_key), err.message)
    end)

    it("a client_key that holds no key (the certificate given twice)", function()
      local o = H.mtls_opts()
      local path, dir = key_copy(o.client_cert, "0600")
      o.client_key = path
      local err = config_error(o)
      assert.equals(("client_key %s holds no PEM private key"):format(path), err.message)
      rm(dir)
    end)

    it("a client_key without client_cert", function()
      local o = H.mtls_opts { client_cert = H.NIL }
      local err = config_error(o)
      assert.equals(("client_key %s is set without client_cert"):format(o.client_key), err.message)
    end)

    it("the command line exits 3 (config) and names the key file", function()
      local o = H.mtls_opts()
      o.client_key = H.mtls_client(H.new_id("other")).key_file
      local dir = H.tmpdir()
      local out, code = H.run(("XDG_CACHE_HOME=%s/cache XDG_CONFIG_HOME=%s %s %s bin/ducky ping --protected "
        .. "--base-url %s --token-url %s --audience %s --ca-file %s --token-auth tls_client_auth "
        .. "--client-id %s --client-cert %s --client-key %s"):format(dir, dir, H.CHILD_ENV, H.LUA, o.base_url,
        o.token_url, o.audience, o.ca_file, o.client_id, o.client_cert, o.client_key))
      rm(dir)
      assert.equals(3, code, out)
      assert.is_truthy(out:find(o.client_key .. " is not the key of client_cert", 1, true), out)
      assert.equals(0, H.exchanges(o.client_id))
    end)
  end)

  describe("the key in the certificate's own file (no client_key)", function()
    local function combined(o, mode)
      local dir = H.tmpdir()
      local path = dir .. "/both.pem"
      H.write_file(path, H.read_file(o.client_cert) .. H.read_file(o.client_key))
      assert(os.execute(("%schmod %s '%s'"):format(H.CLEAN_ENV, mode, path)))
      o.client_cert, o.client_key = path, nil
      return dir
    end

    it("works when that file is private", function()
      local o = H.mtls_opts()
      local dir = combined(o, "0600")
      local c = ducky.client(o)
      assert.equals(200, ok_call(c:ping_protected()).status)
      assert.equals(1, H.exchanges(o.client_id))
      c:close()
      rm(dir)
    end)

    it("is refused when group or others may read that file", function()
      local o = H.mtls_opts()
      local dir = combined(o, "0644")
      local err = config_error(o)
      assert.equals(("client_cert %s holds the private key, and may be read by group or others "
        .. "(chmod 600 it)"):format(o.client_cert), err.message)
      rm(dir)
    end)
  end)

  it("a client_key readable by group or others is a config error naming the file", function()
    local o = H.mtls_opts()
    local path, dir = key_copy(o.client_key, "0640")
    o.client_key = path
    local err = config_error(o)
    assert.is_truthy(tostring(err):find(path, 1, true), tostring(err))
    rm(dir)
  end)

  describe("with client_cert set, API calls present it too", function()
    it("so a certificate-bound token (RFC 8705 §3) works", function()
      local o = H.mtls_opts(nil, { bound = true })
      local c = ducky.client(o)
      assert.equals(200, ok_call(c:ping_protected()).status)
      local st = H.stats()
      assert.equals(o.client_id, st.last_api_auth.client_cert)
      assert.equals(o.client_id, st.last_api_auth.client_id)
      local res = ok_call(c:request("GET", "/echo"))
      assert.equals(o.client_id, res.json.client_cert)
      c:close()
    end)

    it("in a batch too", function()
      local o = H.mtls_opts(nil, { bound = true })
      local c = ducky.client(o)
      local results = c:batch({ { "GET", "/echo" }, { "GET", "/echo", { query = { n = 2 } } } })
      for i, r in ipairs(results) do
        assert.is_nil(r.err, r.err and tostring(r.err))
        assert.equals(o.client_id, r.res.json.client_cert, "request " .. i)
      end
      c:close()
    end)

    it("with a client secret for the token as well", function()
      local o = H.mtls_opts { token_auth = "json" }
      o.client_secret = H.secret(o.client_id)
      local res = ok_call(ducky.client(o):request("GET", "/echo"))
      assert.equals(o.client_id, res.json.client_cert)
      assert.equals("json", H.stats().last_token_request.auth_method)
    end)
  end)
end)

-- ------------------------------------------------------------------------
-- secrets: neither a private key, nor a key password, nor an assertion reaches
-- an error, a log event, tostring(client), stats() or the token cache file

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
end)
