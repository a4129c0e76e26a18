-- bin/ducky, the command line, run as a child process against the stand-in
-- (spec/support/cli/runner.lua): every subcommand, every exit code, the output,
-- help, man page and completion, and one exchange for 20 processes. The settings
-- and files are in cli_config_spec.lua, the key-based credentials in
-- cli_keys_spec.lua, the pieces of lua/ducky/cli/ in cli_modules_spec.lua.
local H = require("spec.helpers")
local R = require("spec.support.cli.runner")
local cjson = require("cjson")

local q, write, sh, failed = R.q, R.write, R.sh, R.failed

local ROOT = io.popen("pwd"):read("*l") -- the checkout

describe("ducky (the command line)", function()
  local run, dir, id, secret
  local function ducky(args, env, stdin) return run:ducky(args, env, stdin) end
  R.each(function(r) run, dir, id, secret = r, r.dir, r.id, r.secret end)

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
      assert.matches("^%* token from exchange, %d+ s left, fingerprint %x+\n"
        .. "%* GET /ping/protected: 200 in [%d.]+ m?s, 1 attempt\n$", err)
      local _, again = ducky({ "ping", "--protected", "--verbose" })
      assert.matches("^%* token from file, ", again)
    end)

    it("20 consecutive processes make one token exchange", function()
      local cmd = R.command({ "ping", "--protected" }, run.env)
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

    -- found by review: a cache that cannot be used made every run exchange,
    -- silently without -v (a cron job paid a token per run unawares)
    it("a token cache it cannot use is a warning on stderr, once per run; the run succeeds", function()
      sh("chmod 755 " .. q(dir .. "/cache") .. " && mkdir -p -m 755 " .. q(dir .. "/cache/ducky"))
      for run_no = 1, 2 do
        local out, err, code = ducky({ "token" })
        assert.equals(0, code, err)
        assert.matches("^source: exchange\n", out)
        local _, n = err:gsub("ducky: warning: [^\n]*\n", "")
        assert.equals(1, n, "run " .. run_no .. ": " .. err)
        assert.matches("^ducky: warning: token store error %(file%): the token cache directory", err)
      end
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
      failed(3, "config file %(the path given%) does not exist",
        ducky({ "--config", dir .. "/none", "ping" }))
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


  describe("first ten minutes (issue 16)", function()
    it("a failed write to standard output is an error (exit 1), not a silent success", function()
      for _, args in ipairs({ { "get", "/echo" }, { "--raw", "ping" }, { "token" }, { "--version" } }) do
        -- this process's environment: a sanitizer runtime the suite may preload
        local p = assert(io.popen(R.command(args, run.env) .. " 2>&1 >/dev/full; echo \"exit=$?\""))
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

    it("--version names the version in VERSION; fails (exit 1) when the module cannot load", function()
      local version = assert(H.read_file("VERSION")):match("^(%S+)\n$")
      local out, err, code = ducky({ "--version" })
      assert.equals(0, code, err)
      -- the interpreter it runs on: LuaJIT says which
      assert.equals("ducky " .. version .. " (" .. (jit and jit.version or _VERSION) .. ")\n", out)
      -- lua-cjson and the command's own modules reachable, ducky not
      local cjson_so = assert(package.searchpath("cjson", package.cpath))
      assert(os.execute(H.CLEAN_ENV .. "ln -s " .. q(cjson_so) .. " " .. q(dir .. "/cjson.so")))
      local text, status = H.run(H.CLEAN_ENV
        .. ("LUA_CPATH=%s LUA_PATH='./lua/?.lua;;' %s bin/ducky --version"):format(q(dir .. "/?.so"), H.LUA))
      assert.equals(1, status)
      assert.matches("^ducky: cannot load the ducky module with Lua 5%.%d: module 'ducky' not found\n$", text)
      -- nor its own pieces (lua/ducky/cli/ not on the path)
      local no_pieces = "LUA_CPATH=%s LUA_PATH='/nonexistent/?.lua' %s bin/ducky --version"
      text, status = H.run(H.CLEAN_ENV .. no_pieces:format(q(dir .. "/?.so"), H.LUA))
      assert.equals(1, status)
      assert.matches("^ducky: cannot load the ducky%.cli%.fail module with Lua 5%.%d: "
        .. "module 'ducky%.cli%.fail' not found\n$", text)
    end)

    it("bin/ducky from a checkout runs lua5.4 with build/, whatever `lua` is", function()
      if H.LUA ~= "lua5.4" or not H.read_file("build/ducky.so") then
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
      -- its build wins over a LUA_CPATH_5_4 or LUA_PATH_5_4 of the shell (Lua 5.4 reads them first)
      out = sh(("cd /tmp && env LUA_CPATH_5_4='/nonexistent/?.so;;' LUA_PATH_5_4='/nonexistent/?.lua;;' "
        .. "%s --version"):format(q(ROOT .. "/bin/ducky")))
      assert.matches("^ducky %S+ %(Lua 5%.4%)\n$", out)
    end)

    -- issue 19 item 21: it said "module 'ducky' not found"
    it("bin/ducky in a checkout without the build says to run make (exit 1)", function()
      local checkout = dir .. "/checkout"
      assert(os.execute(("%smkdir -p %s/bin && cp bin/ducky %s/bin/")
        :format(H.CLEAN_ENV, q(checkout), q(checkout))))
      local root = sh("cd " .. q(checkout) .. " && pwd -P"):gsub("\n$", "")
      for lua, make in pairs({ ["lua5.4"] = "make", luajit = "make LUA=luajit" }) do
        local out = sh(("cd /tmp && env DUCKY_LUA=%s %s/bin/ducky ping; echo \"exit=$?\"")
          :format(lua, q(checkout)))
        assert.equals(("ducky: %s/%s/ducky.so is not built: run '%s' in %s first\nexit=1\n")
          :format(root, lua == "lua5.4" and "build" or "build-luajit", make, root), out)
      end
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

    it("help, the man page and the completion offer the module's token_auth modes and algorithms", function()
      local module = require("ducky")
      local help = (ducky({ "--help" }))
      local man = assert(H.read_file("doc/ducky.1")):gsub("\\%-", "-")
      local completion = assert(H.read_file("completions/ducky.bash"))
      for list, flag in pairs({ TOKEN_AUTHS = "--token-auth", SIGNING_ALGS = "--signing-alg" }) do
        local names = assert(module[list], list)
        local line = assert(help:match("\n%s*" .. flag:gsub("%-", "%%-") .. " [^\n]*\n[^\n]*\n[^\n]*"), flag)
        assert.matches(flag:gsub("%-", "%%-") .. '%s+"?%s*' .. table.concat(names, "|"), man)
        assert.matches('compgen %-W "' .. table.concat(names, " ") .. '"', completion)
        for _, name in ipairs(names) do assert.matches("%f[%w_]" .. name .. "%f[^%w_]", line, name) end
      end
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
      for k, v in pairs(run.env) do env[k] = v end
      env.LD_PRELOAD = preload ~= "" and preload or nil
      local function on_tty(extra)
        for k, v in pairs(extra) do env[k] = v end
        return sh("script -qec " .. q(R.command({ "ping" }, env)) .. " /dev/null")
      end
      assert.matches("\27%[", on_tty({}))
      local plain = on_tty({ NO_COLOR = "1" })
      assert.matches('"message": "pong"', plain)
      assert.is_nil(plain:find("\27[", 1, true))
      assert.is_nil((ducky({ "ping" })):find("\27[", 1, true)) -- a pipe
    end)
  end)
end)
