-- token_auth = "tls_client_auth" (RFC 8705) against the stand-in's mTLS listener
-- (spec/support/standin/standin_auth.py): each spec uses a fresh client id with a
-- certificate made for it (H.mtls_opts). private_key_jwt: spec/token_auth_spec.lua.
local H = require("spec.helpers")
local A = require("spec.support.token_auth")
local ducky = require("ducky")

local ok_call, auth_error, config_error = A.ok_call, A.auth_error, A.config_error
local key_copy, rm, token_request = A.key_copy, A.rm, A.token_request

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

    -- found by review: the cache key covered client_cert's path, not the
    -- certificate; a client made after the file was renewed in place got the
    -- token bound to the old certificate, and its first call was a 401 and a
    -- replay (two processes at one relative path would take turns at that)
    it("a certificate renewed at the same path is another credential: its own token, no 401", function()
      local o = H.mtls_opts(nil, { bound = true })
      local old = ducky.client(o)
      ok_call(old:ping_protected())
      H.mtls_client(o.client_id, { bound = true }) -- a new certificate and key, same files
      local renewed = ducky.client(o)
      local res = ok_call(renewed:ping_protected())
      assert.equals(1, res.attempts)
      assert.equals(2, H.exchanges(o.client_id))
      assert.are_not.equals(old:token(), renewed:token())
      old:close(); renewed:close()
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
