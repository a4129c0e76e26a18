-- The pieces of the ducky command (lua/ducky/cli/), each on its own, in this
-- process: the JSON printer, the command line's tables and parser, the readers
-- of settings, the request options, the failures and their exit statuses, and
-- that what the command lists is what the module exports. bin/ducky as a whole
-- is run by cli_spec.lua, cli_config_spec.lua and cli_keys_spec.lua.
package.path = "./lua/?.lua;" .. package.path
local H = require("spec.helpers")
local ducky = require("ducky")
local args = require("ducky.cli.args")
local config = require("ducky.cli.config")
local fail = require("ducky.cli.fail")
local json = require("ducky.cli.json")
local output = require("ducky.cli.output")
local request = require("ducky.cli.request")

-- The failure fn raises: its kind and message (the spec fails when fn returns).
local function failure(fn, ...)
  local ok, err = pcall(fn, ...)
  assert.is_false(ok, "no failure")
  assert.is_true(fail.is_failure(err), tostring(err))
  return err.kind, err.message
end

describe("ducky.cli.json", function()
  it("lays out JSON with sorted keys, every number and string as sent, empty containers kept", function()
    local text = '{"n":1.50,"big":12345678901234567890,"b":[],"o":{},'
      .. '"a b":{"z":[1,{"y":null}]},"a":"x\\/y\\u00e9","t":true,"e":-0.5e-3}'
    assert.equals(table.concat({ "{", '  "a": "x\\/y\\u00e9",', '  "a b": {', '    "z": [', "      1,",
      "      {", '        "y": null', "      }", "    ]", "  },", '  "b": [],',
      '  "big": 12345678901234567890,',
      '  "e": -0.5e-3,', '  "n": 1.50,', '  "o": {},', '  "t": true', "}", "" }, "\n"), json.pretty(text))
  end)

  it("sorts by the decoded key (an escape is its character), a repeated key keeps its place", function()
    assert.equals('{\n  "\\u0061": 2,\n  "b": 1,\n  "b": 3\n}\n', json.pretty('{"b":1,"\\u0061":2,"b":3}'))
    assert.equals('[\n  "]",\n  "\\"",\n  ","\n]\n', json.pretty('[ "]" , "\\"",\n","]'))
  end)

  it("is nil for anything lua-cjson does not accept", function()
    for _, text in ipairs({ "", "  \n", "{", "{not json", "[1,]", "{'a':1}", "nul" }) do
      assert.is_nil(json.pretty(text), text)
    end
    assert.equals("5\n", json.pretty(" 5 "))
  end)

  it("paints each token by its kind", function()
    local function paint(kind, text) return "<" .. kind .. ">" .. text end
    assert.equals('{\n  <key>"k": [\n    <number>1,\n    <string>"s",\n    <literal>false\n  ]\n}\n',
      json.pretty('{"k":[1,"s",false]}', paint))
  end)

  it("is_json: a content type that says json", function()
    assert.is_true(json.is_json({ ["content-type"] = "application/problem+JSON; charset=utf-8" }))
    assert.is_false(json.is_json({ ["content-type"] = "text/plain" }))
    assert.is_false(json.is_json(nil))
  end)
end)

describe("ducky.cli.args", function()
  it("parses long, short, joined and repeated options; -- and - are arguments", function()
    local p = args.parse({ "-iv", "--query=a=1", "-qb=2", "-q", "c=3", "-H", "X: y", "get", "--", "-x",
      "-" })
    assert.equals("get", p.command)
    assert.same({ "-x", "-" }, p.args)
    assert.same({ include = true, verbose = true, query = { "a=1", "b=2", "c=3" }, header = { "X: y" } },
      p.opts)
  end)

  it("refuses unknown options with curl's hint, secrets' flags with where they go, never a value", function()
    assert.same({ "usage", "unknown option -d (curl's -d: here, --data or --json)" },
      { failure(args.parse, { "-d", "x" }) })
    local _, m = failure(args.parse, { "--client-secret=hunter2" })
    assert.matches("^no %-%-client%-secret: give the secret with %-%-secret%-file", m)
    assert.is_nil(m:find("hunter2", 1, true))
    assert.same({ "usage", "--raw takes no value" }, { failure(args.parse, { "--raw=yes" }) })
    assert.same({ "usage", "--timeout needs a value (TIMEOUT)" }, { failure(args.parse, { "--timeout" }) })
    assert.same({ "usage", "-q needs a value (KEY=VALUE)" }, { failure(args.parse, { "-q" }) })
  end)

  it("check: the command, its number of arguments, options that apply, one reader of stdin", function()
    local function check(argv) return args.check(args.parse(argv), function() return "ducky X" end) end
    assert.is_true(check({ "post", "/x", "--json", "-" }).request)
    assert.same({ "usage", "no command pnig (did you mean ping?)" }, { failure(check, { "pnig" }) })
    assert.same({ "usage", "wrong number of arguments; usage: ducky get PATH [REQUEST OPTIONS] [OPTIONS]" },
      { failure(check, { "get" }) })
    assert.same({ "usage", "--show does not apply to ping" }, { failure(check, { "ping", "--show" }) })
    assert.same({ "usage", "standard input can feed only one of --secret-stdin, --json -, --data -" },
      { failure(check, { "--secret-stdin", "post", "/x", "--data", "-" }) })
  end)

  it("near: a word at most two edits away", function()
    assert.equals("ca_file", args.near("ca_fiel", { "ca_path", "ca_file" }))
    assert.is_nil(args.near("completely-else", { "ca_file" }))
  end)

  it("every setting with choices names a list the module exports", function()
    local n = 0
    for _, s in ipairs(args.SETTINGS) do
      if s.choices then
        n = n + 1
        assert.is_table(ducky[s.choices], s.choices)
        assert.is_true(#ducky[s.choices] > 0)
      end
    end
    assert.equals(2, n)
  end)
end)

describe("ducky.cli.config", function()
  it("reads numbers strictly: digits, a fraction after a dot for seconds, digits alone for counts", function()
    local seconds, count = config.READ.seconds, config.READ.count
    for text, want in pairs({ ["30"] = 30, ["1.5"] = 1.5, ["0.5"] = 0.5, ["2.50"] = 2.5, ["007"] = 7 }) do
      assert.equals(want, seconds(text), text)
    end
    for _, text in ipairs({ "0", "0.0", "0x10", " 5", "5 ", "1e3", "+5", "-1", "5.", ".5", "inf", "nan",
      "1..2", "" }) do
      assert.is_nil(seconds(text), text)
    end
    assert.equals(0, count("0"))
    assert.equals(65536, count("65536"))
    for _, text in ipairs({ "2.5", "2.0", "0x2", "-1", " 1", "1 ", "1e2", "" }) do
      assert.is_nil(count(text), text)
    end
  end)

  it("reads booleans as the module reads DUCKY_INSECURE", function()
    for _, t in ipairs({ "1", "true", "yes" }) do assert.is_true(config.READ.boolean(t)) end
    for _, f in ipairs({ "0", "false", "no" }) do assert.is_false(config.READ.boolean(f)) end
    assert.is_nil(config.READ.boolean("on"))
  end)

  it("convert: the module's lists of choices; PEM text where a path belongs is refused, unshown", function()
    local s = args.SETTING
    for _, alg in ipairs(ducky.SIGNING_ALGS) do
      assert.equals(alg, config.convert(s.signing_alg, alg, "x", "usage"))
    end
    assert.same({ "usage", "--signing-alg must be one of " .. table.concat(ducky.SIGNING_ALGS, ", ") },
      { failure(config.convert, s.signing_alg, "HS256", "--signing-alg", "usage") })
    assert.same({ "config", "DUCKY_TOKEN_AUTH must be one of " .. table.concat(ducky.TOKEN_AUTHS, ", ") },
      { failure(config.convert, s.token_auth, "jwt", "DUCKY_TOKEN_AUTH", "config") })
    local pem = "-----BEGIN PRIVATE KEY-----\nMIIsecret"
    local _, m = failure(config.convert, s.client_key, pem, "k", "usage")
    assert.equals("k wants the path of a PEM file, not its text", m)
  end)

  it("parse_config: quotes, comments, a pasted PEM key; errors name the line, never its text", function()
    local pem = "-----BEGIN PRIVATE KEY-----\nMIIB\nabc\n-----END PRIVATE KEY-----"
    local v = config.parse_config("# c\n\nclient_id = 'id one'\nprivate_key = " .. pem .. "\n  retries=3\n",
      "f")
    assert.same({ client_id = "id one", private_key = pem .. "\n", retries = 3 }, v)
    assert.same({ "config", "f:2: expected key = value" },
      { failure(config.parse_config, "\nsecret-x\n", "f") })
    assert.same({ "config", "f:1: unknown key client_sekret (did you mean client_secret?)" },
      { failure(config.parse_config, "client_sekret = s3cr3t", "f") })
    assert.same({ "config", "f:1: private_key: no -----END line after its BEGIN line" },
      { failure(config.parse_config, "private_key = -----BEGIN PRIVATE KEY-----\nMIIB\n", "f") })
  end)

  it("secret_of: the last line break dropped; empty, or a break or NUL inside, refused", function()
    assert.equals("s3cr3t", config.secret_of("s3cr3t\r\n", "w"))
    assert.same({ "config", "w: the client secret is empty" }, { failure(config.secret_of, "\n", "w") })
    assert.same({ "config", "w: the client secret holds a line break or NUL" },
      { failure(config.secret_of, "a\nb", "w") })
  end)

  it("read_config: through the module's reader, which refuses before reading", function()
    local dir = H.tmpdir()
    H.write_file(dir .. "/c", "retries = 1\n")
    os.execute(H.CLEAN_ENV .. "chmod 600 '" .. dir .. "/c'")
    assert.same({ retries = 1 }, config.read_config(dir .. "/c", true))
    assert.same({}, config.read_config(dir .. "/none", false))
    assert.same({ "config", "config file (the path given) does not exist" },
      { failure(config.read_config, dir .. "/none", true) })
    os.execute(H.CLEAN_ENV .. "chmod 644 '" .. dir .. "/c'")
    assert.same({ "config", "config file " .. dir .. "/c may be read by group or others (chmod 600 it)" },
      { failure(config.read_config, dir .. "/c", false) })
    os.execute(H.CLEAN_ENV .. "rm -rf '" .. dir .. "'")
  end)
end)

describe("ducky.cli.request", function()
  it("builds request()'s opts: query lists, headers joined case-insensitively, the JSON body", function()
    local req = request.build({ query = { "a=1", "a=2", "b=" }, header = { "X-A: 1", "x-a: 2 ", "Y:z" },
      json = '{"k": 1}' })
    assert.same({ query = { a = { "1", "2" }, b = "" }, body = '{"k": 1}',
      headers = { ["X-A"] = "1, 2", Y = "z", ["Content-Type"] = "application/json" } }, req)
    req = request.build({ data = "raw", header = { "content-type: text/plain" }, ["no-auth"] = true })
    assert.same({ body = "raw", headers = { ["content-type"] = "text/plain" }, auth = false }, req)
    assert.same({}, request.build({}))
  end)

  it("refuses what it cannot send, as usage errors", function()
    assert.same({ "usage", "--query wants KEY=VALUE" },
      { failure(request.build, { query = { "novalue" } }) })
    assert.same({ "usage", "--header wants 'NAME: VALUE'" },
      { failure(request.build, { header = { "a b: c" } }) })
    assert.same({ "usage", "--json or --data, not both" },
      { failure(request.build, { json = "1", data = "x" }) })
    local kind, m = failure(request.build, { json = "{nope" })
    assert.equals("usage", kind)
    assert.matches("^%-%-json: not valid JSON %(", m)
  end)
end)

describe("ducky.cli.fail", function()
  it("has an exit status for every kind of ducky.error the module has", function()
    for _, kind in ipairs(ducky.ERROR_KINDS) do
      assert.is_number(fail.EXIT[kind], kind)
    end
    assert.equals(3, fail.status("config"))
    assert.equals(1, fail.status("no such kind"))
  end)

  it("module_error: a ducky.error ends the run with its kind and its one line", function()
    local client = ducky.client { base_url = "http://127.0.0.1:1/v3", retries = 0, token_cache = false }
    local _, err = client:ping()
    client:close()
    local kind, m = failure(fail.module_error, err)
    assert.equals("network", kind)
    assert.equals(tostring(err):gsub("^ducky ", ""), m)
  end)
end)

describe("ducky.cli.output", function()
  it("paints only when colour is on", function()
    assert.equals("x", output.painter(false)("key", "x"))
    assert.equals("\27[1;34mx\27[0m", output.painter(true)("key", "x"))
  end)

  it("elapsed: milliseconds with a fine clock, whole seconds without", function()
    assert.equals("1500.0 ms", output.elapsed(function() return 11.5 end, true, 10))
    assert.equals("1 s", output.elapsed(function() return 11.5 end, false, 10))
  end)
end)
