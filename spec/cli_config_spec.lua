-- bin/ducky's settings: flags > DUCKY_* variables > the config file, the config
-- file and the secret file (checked by the module's reader before they are read),
-- the secret from standard input, and strict numbers.
local H = require("spec.helpers")
local R = require("spec.support.cli.runner")

local q, write, sh, failed, esc = R.q, R.write, R.sh, R.failed, R.esc

describe("ducky (the command line): settings", function()
  local run, dir, id, secret
  local function ducky(args, env, stdin) return run:ducky(args, env, stdin) end
  R.each(function(r) run, dir, id, secret = r, r.dir, r.id, r.secret end)

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

    it("refuses a config file with any permission for group or others, secret or not (exit 3)", function()
      for _, mode in ipairs({ "644", "640", "604", "620", "602", "610", "601" }) do
        local path = config(file_for(H.audience()), mode)
        local out, err, code = ducky({ "ping", "--protected" }, only_xdg)
        failed(3, "^ducky: config file " .. esc(path)
          .. " may be read by group or others %(chmod 600 it%)\n$", out, err, code)
      end
      -- no secret in it: the same rule (it names where the secret is sent)
      local path = config("audience = " .. H.audience() .. "\n", "644")
      failed(3, "config file " .. esc(path) .. " may be read by group or others", ducky({ "ping" }))
      config(file_for(H.audience()), "400")
      assert.equals(0, select(3, ducky({ "ping", "--protected" }, only_xdg)))
      if sh("id -u") == "0\n" then -- root can give it to someone else
        path = config(file_for(H.audience()), "600")
        sh("chown 65534 " .. q(path))
        failed(3, "config file " .. esc(path) .. " belongs to another user",
          ducky({ "ping", "--protected" }, only_xdg))
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

    -- issue 19 item 12: tonumber() took "0x10", " 5" and "2.5" retries
    it("numbers are read strictly, as the module reads DUCKY_*: no hex, sign, exponent or space", function()
      for _, bad in ipairs({ { "--timeout", "0x10" }, { "--timeout", " 5" }, { "--timeout", "5 " },
        { "--timeout", "1e1" }, { "--timeout", "+5" }, { "--timeout", "-1" }, { "--timeout", "0" },
        { "--timeout", ".5" }, { "--timeout", "5." },
        { "--connect-timeout", "inf" }, { "--retries", "2.5" }, { "--retries", "0x2" }, { "--retries", "-1" },
        { "--max-body", "1e6" }, { "--max-body", "1000 " } }) do
        failed(2, "^ducky: " .. esc(bad[1]) .. " must be ", ducky({ bad[1], bad[2], "ping" }))
      end
      for _, var in ipairs({ { "DUCKY_TIMEOUT", "0x10" }, { "DUCKY_TIMEOUT", " 5" },
        { "DUCKY_RETRIES", "2.5" }, { "DUCKY_MAX_BODY", "1e6" }, { "DUCKY_CONNECT_TIMEOUT", "5s" } }) do
        failed(3, "^ducky: " .. var[1] .. " must be ", ducky({ "ping" }, { [var[1]] = var[2] }))
      end
      write(dir .. "/config/ducky/config", "# numbers\nretries = 2.5\n", "600")
      failed(3, ":2: retries must be a whole number", ducky({ "ping" }))
      write(dir .. "/config/ducky/config", "timeout = 0.5\nretries = 0\nmax_body = 100000\n", "600")
      for _, good in ipairs({ { "--timeout", "2.50" }, { "--timeout", "5" }, { "--retries", "0" } }) do
        local _, err, code = ducky({ good[1], good[2], "ping", "--protected" })
        assert.equals(0, code, err)
      end
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
      -- no larger than a secret file may be (found by review: /dev/zero read until out of memory)
      failed(3, "standard input: the client secret is longer than 65536 bytes",
        ducky({ "ping", "--protected", "--secret-stdin" }, env, string.rep("x", 65537)))
      -- the flag wins over the environment's secret
      env.DUCKY_CLIENT_SECRET = "wrong-" .. secret
      assert.equals(0, select(3, ducky({ "ping", "--protected", "--secret-stdin" }, env, secret)))
    end)

    it("--secret-file and DUCKY_CLIENT_SECRET_FILE: the module reads the file (a call that needs no token "
      .. "does not)", function()
      local path = dir .. "/secret"
      write(path, secret .. "\n", "600")
      local env = { DUCKY_CLIENT_SECRET = false }
      assert.equals(0, select(3, ducky({ "ping", "--protected", "--secret-file", path }, env)))
      env.DUCKY_CLIENT_SECRET_FILE = path
      assert.equals(0, select(3, ducky({ "ping", "--protected" }, env)))
      -- the module's own error for its client_secret_file, when a call needs the token;
      -- a path that names no file is not shown: it may be the secret typed in its place
      local none = dir .. "/none"
      failed(3, "^ducky: config error: client_secret_file %(the path given%) does not exist\n$",
        ducky({ "ping", "--protected", "--secret-file", none }, env))
      local _, err = ducky({ "ping", "--protected", "--secret-file", "s3cr3t-Typed-Here" }, env)
      assert.is_nil(err:find("s3cr3t", 1, true), err)
      assert.equals(0, select(3, ducky({ "ping", "--secret-file", none }, env)))
      -- in the config file too
      write(dir .. "/config/ducky/config", "client_secret_file = " .. path .. "\n", "600")
      assert.equals(0, select(3, ducky({ "ping", "--protected" }, { DUCKY_CLIENT_SECRET = false })))
    end)

    it("a secret file: flag > DUCKY_CLIENT_SECRET > the config file's", function()
      local right, wrong = dir .. "/right", dir .. "/wrong"
      write(right, secret .. "\n", "600")
      write(wrong, "wrong-" .. secret .. "\n", "600")
      -- the flag's file wins over the variable's secret (the module alone would take the variable)
      local env = { DUCKY_CLIENT_SECRET = "wrong-" .. secret }
      local _, err, code = ducky({ "ping", "--protected", "--secret-file", right }, env)
      assert.equals(0, code, err)
      -- the variable wins over the config file's file
      write(dir .. "/config/ducky/config", "client_secret_file = " .. right .. "\n", "600")
      failed(4, "access_denied", ducky({ "ping", "--protected" }, env))
      env = { DUCKY_CLIENT_SECRET = false, DUCKY_CLIENT_SECRET_FILE = wrong }
      failed(4, "access_denied", ducky({ "ping", "--protected" }, env))
      assert.equals(0, select(3, ducky({ "ping", "--protected", "--secret-file", right }, env)))
      -- even when the flag's file is read for the module: checked before it is read
      env = { DUCKY_CLIENT_SECRET = "wrong-" .. secret }
      write(right, secret .. "\n", "640")
      failed(3, "secret file " .. esc(right) .. " may be read by group or others",
        ducky({ "ping", "--protected", "--secret-file", right }, env))
    end)

    it("a secret file anyone else may read or write is refused (exit 3)", function()
      local path = dir .. "/secret"
      local env = { DUCKY_CLIENT_SECRET = false, DUCKY_CLIENT_SECRET_FILE = path }
      for _, mode in ipairs({ "666", "644", "640", "604", "622", "602" }) do
        write(path, secret .. "\n", mode)
        failed(3, "client_secret_file " .. esc(path) .. " may be read by group or others %(chmod 600 it%)",
          ducky({ "ping", "--protected" }, env))
      end
      for _, mode in ipairs({ "600", "400" }) do
        write(path, secret .. "\n", mode)
        local _, err, code = ducky({ "ping", "--protected" }, env)
        assert.equals(0, code, err)
      end
    end)

    -- issue 19 item 8: a FIFO hung the command, /dev/zero was read until memory ran out
    it("a FIFO or a device as the secret file or the config file: refused at once, never read", function()
      local fifo = dir .. "/fifo"
      assert(os.execute(H.CLEAN_ENV .. "mkfifo " .. q(fifo)))
      -- each run under timeout(1), 10 s: a hung one fails (exit 124) rather than hanging the suite
      for _, target in ipairs({ fifo, "/dev/zero" }) do
        local pattern = "config file " .. esc(target) .. " is not a regular file"
        failed(3, pattern, run:ducky({ "--config", target, "ping" }, nil, nil, 10))
        failed(3, pattern, run:ducky({ "ping" }, { DUCKY_CONFIG = target }, nil, 10))
        failed(3, "client_secret_file " .. esc(target) .. " is not a regular file",
          run:ducky({ "--secret-file", target, "ping", "--protected" }, { DUCKY_CLIENT_SECRET = false }, nil,
            10))
        failed(3, "secret file " .. esc(target) .. " is not a regular file",
          run:ducky({ "--secret-file", target, "ping", "--protected" }, nil, nil, 10))
      end
      -- a file too large to be one
      local big = dir .. "/big"
      write(big, ("x"):rep(65 * 1024), "600")
      failed(3, "config file " .. esc(big) .. " is too large", ducky({ "--config", big, "ping" }))
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

    it("private_key_jwt with no secret: the module reads the key from its DUCKY_* variables", function()
      local key = H.standin().jwt_keys.rsa.private_key_file
      local out, err, code = ducky({ "ping", "--protected", "--token-auth", "private_key_jwt" },
        { DUCKY_CLIENT_SECRET = false, DUCKY_CLIENT_ID = "jwt-rs256", DUCKY_PRIVATE_KEY_FILE = key,
          DUCKY_KEY_ID = "rsa-1" })
      assert.equals(0, code, err)
      assert.matches('"ready": true', out)
    end)
  end)
end)
