-- bin/ducky without a shared secret: private_key_jwt (a key file, --key-id,
-- --signing-alg) and tls_client_auth (a client certificate and key), and key
-- material that never goes on the command line nor comes back.
local H = require("spec.helpers")
local R = require("spec.support.cli.runner")
local cjson = require("cjson")

local write, failed, esc = R.write, R.failed, R.esc

describe("ducky (the command line)", function()
  local run, dir
  local function ducky(args, env, stdin) return run:ducky(args, env, stdin) end
  R.each(function(r) run, dir = r, r.dir end)

  describe("without a shared secret (issue 14): private_key_jwt and tls_client_auth", function()
    -- the PEM text's base64 lines and the password must never come back on stdout or stderr
    local function never_shown(secrets, out, err)
      for _, s in ipairs(secrets) do
        assert.is_nil(out:find(s, 1, true), "shown on stdout: " .. s)
        assert.is_nil(err:find(s, 1, true), "shown on stderr: " .. s)
      end
    end
    local function pem_lines(path)
      local lines = {}
      for line in assert(H.read_file(path)):gmatch("[^\n]+") do
        if not line:find("^%-%-%-%-%-") then lines[#lines + 1] = line end
      end
      assert.is_true(#lines > 0)
      return lines
    end

    -- a private_key_jwt client registered with the stand-in: its id, key file, the env to run with
    local function jwt_client(key, reg)
      local o = H.jwt_opts(key, nil, reg)
      return o, { DUCKY_CLIENT_ID = o.client_id, DUCKY_CLIENT_SECRET = false }
    end

    -- a tls_client_auth client on the stand-in's mTLS listener: its options and the flags that say them
    local function mtls_client(cert)
      local o = H.mtls_opts(nil, cert)
      local env = { DUCKY_CLIENT_ID = o.client_id, DUCKY_CLIENT_SECRET = false }
      local flags = { "--token-auth", "tls_client_auth", "--client-cert", o.client_cert,
        "--base-url", o.base_url, "--token-url", o.token_url, "--ca-file", o.ca_file }
      return o, env, flags
    end
    local function with(flags, ...)
      local args = {}
      for _, a in ipairs(flags) do args[#args + 1] = a end
      for _, a in ipairs({ ... }) do args[#args + 1] = a end
      return args
    end

    it("ping --protected with --token-auth private_key_jwt --private-key-file --key-id", function()
      local o, env = jwt_client("rsa", { kid = "kid-cli" })
      local out, err, code = ducky({ "ping", "--protected", "--token-auth", "private_key_jwt",
        "--private-key-file", o.private_key_file, "--key-id", "kid-cli" }, env)
      assert.equals(0, code, err)
      assert.equals('{\n  "message": "pong",\n  "ready": true\n}\n', out)
      assert.equals(1, H.exchanges(o.client_id))
      local a = H.stats().last_assertion
      assert.is_true(a.valid, a.error)
      assert.same({ alg = "RS256", typ = "JWT", kid = "kid-cli" }, a.header)
      never_shown(pem_lines(o.private_key_file), out, err)
    end)

    it("--key-id that is not the client's: an auth error (exit 4)", function()
      local o, env = jwt_client("rsa", { kid = "kid-cli" })
      failed(4, "kid", ducky({ "token", "--token-auth", "private_key_jwt", "--private-key-file",
        o.private_key_file, "--key-id", "kid-other" }, env))
      assert.equals(0, H.exchanges(o.client_id))
    end)

    it("--signing-alg and --assertion-audience; only the four algorithms", function()
      local url = H.token_url()
      local o, env = jwt_client("ec", { alg = "ES256", audiences = { url } })
      local _, err, code = ducky({ "token", "--token-auth", "private_key_jwt", "--private-key-file",
        o.private_key_file, "--signing-alg", "ES256", "--assertion-audience", url }, env)
      assert.equals(0, code, err)
      local a = H.stats().last_assertion
      assert.is_true(a.valid, a.error)
      assert.equals("ES256", a.header.alg)
      assert.equals(url, a.claims.aud)
      failed(2, "%-%-signing%-alg must be one of RS256, RS384, PS256, ES256",
        ducky({ "token", "--signing-alg", "HS256" }, env))
      failed(3, "DUCKY_SIGNING_ALG must be one of", ducky({ "ping" }, { DUCKY_SIGNING_ALG = "none" }))
      -- an EC key cannot make RS256: the module's config error, naming the file
      failed(3, "config error: .*" .. esc(o.private_key_file) .. ".*RS256", ducky({ "token", "--token-auth",
        "private_key_jwt", "--private-key-file", o.private_key_file }, env))
    end)

    it("the same from DUCKY_* variables, and from config-file keys", function()
      local o, env = jwt_client("ec", { alg = "ES256", kid = "kid-env" })
      env.DUCKY_TOKEN_AUTH, env.DUCKY_PRIVATE_KEY_FILE = "private_key_jwt", o.private_key_file
      env.DUCKY_KEY_ID, env.DUCKY_SIGNING_ALG = "kid-env", "ES256"
      local _, err, code = ducky({ "ping", "--protected" }, env)
      assert.equals(0, code, err)
      assert.equals("kid-env", H.stats().last_assertion.header.kid)

      local o2 = jwt_client("rsa", { alg = "PS256", kid = "kid-file" })
      write(dir .. "/config/ducky/config", table.concat({ "client_id = " .. o2.client_id,
        "token_auth = private_key_jwt", "private_key_file = " .. o2.private_key_file, "key_id = kid-file",
        "signing_alg = PS256", "" }, "\n"), "600")
      _, err, code = ducky({ "token" }, { DUCKY_CLIENT_ID = false, DUCKY_CLIENT_SECRET = false })
      assert.equals(0, code, err)
      assert.same({ alg = "PS256", typ = "JWT", kid = "kid-file" }, H.stats().last_assertion.header)
    end)

    it("private_key pasted into the config file: only in a 0600 one", function()
      local o = jwt_client("rsa")
      local path = dir .. "/config/ducky/config"
      local text = table.concat({ "client_id = " .. o.client_id, "token_auth = private_key_jwt",
        "private_key = " .. assert(H.read_file(o.private_key_file)), "retries = 0", "" }, "\n")
      local env = { DUCKY_CLIENT_ID = false, DUCKY_CLIENT_SECRET = false }
      write(path, text, "640")
      local out, err, code = ducky({ "ping", "--protected" }, env)
      failed(3, "config file " .. esc(path) .. " may be read by group or others %(chmod 600 it%)",
        out, err, code)
      never_shown(pem_lines(o.private_key_file), out, err)
      write(path, text, "600")
      out, err, code = ducky({ "ping", "--protected" }, env)
      assert.equals(0, code, err)
      assert.equals(1, H.exchanges(o.client_id))
      never_shown(pem_lines(o.private_key_file), out, err)
      -- a flag or a variable naming a key file replaces it
      env.DUCKY_PRIVATE_KEY_FILE = H.jwt_key("rsa_other").private_key_file
      failed(4, "invalid_client", ducky({ "token" }, env))
      -- a BEGIN line without its END line; the key text and its file, both
      write(path, "private_key = -----BEGIN PRIVATE KEY-----\nMIIB\n", "600")
      failed(3, ":1: private_key: no %-%-%-%-%-END line", ducky({ "ping" }, env))
      write(path, text .. "private_key_file = " .. o.private_key_file .. "\n", "600")
      failed(3, "private_key or private_key_file, not both", ducky({ "ping" }, env))
    end)

    it("a key file group or others may read: the config exit status, naming the file", function()
      local o, env = jwt_client("rsa")
      local path = dir .. "/key.pem"
      for _, mode in ipairs({ "640", "604", "644" }) do
        write(path, assert(H.read_file(o.private_key_file)), mode)
        local out, err, code = ducky({ "ping", "--protected", "--token-auth", "private_key_jwt",
          "--private-key-file", path }, env)
        failed(3, "private_key_file " .. esc(path) .. " may be read by group or others %(chmod 600 it%)",
          out, err, code)
        never_shown(pem_lines(path), out, err)
      end
      assert.equals(0, H.exchanges(o.client_id))
      -- ping needs no token: it works regardless
      assert.equals(0, select(3, ducky({ "ping", "--token-auth", "private_key_jwt", "--private-key-file",
        path }, env)))
      write(path, assert(H.read_file(o.private_key_file)), "600")
      assert.equals(0, select(3, ducky({ "ping", "--protected", "--token-auth", "private_key_jwt",
        "--private-key-file", path }, env)))
    end)

    it("no key, or a key without --token-auth private_key_jwt: no credentials (exit 3)", function()
      local o, env = jwt_client("rsa")
      failed(3, "no credentials: .*the private key %(%-%-private%-key%-file",
        ducky({ "ping", "--protected", "--token-auth", "private_key_jwt" }, env))
      failed(3, "no credentials: .*the secret .*; a private key is used with %-%-token%-auth private_key_jwt",
        ducky({ "ping", "--protected", "--private-key-file", o.private_key_file }, env))
      failed(3, "no credentials: .*the client certificate %(%-%-client%-cert",
        ducky({ "ping", "--protected", "--token-auth", "tls_client_auth" }, env))
      assert.equals(0, H.exchanges(o.client_id))
    end)

    it("ping --protected with --token-auth tls_client_auth --client-cert --client-key (the mTLS listener)",
    function()
      local o, env, flags = mtls_client()
      local out, err, code = ducky(with(flags, "--client-key", o.client_key, "ping", "--protected"), env)
      assert.equals(0, code, err)
      assert.equals('{\n  "message": "pong",\n  "ready": true\n}\n', out)
      assert.equals(1, H.exchanges(o.client_id))
      local tr = H.stats().last_token_request
      assert.equals("tls_client_auth", tr.auth_method)
      assert.equals(o.client_id, tr.client_cert)
      -- the API calls present it too
      local e = cjson.decode((ducky(with(flags, "--client-key", o.client_key, "get", "/echo"), env)))
      assert.equals(o.client_id, e.client_cert)
      -- from DUCKY_CLIENT_CERT and DUCKY_CLIENT_KEY
      env.DUCKY_CLIENT_CERT, env.DUCKY_CLIENT_KEY = o.client_cert, o.client_key
      env.DUCKY_TOKEN_AUTH = "tls_client_auth"
      out, err, code = ducky({ "token", "--base-url", o.base_url, "--token-url", o.token_url, "--ca-file",
        o.ca_file }, env)
      assert.equals(0, code, err)
      assert.matches("^source: file\n", out) -- the same credential: the token the first call cached
    end)

    it("an encrypted client key: its password from DUCKY_CLIENT_KEY_PASSWORD, or a 0600 config file",
    function()
      local pw = "pw-" .. H.new_id("cli")
      local o, env, flags = mtls_client({ password = pw })
      flags = with(flags, "--client-key", o.client_key, "ping", "--protected")
      env.DUCKY_CLIENT_KEY_PASSWORD = pw
      local out, err, code = ducky(flags, env)
      assert.equals(0, code, err)
      never_shown({ pw }, out, err)
      env.DUCKY_CLIENT_KEY_PASSWORD = false
      local path = dir .. "/config/ducky/config"
      write(path, "client_key_password = " .. pw .. "\n", "640")
      out, err, code = ducky(flags, env)
      failed(3, "config file " .. esc(path) .. " may be read by group or others", out, err, code)
      never_shown({ pw }, out, err)
      write(path, "client_key_password = " .. pw .. "\n", "600")
      out, err, code = ducky(flags, env)
      assert.equals(0, code, err)
      never_shown({ pw }, out, err)
      assert.equals(1, H.exchanges(o.client_id))
    end)

    it("a client key group or others may read: the config exit status, naming the file", function()
      local o, env, flags = mtls_client()
      local path = dir .. "/client.key"
      write(path, assert(H.read_file(o.client_key)), "640")
      local out, err, code = ducky(with(flags, "--client-key", path, "ping", "--protected"), env)
      failed(3, "client_key " .. esc(path) .. " may be read by group or others", out, err, code)
      never_shown(pem_lines(path), out, err)
      assert.equals(0, H.exchanges(o.client_id))
    end)

    it("key material never goes on the command line: no flag takes it, none shows it back", function()
      local o, env = jwt_client("rsa")
      local pem = assert(H.read_file(o.private_key_file))
      local lines = pem_lines(o.private_key_file)
      local pw = "pw-" .. H.new_id("argv")
      for _, args in ipairs({
        { "--private-key", pem, "token" }, { "--private-key=" .. pem, "token" },
        { "token", "--token-auth", "private_key_jwt", "--private-key", pem },
      }) do
        local out, err, code = ducky(args, env)
        failed(2, "no %-%-private%-key: .*give its file with %-%-private%-key%-file", out, err, code)
        never_shown(lines, out, err)
      end
      for _, args in ipairs({
        { "--client-key-password", pw, "token" }, { "--client-key-password=" .. pw, "token" },
        { "--key-password=" .. pw, "token" }, { "--pass", pw, "token" },
      }) do
        local out, err, code = ducky(args, env)
        failed(2, "DUCKY_CLIENT_KEY_PASSWORD", out, err, code)
        never_shown({ pw }, out, err)
      end
      -- the PEM text where a file's path belongs: refused, not shown (the module would name "the file")
      for _, flag in ipairs({ "--private-key-file", "--client-key", "--client-cert" }) do
        local out, err, code = ducky({ "token", "--token-auth", "private_key_jwt", flag, pem }, env)
        failed(2, esc(flag) .. " wants the path of a PEM file, not its text", out, err, code)
        never_shown(lines, out, err)
      end
      local out, err, code = ducky({ "token", "--token-auth", "private_key_jwt" },
        { DUCKY_CLIENT_ID = o.client_id, DUCKY_CLIENT_SECRET = false, DUCKY_PRIVATE_KEY_FILE = pem })
      failed(3, "DUCKY_PRIVATE_KEY_FILE wants the path of a PEM file, not its text", out, err, code)
      never_shown(lines, out, err)
      -- --help offers no option for a key's text, a password or a secret
      local help = (ducky({ "--help" }))
      for o_ in help:gmatch("%-%-[%w][%w-]*") do
        assert.is_nil(o_:find("password", 1, true), o_)
        assert.is_nil(o_:find("secret$"), o_)
        assert.not_equals("--private-key", o_)
      end
      assert.matches("%-%-private%-key%-file FILE", help)
      assert.matches("%-%-client%-key FILE", help)
      assert.matches("%-%-client%-cert FILE", help)
    end)
  end)

end)
