-- bin/ducky, the command line, run as a child process against the stand-in:
-- every subcommand, every exit code, the config file and its permission check,
-- the secret from a file or standard input, and one exchange for 20 processes.
local H = require("spec.helpers")
local cjson = require("cjson")

local LUA = H.LUA or os.getenv("DUCKY_LUA") or "lua5.4"
local BUILD = H.BUILD or os.getenv("DUCKY_BUILD") or "build"
local CHILD_ENV = H.CHILD_ENV or ("LUA_CPATH='./%s/?.so;;'"):format(BUILD)
local ROOT = io.popen("pwd"):read("*l") -- the checkout

-- every variable ducky reads, removed from the child's environment before the test's own
local UNSET = { "NO_COLOR", "DUCKY_CONFIG", "DUCKY_CLIENT_ID", "DUCKY_CLIENT_SECRET",
  "DUCKY_CLIENT_SECRET_FILE", "DUCKY_BASE_URL", "DUCKY_TOKEN_URL", "DUCKY_AUDIENCE", "DUCKY_TOKEN_AUTH",
  "DUCKY_CA_FILE", "DUCKY_CA_PATH", "DUCKY_INSECURE", "DUCKY_PROXY", "DUCKY_TIMEOUT",
  "DUCKY_CONNECT_TIMEOUT", "DUCKY_RETRIES", "DUCKY_MAX_BODY", "DUCKY_PRIVATE_KEY_FILE", "DUCKY_KEY_ID",
  "DUCKY_SIGNING_ALG", "DUCKY_ASSERTION_AUDIENCE", "DUCKY_CLIENT_CERT", "DUCKY_CLIENT_KEY",
  "DUCKY_CLIENT_KEY_PASSWORD" }

local q = H.quote

local function write(path, s, mode)
  local f = assert(io.open(path, "wb"))
  f:write(s)
  f:close()
  if mode then assert(os.execute(H.CLEAN_ENV .. "chmod " .. mode .. " " .. q(path))) end
end

local function sh(cmd)
  local p = assert(io.popen(H.CLEAN_ENV .. "sh -c " .. q(cmd) .. " 2>&1"))
  local out = p:read("*a")
  p:close()
  return out
end

-- The environment and command line of one bin/ducky run (a string for sh).
local function command(args, env)
  local parts = { "env" }
  for _, name in ipairs(UNSET) do parts[#parts + 1] = "-u " .. name end
  local names = {}
  for k in pairs(env) do names[#names + 1] = k end
  table.sort(names)
  for _, k in ipairs(names) do
    if env[k] then parts[#parts + 1] = q(k .. "=" .. env[k]) end
  end
  parts[#parts + 1] = CHILD_ENV .. " " .. LUA .. " bin/ducky"
  for _, a in ipairs(args) do parts[#parts + 1] = q(a) end
  return table.concat(parts, " ")
end

describe("ducky (the command line)", function()
  local dir, id, secret, base_env

  -- Runs bin/ducky; returns stdout, stderr, exit code. env adds to (false: removes from) base_env.
  local function ducky(args, env, stdin)
    local e = {}
    for k, v in pairs(base_env) do e[k] = v end
    for k, v in pairs(env or {}) do e[k] = v end
    local input = "/dev/null"
    if stdin then
      input = dir .. "/stdin"
      write(input, stdin)
    end
    local errfile = dir .. "/stderr"
    local p = assert(io.popen(command(args, e) .. " <" .. q(input) .. " 2>" .. q(errfile)
      .. "; echo \"__exit=$?\""))
    local out = p:read("*a")
    p:close()
    local code = tonumber(out:match("__exit=(%d+)\n?$"))
    out = out:gsub("__exit=%d+\n?$", "")
    local err = H.read_file(errfile) or ""
    -- never the secret, whatever happened
    assert.is_nil(out:find(secret, 1, true), "the secret on stdout")
    assert.is_nil(err:find(secret, 1, true), "the secret on stderr")
    return out, err, code
  end

  -- an error: one line on stderr, nothing on stdout unless said
  local function failed(code, pattern, out, err, got)
    assert.equals(code, got, err)
    assert.matches("^ducky: [^\n]+\n$", err)
    if pattern then assert.matches(pattern, err) end
    return out
  end

  before_each(function()
    dir = H.tmpdir()
    id = H.new_id("cli")
    secret = H.secret(id)
    assert(os.execute(H.CLEAN_ENV .. "mkdir -p " .. q(dir .. "/config/ducky") .. " " .. q(dir .. "/cache")))
    base_env = {
      XDG_CACHE_HOME = dir .. "/cache", XDG_CONFIG_HOME = dir .. "/config",
      DUCKY_BASE_URL = H.base_url(), DUCKY_TOKEN_URL = H.token_url(), DUCKY_AUDIENCE = H.audience(),
      DUCKY_CLIENT_ID = id, DUCKY_CLIENT_SECRET = secret, DUCKY_TIMEOUT = "5",
    }
  end)

  after_each(function()
    os.execute(H.CLEAN_ENV .. "rm -rf " .. q(dir))
  end)

  describe("ping", function()
    it("prints /ping's JSON pretty, nothing on stderr, exit 0, no token", function()
      local out, err, code = ducky({ "ping" })
      assert.equals(0, code, err)
      assert.equals('{\n  "message": "pong"\n}\n', out)
      assert.equals("", err)
      assert.equals(0, H.exchanges(id))
    end)

    it("--protected uses the token; keys sorted", function()
      local out, err, code = ducky({ "ping", "--protected" })
      assert.equals(0, code, err)
      assert.equals('{\n  "message": "pong",\n  "ready": true\n}\n', out)
      assert.equals(1, H.exchanges(id))
    end)

    it("--raw prints the body as sent", function()
      local out, _, code = ducky({ "--raw", "ping", "--protected" })
      assert.equals(0, code)
      assert.equals('{"message": "pong", "ready": true}', out)
    end)

    it("-i adds the status and the headers, sorted", function()
      local out, _, code = ducky({ "ping", "-i" })
      assert.equals(0, code)
      assert.matches('^HTTP 200\ncontent%-length: 19\ncontent%-type: application/json\n'
        .. 'x%-request%-id: req%-%d+\n\n{\n  "message": "pong"\n}\n$', out)
    end)

    it("-v tells the token source, the attempts and the time on stderr", function()
      local out, err, code = ducky({ "-v", "ping", "--protected" })
      assert.equals(0, code)
      assert.equals('{\n  "message": "pong",\n  "ready": true\n}\n', out)
      assert.matches("^%* token: exchange, %d+ s left, fingerprint %x+\n"
        .. "%* GET /ping/protected: 200 in [%d.]+ m?s, 1 attempt\n$", err)
      local _, again = ducky({ "ping", "--protected", "--verbose" })
      assert.matches("^%* token: file, ", again)
    end)

    it("20 consecutive processes make one token exchange", function()
      local cmd = command({ "ping", "--protected" }, base_env)
      -- keeps this process's environment: a sanitizer runtime the suite may preload
      local loop = "for i in $(seq 20); do %s >/dev/null || echo FAILED; done 2>&1"
      local p = assert(io.popen(loop:format(cmd)))
      local out = p:read("*a")
      p:close()
      assert.equals("", out)
      assert.equals(1, H.exchanges(id))
    end)
  end)

  describe("token", function()
    it("tells the source, seconds left and fingerprint; the token only with --show", function()
      local out, err, code = ducky({ "token" })
      assert.equals(0, code, err)
      local left, fp = out:match("^source: exchange\nseconds_left: (%d+)\nfingerprint: (%x+)\n$")
      assert.is_string(fp, out)
      assert.is_true(tonumber(left) > 86000 and tonumber(left) <= 86400)
      assert.equals(12, #fp)
      assert.is_nil(out:find("tok_", 1, true))

      out, err, code = ducky({ "token" })
      assert.equals(0, code, err)
      assert.matches("^source: file\nseconds_left: %d+\nfingerprint: " .. fp .. "\n$", out)

      out, err, code = ducky({ "token", "--show" })
      assert.equals(0, code, err)
      local token = out:match("^(tok_%x+)\n$")
      assert.is_string(token, out)
      assert.equals(fp, sh("printf %s " .. token .. " | sha256sum"):sub(1, 12))
      assert.equals(1, H.exchanges(id))
    end)

    it("--forget drops the cached token: the next one is a new exchange", function()
      assert.equals(0, select(3, ducky({ "token" })))
      local out, err, code = ducky({ "token", "--forget" })
      assert.equals(0, code, err)
      assert.equals("token forgotten\n", out)
      out = ducky({ "token" })
      assert.matches("^source: exchange\n", out)
      assert.equals(2, H.exchanges(id))
    end)

    it("needs credentials (exit 3), and --show or --forget, not both (exit 2)", function()
      failed(3, "no credentials", ducky({ "token" }, { DUCKY_CLIENT_SECRET = false }))
      failed(2, "not both", ducky({ "token", "--show", "--forget" }))
    end)
  end)

  describe("request", function()
    local function echo(args, stdin)
      local out, err, code = ducky(args, nil, stdin)
      assert.equals(0, code, err)
      assert.equals("", err)
      return cjson.decode(out)
    end

    it("sends the method, path, query, headers and a JSON body as given", function()
      local body = '{"k": [1, 2.50], "e": []}'
      local e = echo({ "request", "post", "/echo/x", "-q", "a=1", "-q", "a=2", "-qb=c d",
        "-H", "X-Spec: yes", "--header=X-Spec: again", "--json", body })
      assert.equals("POST", e.method)
      assert.equals("/v3/echo/x", e.path)
      assert.equals("a=1&a=2&b=c%20d", e.query)
      assert.equals("yes, again", e.headers["x-spec"])
      assert.equals("application/json", e.headers["content-type"])
      assert.equals(body, e.body)
      assert.equals(id, e.client_id)
    end)

    it("pretty-prints with sorted keys, numbers and strings as sent, empty arrays as arrays", function()
      local body = '{"n":1.50,"big":12345678901234567890,"b":[],'
        .. '"a b":{"z":[1,{"y":null}]},"a":"x\\/y\\u00e9"}'
      H.fault{ path = "/v3/echo", client_id = id, status = 200, body = body }
      local out, err, code = ducky({ "get", "/echo" })
      assert.equals(0, code, err)
      assert.equals(table.concat({
        '{',
        '  "a": "x\\/y\\u00e9",',
        '  "a b": {',
        '    "z": [',
        '      1,',
        '      {',
        '        "y": null',
        '      }',
        '    ]',
        '  },',
        '  "b": [],',
        '  "big": 12345678901234567890,',
        '  "n": 1.50',
        '}', '' }, "\n"), out)
      H.fault{ path = "/v3/echo", client_id = id, status = 200, body = body }
      assert.equals(body, (ducky({ "get", "/echo", "--raw" })))
    end)

    it("get, post, put, patch and delete are shortcuts", function()
      for _, m in ipairs({ "get", "post", "put", "patch", "delete" }) do
        local e = echo({ m, "/echo" })
        assert.equals(m:upper(), e.method)
        assert.equals("", e.body)
      end
    end)

    it("--json @file, --json - and --data with its own content type", function()
      write(dir .. "/body.json", '{"from": "file"}')
      assert.equals('{"from": "file"}', echo({ "put", "/echo", "--json", "@" .. dir .. "/body.json" }).body)
      local e = echo({ "patch", "/echo", "--json", "-" }, '[1, 2]\n')
      assert.equals("[1, 2]\n", e.body)
      e = echo({ "post", "/echo", "--data", "-", "-H", "Content-Type: text/plain" }, "plain text")
      assert.equals("plain text", e.body)
      assert.equals("text/plain", e.headers["content-type"])
      e = echo({ "post", "/echo", "--data", "raw" })
      assert.equals("application/octet-stream", e.headers["content-type"])
    end)

    it("--no-auth sends no token and needs no secret", function()
      local e = echo({ "get", "/echo", "-q", "public=1", "--no-auth" })
      assert.is_nil(e.headers.authorization)
      local out, err, code = ducky({ "get", "/ping", "--no-auth" }, { DUCKY_CLIENT_SECRET = false })
      assert.equals(0, code, err)
      assert.equals('{\n  "message": "pong"\n}\n', out)
      assert.equals(0, H.exchanges(id))
    end)

    it("an error status prints the body too and exits 5", function()
      local out = failed(5, "404", ducky({ "get", "/status/404" }))
      assert.equals('{\n  "status": 404\n}\n', out)
    end)
  end)

  describe("exit codes", function()
    it("2 for usage errors, never echoing a value", function()
      failed(2, "command", ducky({}))
      failed(2, "unknown option %-%-nope", ducky({ "--nope", "ping" }))
      failed(2, "no such command", ducky({ "frobnicate" }))
      failed(2, "no command pnig %(did you mean ping%?%)", ducky({ "pnig" }))
      failed(2, "wrong number of arguments", ducky({ "get" }))
      failed(2, "does not apply", ducky({ "ping", "--show" }))
      failed(2, "needs a value", ducky({ "get", "/echo", "-q" }))
      failed(2, "KEY=VALUE", ducky({ "get", "/echo", "-q", "novalue" }))
      failed(2, "NAME: VALUE", ducky({ "get", "/echo", "-H", "novalue" }))
      failed(2, "not valid JSON", ducky({ "post", "/echo", "--json", "{nope" }))
      failed(2, "not both", ducky({ "post", "/echo", "--json", "1", "--data", "x" }))
      failed(2, "not an HTTP method", ducky({ "request", "GE T", "/echo" }))
      failed(2, "timeout", ducky({ "--timeout", "soon", "ping" }))
      failed(2, "one of", ducky({ "--secret-stdin", "post", "/echo", "--json", "-" }, nil, "x"))
      local _, err = ducky({ "--client-secret=" .. secret, "ping" })
      failed(2, "secret%-file", "", err, 2)
    end)

    it("3 for configuration errors", function()
      failed(3, "no credentials", ducky({ "ping", "--protected" }, { DUCKY_CLIENT_SECRET = false }))
      failed(3, "DUCKY_RETRIES", ducky({ "ping" }, { DUCKY_RETRIES = "-1" }))
      failed(3, "cannot read config file", ducky({ "--config", dir .. "/none", "ping" }))
      failed(3, "base_url", ducky({ "ping" }, { DUCKY_BASE_URL = "ftp://example.invalid/" }))
    end)

    it("4 for auth errors; the secret is never shown", function()
      local wrong = "wrong-Sekr1t-" .. id
      local out, err, code = ducky({ "ping", "--protected" }, { DUCKY_CLIENT_SECRET = wrong })
      failed(4, "access_denied", out, err, code)
      assert.equals("", out)
      assert.is_nil(err:find(wrong, 1, true))
      out, err, code = ducky({ "-v", "token", "--secret-stdin" }, { DUCKY_CLIENT_SECRET = false }, wrong)
      failed(4, "access_denied", out, err, code)
      assert.is_nil(err:find(wrong, 1, true))
    end)

    it("6 for network, timeout and TLS errors", function()
      failed(6, "network error", ducky({ "--retries", "0", "ping" },
        { DUCKY_BASE_URL = "http://127.0.0.1:1/v3" }))
      H.fault{ path = "/v3/ping/protected", client_id = id, delay = 2 }
      failed(6, "timeout error", ducky({ "--timeout", "0.5", "ping", "--protected" }))
      local https = { DUCKY_BASE_URL = H.base_url("https") }
      failed(6, "tls error", ducky({ "ping" }, https))
      assert.equals(0, select(3, ducky({ "ping", "--ca-file", H.ca_file() }, https)))
      assert.equals(0, select(3, ducky({ "ping", "--insecure" }, https)))
      https.DUCKY_CA_FILE = H.ca_file()
      assert.equals(0, select(3, ducky({ "ping" }, https)))
    end)

    it("7 for decode errors", function()
      H.fault{ path = "/v3/ping/protected", client_id = id, status = 200, body = "{not json" }
      failed(7, "decode error", ducky({ "ping", "--protected" }))
    end)

    it("8 for limit errors", function()
      H.fault{ path = "/v3/ping/protected", client_id = id, huge = 5000 }
      failed(8, "limit error", ducky({ "--max-body", "1000", "ping", "--protected" }))
    end)
  end)

  describe("configuration", function()
    local function config(text, mode)
      local path = dir .. "/config/ducky/config"
      write(path, text, mode or "600")
      return path
    end

    local function file_for(audience)
      return table.concat({
        "# written by cli_spec",
        "client_id = " .. id,
        'client_secret = "' .. secret .. '"',
        "base_url = " .. H.base_url(),
        "token_url = " .. H.token_url(),
        "audience = " .. audience,
        "", "retries = 0",
      }, "\n")
    end

    local only_xdg = {
      DUCKY_CLIENT_ID = false, DUCKY_CLIENT_SECRET = false, DUCKY_BASE_URL = false,
      DUCKY_TOKEN_URL = false, DUCKY_AUDIENCE = false,
    }

    it("reads $XDG_CONFIG_HOME/ducky/config when it is 0600", function()
      config(file_for(H.audience()))
      local out, err, code = ducky({ "ping", "--protected" }, only_xdg)
      assert.equals(0, code, err)
      assert.matches('"ready": true', out)
    end)

    it("refuses a config file with any permission for group or others (exit 3)", function()
      for _, mode in ipairs({ "644", "640", "604", "620", "602", "610", "601" }) do
        config(file_for(H.audience()), mode)
        local out, err, code = ducky({ "ping", "--protected" }, only_xdg)
        failed(3, "config file .* must be yours and private %(%-rw.*%): chmod 600 it", out, err, code)
      end
      config(file_for(H.audience()), "400")
      assert.equals(0, select(3, ducky({ "ping", "--protected" }, only_xdg)))
      if sh("id -u") == "0\n" then -- root can give it to someone else
        local path = config(file_for(H.audience()), "600")
        sh("chown 65534 " .. q(path))
        failed(3, "owner 65534", ducky({ "ping", "--protected" }, only_xdg))
      end
    end)

    it("flags > environment > config file", function()
      config(file_for("wrong-audience"))
      local env = { DUCKY_CLIENT_ID = false, DUCKY_CLIENT_SECRET = false, DUCKY_AUDIENCE = false }
      failed(4, "wrong%-audience", ducky({ "ping", "--protected" }, env))
      env.DUCKY_AUDIENCE = H.audience()
      assert.equals(0, select(3, ducky({ "ping", "--protected" }, env)))
      env.DUCKY_AUDIENCE = "env-audience"
      failed(4, "env%-audience", ducky({ "ping", "--protected" }, env))
      assert.equals(0, select(3, ducky({ "ping", "--protected", "--audience", H.audience() }, env)))
    end)

    it("--config and DUCKY_CONFIG name another file; errors name the line, never its text", function()
      local path = dir .. "/other"
      write(path, file_for(H.audience()), "600")
      assert.equals(0, select(3, ducky({ "--config", path, "ping", "--protected" }, only_xdg)))
      local env = { DUCKY_CONFIG = path }
      for k, v in pairs(only_xdg) do env[k] = v end
      assert.equals(0, select(3, ducky({ "ping", "--protected" }, env)))
      write(path, "client_secret " .. secret .. "\n", "600")
      failed(3, ":1: expected key = value", ducky({ "--config", path, "ping" }))
      write(path, "# comment\nclient_sekret = " .. secret .. "\n", "600")
      failed(3, ":2: unknown key client_sekret", ducky({ "--config", path, "ping" }))
    end)

    it("--secret-stdin reads the secret from standard input", function()
      local env = { DUCKY_CLIENT_SECRET = false }
      local out, err, code = ducky({ "ping", "--protected", "--secret-stdin" }, env, secret .. "\n")
      assert.equals(0, code, err)
      assert.matches('"ready": true', out)
      failed(3, "empty", ducky({ "ping", "--protected", "--secret-stdin" }, env, ""))
      -- the flag wins over the environment's secret
      env.DUCKY_CLIENT_SECRET = "wrong-" .. secret
      assert.equals(0, select(3, ducky({ "ping", "--protected", "--secret-stdin" }, env, secret)))
    end)

    it("--secret-file and DUCKY_CLIENT_SECRET_FILE read it from a file", function()
      local path = dir .. "/secret"
      write(path, secret .. "\n", "600")
      local env = { DUCKY_CLIENT_SECRET = false }
      assert.equals(0, select(3, ducky({ "ping", "--protected", "--secret-file", path }, env)))
      env.DUCKY_CLIENT_SECRET_FILE = path
      assert.equals(0, select(3, ducky({ "ping", "--protected" }, env)))
      failed(3, "cannot read", ducky({ "ping", "--secret-file", dir .. "/none" }, env))
    end)
  end)

  describe("first ten minutes (issue 16)", function()
    it("a failed write to standard output is an error (exit 1), not a silent success", function()
      for _, args in ipairs({ { "get", "/echo" }, { "--raw", "ping" }, { "token" }, { "--version" } }) do
        -- this process's environment: a sanitizer runtime the suite may preload
        local p = assert(io.popen(command(args, base_env) .. " 2>&1 >/dev/full; echo \"exit=$?\""))
        local out = p:read("*a")
        p:close()
        assert.equals("ducky: cannot write to standard output: No space left on device\nexit=1\n", out)
      end
    end)

    it("--raw prints a 2xx body that claims JSON and is not, as received (exit 0)", function()
      H.fault{ path = "/v3/echo", client_id = id, status = 200, body = "{not json" }
      local out, err, code = ducky({ "get", "/echo", "--raw" })
      assert.equals(0, code, err)
      assert.equals("{not json", out)
      assert.equals("", err)
      -- without --raw: the body still, then the decode error
      H.fault{ path = "/v3/echo", client_id = id, status = 200, body = "{not json" }
      failed(7, "decode error", ducky({ "get", "/echo" }))
    end)

    it("a secret file anyone else may read or write is refused (exit 3)", function()
      local path = dir .. "/secret"
      local env = { DUCKY_CLIENT_SECRET = false, DUCKY_CLIENT_SECRET_FILE = path }
      for _, mode in ipairs({ "666", "644", "640", "604", "622", "602" }) do
        write(path, secret .. "\n", mode)
        failed(3, "secret file .* must be yours and private %(%-rw.*%): chmod 600 it",
          ducky({ "ping", "--protected" }, env))
      end
      for _, mode in ipairs({ "600", "400" }) do
        write(path, secret .. "\n", mode)
        local _, err, code = ducky({ "ping", "--protected" }, env)
        assert.equals(0, code, err)
      end
    end)

    it("a config file without the secret may be readable by all, never writable by others", function()
      local path = dir .. "/config/ducky/config"
      local env = { DUCKY_AUDIENCE = false }
      write(path, "audience = " .. H.audience() .. "\nretries = 0\n", "644")
      assert.equals(0, select(3, ducky({ "ping", "--protected" }, env)))
      for _, mode in ipairs({ "664", "646", "666" }) do
        write(path, "audience = " .. H.audience() .. "\n", mode)
        failed(3, "config file .* must be yours and writable by you alone %(.*%): chmod go%-w it",
          ducky({ "ping" }, env))
      end
    end)

    it("a config key written like its flag is named, with the right spelling", function()
      local path = dir .. "/config/ducky/config"
      write(path, "ca-file = /etc/ssl/x.pem\n", "600")
      failed(3, ":1: unknown key ca%-file %(did you mean ca_file%?%)", ducky({ "ping" }))
      write(path, "# ok\n--client-secret = " .. secret .. "\n", "600")
      failed(3, ":2: unknown key %-%-client%-secret %(did you mean client_secret%?%)", ducky({ "ping" }))
      write(path, "client_sekret = " .. secret .. "\n", "600")
      failed(3, ":1: unknown key client_sekret %(did you mean client_secret%?%)", ducky({ "ping" }))
      write(path, "x" .. secret .. " = 1\n", "600") -- not a key anyone meant: not shown
      failed(3, ":1: unknown key %(the keys are", ducky({ "ping" }))
    end)

    it("curl habits get a hint", function()
      failed(2, "unknown option %-d %(curl's %-d: here, %-%-data or %-%-json%)",
        ducky({ "post", "/echo", "-d", "x" }))
      failed(2, "%-X .*ducky post PATH", ducky({ "-X", "POST", "/echo" }))
      failed(2, "%-%-request .*ducky request METHOD PATH", ducky({ "--request", "POST", "/echo" }))
      failed(2, "no command GET: .*ducky get PATH, or ducky request GET PATH", ducky({ "GET", "/echo" }))
      failed(2, "no command OPTIONS: .*ducky request OPTIONS PATH", ducky({ "OPTIONS", "/echo" }))
      failed(2, "%-%-cacert: here, %-%-ca%-file", ducky({ "--cacert", "ca.pem", "ping" }))
      failed(2, "%-k: here, %-%-insecure", ducky({ "-k", "ping" }))
      failed(2, "no command: a path relative to the base URL", ducky({ H.base_url() .. "/ping" }))
    end)

    it("never echoes what was typed in the wrong place (the helper checks for the secret)", function()
      for _, args in ipairs({
        { "--token", secret, "ping" }, { "--password=" .. secret, "ping" }, { "-p" .. secret, "ping" },
        { secret }, { "help", secret }, { "--", secret, "ping" }, { "get", "/echo", "-q", secret },
        { "get", "/echo", "-H", secret }, { "request", secret, "/echo" }, { "ping", secret },
        { "--bearer", secret, "get", "/echo" },
      }) do
        failed(2, nil, ducky(args))
      end
    end)

    it("private_key_jwt with no secret: the module reads the key from its DUCKY_* variables", function()
      local key = H.standin().jwt_keys.rsa.private_key_file
      local out, err, code = ducky({ "ping", "--protected", "--token-auth", "private_key_jwt" },
        { DUCKY_CLIENT_SECRET = false, DUCKY_CLIENT_ID = "jwt-rs256", DUCKY_PRIVATE_KEY_FILE = key,
          DUCKY_KEY_ID = "rsa-1" })
      assert.equals(0, code, err)
      assert.matches('"ready": true', out)
    end)

    it("--version names the version in VERSION; fails (exit 1) when the module cannot load", function()
      local version = assert(H.read_file("VERSION")):match("^(%S+)\n$")
      local out, err, code = ducky({ "--version" })
      assert.equals(0, code, err)
      assert.equals("ducky " .. version .. " (" .. _VERSION .. ")\n", out)
      -- lua-cjson reachable, ducky not
      local cjson_so = assert(package.searchpath("cjson", package.cpath))
      assert(os.execute(H.CLEAN_ENV .. "ln -s " .. q(cjson_so) .. " " .. q(dir .. "/cjson.so")))
      local text, status = H.run(H.CLEAN_ENV .. ("LUA_CPATH=%s %s bin/ducky --version")
        :format(q(dir .. "/?.so"), LUA))
      assert.equals(1, status)
      assert.matches("^ducky: cannot load the ducky module with Lua 5%.%d: module 'ducky' not found\n$", text)
    end)

    it("bin/ducky from a checkout runs lua5.4 with build/, whatever `lua` is", function()
      if LUA ~= "lua5.4" or not H.read_file("build/ducky.so") then
        pending("needs build/ducky.so and the suite on lua5.4")
        return
      end
      -- a `lua` that is Lua 5.1 first on PATH, and no LUA_CPATH: the launcher picks its own
      local fake = dir .. "/fakebin"
      assert(os.execute(H.CLEAN_ENV .. "mkdir -p " .. q(fake) .. " && ln -s /usr/bin/lua5.1 "
        .. q(fake .. "/lua")))
      local out = sh(("cd /tmp && env -u LUA_CPATH -u LUA_PATH -u DUCKY_LUA PATH=%s:$PATH %s --version")
        :format(q(fake), q(ROOT .. "/bin/ducky")))
      assert.matches("^ducky %S+ %(Lua 5%.4%)\n$", out)
    end)
  end)

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
    local function esc(s) return (s:gsub("%p", "%%%0")) end

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
      -- no secret in it: it may be readable by others (not writable)
      write(dir .. "/config/ducky/config", table.concat({ "client_id = " .. o2.client_id,
        "token_auth = private_key_jwt", "private_key_file = " .. o2.private_key_file, "key_id = kid-file",
        "signing_alg = PS256", "" }, "\n"), "644")
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
      failed(3, "config file " .. esc(path) .. " holds the private key: it must be yours and private .*"
        .. "chmod 600 it", out, err, code)
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
      failed(3, "config file " .. esc(path) .. " holds the key password: it must be yours and private",
        out, err, code)
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

  describe("help, man page, completion, colour", function()
    local function options_of(text)
      local set = {}
      for o in text:gsub("\\%-", "-"):gmatch("%-%-[%w][%w-]*") do set[o] = true end
      return set
    end

    it("--help and help COMMAND print to stdout and exit 0", function()
      local out, err, code = ducky({ "--help" })
      assert.equals(0, code, err)
      assert.matches("^usage: ducky", out)
      for _, cmd in ipairs({ "ping", "token", "request", "get", "post", "put", "patch", "delete", "help" }) do
        assert.matches("\n  [^\n]*" .. cmd, out)
        local text, _, c = ducky({ "help", cmd })
        assert.equals(0, c)
        assert.matches("^usage: ducky ", text)
        assert.equals(text, (ducky({ cmd, "--help" })))
      end
      assert.equals(ducky({ "help", "request" }), (ducky({ "help", "delete" })))
      failed(2, "no such command", ducky({ "help", "nope" }))
      assert.matches("^ducky %d+%.%d+%.%d+ %(Lua", (ducky({ "--version" })))
    end)

    it("the man page and the completion know every option of --help", function()
      local help = options_of((ducky({ "--help" })))
      local man = options_of(assert(H.read_file("doc/ducky.1")))
      local completion = options_of(assert(H.read_file("completions/ducky.bash")))
      local n = 0
      for o in pairs(help) do
        n = n + 1
        assert.is_true(man[o], o .. " missing from doc/ducky.1")
        assert.is_true(completion[o], o .. " missing from completions/ducky.bash")
      end
      assert.is_true(n >= 25)
    end)

    it("the bash completion completes commands and options", function()
      local function complete(...)
        local words = { "ducky", ... }
        local quoted = {}
        for i, w in ipairs(words) do quoted[i] = q(w) end
        local script = ("source completions/ducky.bash; COMP_WORDS=(%s); COMP_CWORD=%d; _ducky; "
          .. "echo \"${COMPREPLY[*]}\""):format(table.concat(quoted, " "), #words - 1)
        return sh("bash -c " .. q(script))
      end
      local commands = complete("")
      for _, cmd in ipairs({ "ping", "token", "request", "get", "delete", "help" }) do
        assert.matches("%f[%w]" .. cmd .. "%f[%W]", commands)
      end
      assert.matches("%-%-protected", complete("ping", "--p"))
      assert.matches("%-%-json", complete("post", "/x", "--j"))
      assert.matches("PATCH", complete("request", ""))
      -- issue 14: the key options, their files and the algorithms; a value is not the command
      assert.matches("%-%-private%-key%-file", complete("--pri"))
      assert.matches("%-%-client%-cert", complete("ping", "--client-c"))
      assert.equals("RS256 RS384 PS256 ES256\n", complete("--signing-alg", ""))
      write(dir .. "/client.key", "x")
      for _, flag in ipairs({ "--private-key-file", "--client-cert", "--client-key" }) do
        assert.equals(dir .. "/client.key\n", complete(flag, dir .. "/cli"))
      end
      assert.matches("%f[%w]ping%f[%W]", complete("--private-key-file", "k.pem", "--key-id", "k1", ""))
    end)

    it("colour on a terminal only, never with NO_COLOR", function()
      if sh("command -v script") == "" then
        pending("no script(1) for a terminal")
        return
      end
      local preload = os.getenv("LD_PRELOAD")
      local env = {}
      for k, v in pairs(base_env) do env[k] = v end
      env.LD_PRELOAD = preload ~= "" and preload or nil
      local function on_tty(extra)
        for k, v in pairs(extra) do env[k] = v end
        return sh("script -qec " .. q(command({ "ping" }, env)) .. " /dev/null")
      end
      assert.matches("\27%[", on_tty({}))
      local plain = on_tty({ NO_COLOR = "1" })
      assert.matches('"message": "pong"', plain)
      assert.is_nil(plain:find("\27[", 1, true))
      assert.is_nil((ducky({ "ping" })):find("\27[", 1, true)) -- a pipe
    end)
  end)
end)
