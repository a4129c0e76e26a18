-- Client authentication without a shared secret (issue 14, parts 2 and 3):
-- token_auth = "private_key_jwt" (RFC 7523 §2.2, Auth0 "Private Key JWT") against
-- the stand-in's verifier (spec/support/standin/standin_auth.py). Each spec uses a
-- fresh client id with a key registered for it (H.jwt_opts). tls_client_auth
-- (RFC 8705): spec/token_auth_tls_spec.lua; what never leaks from either:
-- spec/token_auth_secrets_spec.lua.
local H = require("spec.helpers")
local A = require("spec.support.token_auth")
local ducky = require("ducky")
local cjson = require("cjson")

local TOKEN = A.TOKEN
local ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
local KEY_OF = { RS256 = "rsa", RS384 = "rsa", PS256 = "rsa", ES256 = "ec" }

local ok_call, ok_token, auth_error, config_error = A.ok_call, A.ok_token, A.auth_error, A.config_error
local key_copy, rm, token_request = A.key_copy, A.rm, A.token_request

local function is_root()
  local out = H.run("id -u")
  return out:match("^0%s*$") ~= nil
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

    it("the key is read once: its file replaced or removed later, the client signs with the first", function()
      local path, dir = key_copy(H.jwt_key("rsa").private_key_file, "0600")
      local o = H.jwt_opts("rsa", { private_key_file = path })
      local c = ducky.client(o)
      ok_token(c:token())
      H.write_file(path, H.read_file(H.jwt_key("rsa_other").private_key_file))
      c:invalidate()
      ok_token(c:token())
      rm(dir)
      c:invalidate()
      ok_token(c:token())
      assert.equals(3, H.exchanges(o.client_id))
      assert.is_true(H.stats().last_assertion.valid)
      c:close()
    end)

    it("a retried exchange signs a new assertion (the server had used the first one)", function()
      local o = H.jwt_opts("rsa", { retries = 1 })
      -- the stand-in verifies the assertion (using up its jti), issues a token, drops the answer
      H.fault { path = TOKEN, client_id = o.client_id, drop = "mid_body" }
      local before = H.requests_to(TOKEN)
      local res = ok_call(ducky.client(o):ping_protected())
      assert.equals(200, res.status)
      assert.equals(before + 2, H.requests_to(TOKEN))
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

    it("a private_key_file that does not exist, not showing the path (it may be no path)", function()
      local path = H.tmpdir() .. "/no-such-key.pem"
      local err = config_error(H.jwt_opts("rsa", { private_key_file = path }))
      assert.matches("private_key_file %(the path given%) does not exist", tostring(err))
      assert.is_nil(tostring(err):find(path, 1, true), tostring(err))
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

      it("an Ed25519 key and an EC P-384 key are refused for every alg, naming the file", function()
        for _, k in ipairs { { "ed", "ED25519" }, { "p384", "EC", "ec_paramgen_curve:P-384" } } do
          local path = new_key(k[1], k[2], k[3])
          for _, alg in ipairs { "RS256", "RS384", "PS256", "ES256" } do
            local err = config_error(H.jwt_opts("rsa", { private_key_file = path, signing_alg = alg }))
            local kind = alg == "ES256" and "EC P-256" or "RSA"
            assert.equals(("the key in %s is not an %s key"):format(path, kind), err.message:match("^(.-):"))
          end
        end
      end)

      -- found by review: it said "holds no PEM private key (unencrypted)"
      it("an encrypted key: config, naming the file and saying so, no prompt", function()
        local path = dir .. "/enc.pem"
        local out, code = H.run(("%sopenssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -aes256 "
          .. "-pass pass:pw -out '%s' && chmod 600 '%s'"):format(H.CLEAN_ENV, path, path))
        assert.equals(0, code, out)
        local err = config_error(H.jwt_opts("ec", { private_key_file = path, signing_alg = "ES256" }))
        assert.equals(("%s holds an encrypted key: ducky signs with an unencrypted one only "
          .. "(openssl pkey -in KEY -out NEW)"):format(path), err.message)
      end)

      it("a certificate or a public key in place of the key: config 'holds no PEM private key'", function()
        local path, pub = new_key("rsa", "RSA", "rsa_keygen_bits:2048")
        local cert = dir .. "/cert.pem"
        local out, code = H.run(("%sopenssl req -x509 -key '%s' -subj /CN=x -days 1 -out '%s' "
          .. "&& chmod 600 '%s'"):format(H.CLEAN_ENV, path, cert, cert))
        assert.equals(0, code, out)
        local pub_file = dir .. "/pub.pem"
        H.write_file(pub_file, pub)
        assert(os.execute("chmod 600 '" .. pub_file .. "'"))
        for _, f in ipairs { cert, pub_file } do
          local err = config_error(H.jwt_opts("rsa", { private_key_file = f }))
          assert.equals(f .. " holds no PEM private key", err.message)
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

    -- found by review: ducky.client raised "out of memory" (the key was read with
    -- no issuer to put in the assertion), and so did `ducky ping`
    it("a key and no client_id: ping works, ping_protected is config 'no credentials: set client_id'",
    function()
      for _, key in ipairs { "file", "text" } do
        local o = H.jwt_opts("rsa", { client_id = H.NIL })
        if key == "text" then o.private_key, o.private_key_file = H.read_file(o.private_key_file), nil end
        local c = ducky.client(o)
        assert.equals(200, ok_call(c:ping()).status)
        local err = config_error(o)
        assert.matches("^no credentials: set client_id %(or DUCKY_CLIENT_ID%)$", err.message)
        c:close()
      end
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
