-- Credentials missing or empty, and the defaults the DUCKY_* environment
-- variables give the constructor (spec/client_spec.lua: the options in Lua).
local H = require("spec.helpers")
local ducky = require("ducky")

local new = H.client

-- Runs `script` in a child Lua (the one under test) with the given environment (a table name -> value;
-- the DUCKY_* variables of this process are removed first). Returns ok, output.
local function run_child(env, script)
  local dir = H.tmpdir()
  local file = dir .. "/child.lua"
  H.write_file(file, script)
  local parts = { "env" }
  for _, name in ipairs({ "DUCKY_CLIENT_ID", "DUCKY_CLIENT_SECRET", "DUCKY_BASE_URL",
                          "DUCKY_TOKEN_URL", "DUCKY_AUDIENCE" }) do
    parts[#parts + 1] = "-u " .. name
  end
  parts[#parts + 1] = string.format("%q", "LUA_CPATH=./" .. H.BUILD .. "/?.so;;")
  parts[#parts + 1] = string.format("%q", "XDG_CACHE_HOME=" .. dir .. "/cache")
  local names = {}
  for k in pairs(env) do names[#names + 1] = k end
  table.sort(names)
  for _, k in ipairs(names) do
    parts[#parts + 1] = string.format("%q", k .. "=" .. env[k])
  end
  parts[#parts + 1] = H.LUA .. " " .. file
  local out, code = H.run(table.concat(parts, " "))
  os.execute("rm -rf '" .. dir .. "'")
  return code == 0, out
end

describe("missing credentials", function()
  local has_env = os.getenv("DUCKY_CLIENT_ID") or os.getenv("DUCKY_CLIENT_SECRET")

  it("do not raise; ping works, ping_protected and token give a config error", function()
    if has_env then
      pending("DUCKY_CLIENT_ID/SECRET set in this environment")
      return
    end
    local c = new{ client_id = H.NIL, client_secret = H.NIL }
    local before = H.stats().requests_by_path["/oauth/token"] or 0
    local res, err = c:ping()
    assert.is_nil(err)
    assert.equals(200, res.status)
    assert.equals("pong", res.json.message)

    res, err = c:ping_protected()
    assert.is_nil(res)
    assert.is_true(ducky.is_error(err))
    assert.equals("config", err.kind)
    assert.is_string(err.message)

    local tok
    tok, err = c:token()
    assert.is_nil(tok)
    assert.equals("config", err.kind)
    assert.equals(before, H.stats().requests_by_path["/oauth/token"] or 0)
    c:close()
  end)

  it("only a client_id, or only a secret, is the same config error", function()
    if has_env then
      pending("DUCKY_CLIENT_ID/SECRET set in this environment")
      return
    end
    for _, o in ipairs({ { client_secret = H.NIL }, { client_id = H.NIL } }) do
      local c = new(o)
      local res, err = c:ping_protected()
      assert.is_nil(res)
      assert.equals("config", err.kind)
      assert.equals(200, assert(c:ping()).status)
      c:close()
    end
  end)
end)

-- issue 19 item 20: an empty string is no credential, as an empty DUCKY_* variable is
describe("empty credentials", function()
  it("an empty client_id or client_secret counts as unset: config 'no credentials', no exchange", function()
    local ok, out = run_child({ DUCKY_TOKEN_URL = H.token_url(), DUCKY_BASE_URL = H.base_url() }, [[
local ducky = require("ducky")
for _, auth in ipairs { "json", "form", "basic" } do
  for _, o in ipairs { { client_id = "", client_secret = "s" }, { client_id = "i", client_secret = "" },
      { client_id = "", client_secret = "" }, { client_id = "i", client_secret_file = "" } } do
    o.token_auth, o.token_cache, o.retries = auth, false, 0
    local c = ducky.client(o)
    local res, err = c:ping_protected()
    print(auth, res and "ok" or err.kind .. ": " .. err.message)
    c:close()
  end
end
local c = ducky.client { client_id = "i", token_auth = "private_key_jwt", private_key_file = "",
  private_key = "", token_cache = false }
local _, err = c:token()
print("private_key_jwt", err.kind .. ": " .. err.message)
print("cases", 3 * 4 + 1)
]])
    assert.is_true(ok, out)
    local lines = 0
    for line in out:gmatch("[^\n]+") do
      if not line:find("^cases") then
        lines = lines + 1
        assert.matches("^%S+\tconfig: no credentials: set client_id", line)
      end
    end
    assert.equals(tonumber(out:match("cases\t(%d+)")), lines, out)
  end)

  it("an empty client_secret with DUCKY_CLIENT_SECRET set takes the variable, as nil would", function()
    local id = H.new_id("empty-secret")
    local ok, out = run_child({ DUCKY_CLIENT_SECRET = H.secret(id) }, ([[
local ducky = require("ducky")
local c = ducky.client { client_id = %q, client_secret = "", base_url = %q, token_url = %q, audience = %q,
  token_cache = false, retries = 0 }
local res, err = c:ping_protected()
print(res and "status " .. res.status or tostring(err))
]]):format(id, H.base_url(), H.token_url(), H.audience()))
    assert.is_true(ok, out)
    assert.matches("status 200", out)
    assert.equals(1, H.exchanges(id))
  end)
end)

describe("defaults from DUCKY_* environment variables", function()
  local SCRIPT = [[
local ducky = require("ducky")
local c = ducky.client{ token_cache = false, retries = 0, timeout = 5 }
local res, err = c:ping()
print("ping", res and res.status or tostring(err))
res, err = c:ping_protected()
print("protected", res and tostring(res.json.ready) or tostring(err))
c:close()
]]

  it("take base_url, token_url, audience, client_id and client_secret", function()
    local id = H.new_id("env")
    local before = H.stats().requests_by_path["/v3/ping"] or 0
    local ok, out = run_child({
      DUCKY_BASE_URL = H.base_url(), DUCKY_TOKEN_URL = H.token_url(),
      DUCKY_AUDIENCE = H.audience(), DUCKY_CLIENT_ID = id, DUCKY_CLIENT_SECRET = H.secret(id),
    }, SCRIPT)
    assert.is_true(ok, out)
    assert.matches("ping\t200\n", out, 1, true)
    assert.matches("protected\ttrue\n", out, 1, true)
    local st = H.stats()
    assert.equals(before + 1, st.requests_by_path["/v3/ping"])
    assert.equals(1, st.exchanges_by_client[id])
    assert.equals(id, st.last_token_request.client_id)
    assert.equals(H.audience(), st.last_token_request.params.audience)
    assert.equals(id, st.last_api_auth.client_id)
  end)

  it("DUCKY_AUDIENCE is what the token request carries", function()
    local id = H.new_id("env-aud")
    local ok, out = run_child({
      DUCKY_BASE_URL = H.base_url(), DUCKY_TOKEN_URL = H.token_url(),
      DUCKY_AUDIENCE = "some-other-audience", DUCKY_CLIENT_ID = id,
      DUCKY_CLIENT_SECRET = H.secret(id),
    }, SCRIPT)
    assert.is_true(ok, out)
    assert.matches("ping\t200\n", out, 1, true)
    assert.matches("protected\tducky auth error", out, 1, true)
    assert.equals("some-other-audience", H.stats().last_token_request.params.audience)
    assert.equals(0, H.exchanges(id))
  end)

  it("options given in Lua win over the environment", function()
    local id = H.new_id("env-opt")
    local script = string.format([[
local ducky = require("ducky")
local c = ducky.client{ token_cache = false, retries = 0, timeout = 5, base_url = %q,
  token_url = %q, audience = %q, client_id = %q, client_secret = %q }
local res, err = c:ping_protected()
print("protected", res and tostring(res.json.ready) or tostring(err))
]], H.base_url(), H.token_url(), H.audience(), id, H.secret(id))
    local ok, out = run_child({
      DUCKY_BASE_URL = "http://127.0.0.1:1/v3", DUCKY_TOKEN_URL = "http://127.0.0.1:1/oauth/token",
      DUCKY_AUDIENCE = "wrong", DUCKY_CLIENT_ID = "wrong-id", DUCKY_CLIENT_SECRET = "wrong",
    }, script)
    assert.is_true(ok, out)
    assert.matches("protected\ttrue\n", out, 1, true)
    assert.equals(1, H.exchanges(id))
  end)

  it("without environment or options, the production URLs are the defaults", function()
    -- nothing is contacted: a client with no options is built and closed
    local ok, out = run_child({}, [[
local ducky = require("ducky")
local c = ducky.client{ token_cache = false }
print(tostring(c):find(ducky.BASE_URL, 1, true) ~= nil)
c:close()
print("done")
]])
    assert.is_true(ok, out)
    assert.matches("done\n", out, 1, true)
  end)

  -- issue 19 item 12: one strict reader for every number variable
  local NUMBER_CHILD = [[
local ducky = require("ducky")
local ok, e = pcall(ducky.client, { token_cache = false })
print(ok and "no error" or ("raised: " .. tostring(e)))
if ok then e:close() print("defaults: " .. require("cjson").encode(ducky.defaults())) end
]]
  local refused = {
    DUCKY_TIMEOUT = { "0x10", " 5", "5 ", "inf", "nan", "", "1e3", "+5", "-1", "5.", ".5", "5,5" },
    DUCKY_CONNECT_TIMEOUT = { "NaN", "0" },
    DUCKY_RETRIES = { "2.5", "0x2", "101" },
    DUCKY_MAX_BODY = { "1.5", "1e6", "infinity" },
  }
  local cases = {}
  for name, values in pairs(refused) do
    for _, value in ipairs(values) do cases[#cases + 1] = { name, value } end
  end
  for _, case in ipairs(cases) do
    local name, value = case[1], case[2]
    it(("%s=%q raises naming the variable, not echoing the value"):format(name, value), function()
      local ok, out = run_child({ [name] = value }, NUMBER_CHILD)
      assert.is_true(ok, out)
      assert.matches("raised: ducky.client: " .. name .. " must be a ", out, 1, true)
      if #value > 2 then assert.is_nil(out:find(value, 1, true), out) end
    end)
  end

  it("numbers in digits, with a fraction where the option takes one, are read as such", function()
    local ok, out = run_child({ DUCKY_TIMEOUT = "2.5", DUCKY_CONNECT_TIMEOUT = "0.001", DUCKY_RETRIES = "03",
      DUCKY_MAX_BODY = "1048576" }, NUMBER_CHILD)
    assert.is_true(ok, out)
    local d = require("cjson").decode(out:match("defaults: (%b{})"))
    assert.equals(2.5, d.timeout)
    assert.equals(0.001, d.connect_timeout)
    assert.equals(3, d.retries)
    assert.equals(1048576, d.max_body)
  end)

  it("a whole-number option given a fraction in Lua raises too", function()
    for _, name in ipairs { "retries", "max_body", "max_exchanges_per_hour" } do
      H.raises(new, "ducky.client: option '" .. name .. "' must be a whole number, not 2.5", { [name] = 2.5 })
    end
  end)

  it("a malformed DUCKY_BASE_URL raises like a malformed option", function()
    local ok, out = run_child({ DUCKY_BASE_URL = "not a url" }, [[
local ducky = require("ducky")
local ok, e = pcall(ducky.client, { token_cache = false })
print(ok and "no error" or ("raised: " .. tostring(e)))
]])
    assert.is_true(ok, out)
    assert.matches("raised: .*base_url", out)
  end)
end)
