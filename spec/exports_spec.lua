-- The module's exports for its Lua companions (src/exports.c): ducky.defaults(),
-- the name lists, read_private_file, check_entry and describe. Each is checked
-- against what the client itself does with the same names, defaults and rules.
local H = require("spec.helpers")
local ducky = require("ducky")

local SHOWN = { "base_url", "token_url", "audience", "token_auth", "timeout", "connect_timeout", "retries",
  "refresh_margin", "auth_backoff", "max_exchanges_per_hour", "max_retry_after", "max_body", "signing_alg",
  "http_version" }

-- ducky.defaults() in a child process with the DUCKY_* variables of env (and no other),
-- printed as name=value lines; returns the output and the exit code.
local function child_defaults(env)
  local unset = {}
  for _, v in ipairs { "BASE_URL", "TOKEN_URL", "AUDIENCE", "TOKEN_AUTH", "TIMEOUT", "CONNECT_TIMEOUT",
    "RETRIES", "MAX_BODY", "SIGNING_ALG" } do
    if not env["DUCKY_" .. v] then unset[#unset + 1] = "-u DUCKY_" .. v end
  end
  local vars = {}
  for k, v in pairs(env) do vars[#vars + 1] = ("%s='%s'"):format(k, v) end
  local dir = H.tmpdir()
  H.write_file(dir .. "/child.lua", [[
    local d = require("ducky").defaults()
    local names = {}
    for k in pairs(d) do names[#names + 1] = k end
    table.sort(names)
    for _, k in ipairs(names) do print(k .. "=" .. tostring(d[k])) end
  ]])
  local out, code = H.run(("env %s %s %s %s '%s/child.lua'"):format(table.concat(unset, " "), H.CHILD_ENV,
    table.concat(vars, " "), H.LUA, dir))
  os.execute("rm -rf '" .. dir .. "'")
  return out, code
end

local function private_file(dir, name, content, mode)
  local path = dir .. "/" .. name
  H.write_file(path, content)
  assert(os.execute(("%schmod %s '%s'"):format(H.CLEAN_ENV, mode or "600", path)))
  return path
end

local function in_list(list, v)
  for _, x in ipairs(list) do if x == v then return true end end
  return false
end

describe("ducky.defaults()", function()
  it("holds exactly the documented option names, each of the type the option takes", function()
    local d = ducky.defaults()
    local n = 0
    for _ in pairs(d) do n = n + 1 end
    assert.equals(#SHOWN, n)
    for _, name in ipairs(SHOWN) do assert.is_not_nil(d[name], name) end
    for _, name in ipairs { "timeout", "connect_timeout", "retries", "refresh_margin", "max_body" } do
      assert.equals("number", type(d[name]), name)
    end
    assert.is_nil(d.client_secret)
    assert.is_nil(d.client_key_password)
  end)

  it("agrees with the module constants and the client's own defaults", function()
    local out, code = child_defaults({})
    assert.equals(0, code, out)
    assert.matches("base_url=" .. ducky.BASE_URL:gsub("%p", "%%%0") .. "\n", out)
    assert.matches("token_url=" .. ducky.TOKEN_URL:gsub("%p", "%%%0") .. "\n", out)
    assert.matches("audience=" .. ducky.AUDIENCE:gsub("%p", "%%%0") .. "\n", out)
    local d = ducky.defaults()
    assert.is_true(in_list(ducky.TOKEN_AUTHS, d.token_auth))
    assert.is_true(in_list(ducky.SIGNING_ALGS, d.signing_alg))
    -- the cache key covers the token URL, token_auth and the audience: the defaults
    -- given explicitly make the same key as no options at all
    local id = H.new_id("defaults")
    local a = ducky.client { client_id = id, client_secret = H.secret(id), token_cache = false }
    local b = ducky.client { client_id = id, client_secret = H.secret(id), token_cache = false,
      token_url = d.token_url, audience = d.audience, token_auth = d.token_auth }
    assert.equals(a:cache_key(), b:cache_key())
    a:close()
    b:close()
  end)

  it("applies the DUCKY_* variables as ducky.client does", function()
    local out, code = child_defaults { DUCKY_TIMEOUT = "7.5", DUCKY_RETRIES = "4", DUCKY_TOKEN_AUTH = "form",
      DUCKY_AUDIENCE = "aud-from-env", DUCKY_SIGNING_ALG = "ES256" }
    assert.equals(0, code, out)
    assert.matches("\ntimeout=7.5\n", out)
    assert.matches("\nretries=4\n", out)
    assert.matches("\ntoken_auth=form\n", out)
    assert.matches("^audience=aud%-from%-env\n", out)
    assert.matches("\nsigning_alg=ES256\n", out)
  end)

  it("raises as ducky.client does for a variable it would refuse", function()
    local out, code = child_defaults { DUCKY_TOKEN_AUTH = "kerberos" }
    assert.not_equals(0, code)
    assert.matches("option 'token_auth' must be", out)
    out, code = child_defaults { DUCKY_TIMEOUT = "soon" }
    assert.not_equals(0, code)
    assert.matches("DUCKY_TIMEOUT", out)
  end)
end)

describe("ducky.TOKEN_AUTHS, SIGNING_ALGS and ERROR_KINDS", function()
  -- the list, the option its names are for, how many at least, a name it refuses
  for _, case in ipairs {
    { "TOKEN_AUTHS", "token_auth", 5, "kerberos" }, { "SIGNING_ALGS", "signing_alg", 4, "HS256" },
  } do
    local list, option, least, refused = case[1], case[2], case[3], case[4]
    it(list .. " are the names ducky.client takes, and no other", function()
      assert.is_true(#ducky[list] >= least)
      for _, name in ipairs(ducky[list]) do
        ducky.client(H.opts { [option] = name }):close()
      end
      local ok, e = pcall(ducky.client, H.opts { [option] = refused })
      assert.is_false(ok)
      for _, name in ipairs(ducky[list]) do assert.matches('"' .. name .. '"', e, 1, true) end
    end)
  end

  it("REQUEST_OPTIONS are the options request() takes, and no other", function()
    local c = ducky.client(H.opts {})
    local opts = { query = {}, json = {}, headers = {}, timeout = 1, retries = 0, auth = true }
    for _, name in ipairs(ducky.REQUEST_OPTIONS) do
      if name ~= "body" then
        assert(c:request("POST", "/echo/opts", { [name] = opts[name] }))
      end
    end
    assert.is_true(in_list(ducky.REQUEST_OPTIONS, "body"))
    H.raises(function() c:request("GET", "/echo/opts", { bogus = 1 }) end, "unknown option 'bogus'")
    c:close()
  end)

  it("ERROR_KINDS holds every kind an error can have, cancelled last", function()
    assert.equals("cancelled", ducky.ERROR_KINDS[#ducky.ERROR_KINDS])
    for _, kind in ipairs { "config", "network", "timeout", "tls", "auth", "http", "decode", "limit" } do
      assert.is_true(in_list(ducky.ERROR_KINDS, kind), kind)
    end
    -- errors met for real carry kinds of the list
    local c = ducky.client(H.opts { base_url = "http://127.0.0.1:" .. H.free_port() .. "/v3" })
    local _, err = c:ping()
    assert.is_true(in_list(ducky.ERROR_KINDS, err.kind), err.kind)
    c:close()
    c = ducky.client(H.opts { client_id = H.NIL, client_secret = H.NIL })
    _, err = c:token()
    assert.equals("config", err.kind)
    c:close()
  end)
end)

describe("ducky.read_private_file", function()
  local dir
  before_each(function() dir = H.tmpdir() end)
  after_each(function() os.execute("rm -rf '" .. dir .. "'") end)

  it("gives a private file's whole content", function()
    local text = "line one\nsecret\0with NUL\n"
    assert.equals(text, ducky.read_private_file(private_file(dir, "ok", text)))
    assert.equals("", ducky.read_private_file(private_file(dir, "empty", "")))
  end)

  it("refuses a file group or others may read, naming it", function()
    local path = private_file(dir, "open", "x", "644")
    local s, why = ducky.read_private_file(path)
    assert.is_nil(s)
    assert.equals(path .. " may be read by group or others (chmod 600 it)", why)
  end)

  it("refuses a file larger than max_bytes, and takes one of exactly that size", function()
    local path = private_file(dir, "big", ("k"):rep(100))
    assert.equals(100, #ducky.read_private_file(path, 100))
    local s, why = ducky.read_private_file(path, 99)
    assert.is_nil(s)
    assert.equals(path .. " is too large", why)
  end)

  it("refuses what is not a regular file without reading or blocking (FIFO, device, directory)", function()
    local fifo = dir .. "/fifo"
    assert(os.execute(("%smkfifo '%s' && chmod 600 '%s'"):format(H.CLEAN_ENV, fifo, fifo)))
    for _, path in ipairs { fifo, "/dev/zero", dir } do
      local s, why = ducky.read_private_file(path)
      assert.is_nil(s)
      assert.equals(path .. " is not a regular file", why)
    end
  end)

  it("refuses a missing file and another user's file", function()
    local s, why = ducky.read_private_file(dir .. "/none")
    assert.is_nil(s)
    assert.equals("(the path given) does not exist", why) -- it may be no path at all
    local out = H.run("id -u")
    if out:match("^0") then -- root can give a file away
      local path = private_file(dir, "theirs", "x")
      assert(os.execute(("%schown nobody '%s'"):format(H.CLEAN_ENV, path)))
      s, why = ducky.read_private_file(path)
      assert.is_nil(s)
      assert.equals(path .. " belongs to another user", why)
    end
  end)

  it("raises for misuse", function()
    assert.error_matches(function() ducky.read_private_file() end, "string expected")
    assert.error_matches(function() ducky.read_private_file("a\0b") end, "path holds NUL")
    assert.error_matches(function() ducky.read_private_file("/etc/hostname", 0) end, "max_bytes must be")
  end)
end)

describe("ducky.check_entry", function()
  local function entry(t)
    local e = { access_token = "tok_abc", token_type = "Bearer", expires_at = os.time() + 100,
      expires_in = 200 }
    for k, v in pairs(t or {}) do
      if v == H.NIL then e[k] = nil else e[k] = v end
    end
    return e
  end

  it("gives the seconds left on the wall clock, positive or not", function()
    local left = ducky.check_entry(entry())
    assert.is_true(left > 95 and left <= 100, tostring(left))
    left = ducky.check_entry(entry { expires_at = os.time() - 10 })
    assert.is_true(left <= -9, tostring(left))
    left = ducky.check_entry(entry { token_type = H.NIL, expires_in = H.NIL })
    assert.is_true(left > 95, tostring(left))
    assert.is_number(ducky.check_entry(entry { token_type = "bearer" }))
  end)

  it("takes a token of the longest size ducky takes from an answer, and refuses one byte more", function()
    -- the limit is the token cache's (DUCKY_MAX_TOKEN): the README's 16,384 bytes
    assert.is_number(ducky.check_entry(entry { access_token = ("t"):rep(16384) }))
    local left, why = ducky.check_entry(entry { access_token = ("t"):rep(16385) })
    assert.is_nil(left)
    assert.matches("longer than 16384 bytes", why)
  end)

  local bad = {
    { "no access_token", { access_token = H.NIL }, "entry has no access_token" },
    { "an empty access_token", { access_token = "" }, "entry has no access_token" },
    { "a token that is a number", { access_token = 12345 }, "entry has no access_token" },
    { "a token with a space", { access_token = "tok abc" }, "outside visible ASCII %(at 3%)" },
    { "a token with a newline", { access_token = "tok\n" }, "outside visible ASCII" },
    { "another token_type", { token_type = "mac" }, 'token_type is "mac", not Bearer' },
    { "a token_type that is a table", { token_type = {} }, "token_type is a table, not a string" },
    { "no expires_at", { expires_at = H.NIL }, "expires_at is not a number" },
    { "a string expires_at", { expires_at = "soon" }, "expires_at is not a number" },
    { "an infinite expires_at", { expires_at = math.huge }, "expires_at is not a number" },
    { "a NaN expires_at", { expires_at = 0 / 0 }, "expires_at is not a number" },
    { "a negative expires_in", { expires_in = -1 }, "expires_in is not a positive number" },
    { "a zero expires_in", { expires_in = 0 }, "expires_in is not a positive number" },
    { "a string expires_in", { expires_in = "3600" }, "expires_in is not a positive number" },
  }
  for _, case in ipairs(bad) do
    it("refuses an entry with " .. case[1], function()
      local left, why = ducky.check_entry(entry(case[2]))
      assert.is_nil(left)
      assert.matches(case[3], why)
    end)
  end

  it("refuses what is not a table, and reads no field through a metamethod", function()
    for _, v in ipairs { "garbage", 42, false } do
      local left, why = ducky.check_entry(v)
      assert.is_nil(left)
      assert.matches("entry is a " .. type(v) .. ", not a table", why)
    end
    local called = false
    local e = setmetatable({ expires_at = os.time() + 100 }, {
      __index = function() called = true return "tok_from_index" end })
    local left, why = ducky.check_entry(e)
    assert.is_nil(left)
    assert.matches("no access_token", why)
    assert.is_false(called)
    assert.error_matches(function() ducky.check_entry() end, "value expected")
  end)

  it("accepts the entries ducky itself gives a token_cache store", function()
    local stored = {}
    local c = ducky.client(H.opts { token_cache = {
      load = function() return nil end,
      store = function(_, e) stored[#stored + 1] = e end,
    } })
    assert(c:token())
    c:close()
    assert.equals(1, #stored)
    local left = ducky.check_entry(stored[1])
    assert.is_true(left > 0, tostring(left))
  end)
end)

describe("ducky.describe", function()
  it("describes every event a client emits on one line, with every field it needs", function()
    local c, events, o = H.client_with_log()
    local path = "/echo/describe-" .. o.client_id
    H.fault { path = "/v3" .. path, status = 503, headers = { ["Retry-After"] = "0" }, times = 1 }
    assert(c:token())
    assert(c:request("GET", path, { retries = 1 }))
    c:close()
    local seen = {}
    for _, ev in ipairs(events) do
      local line = ducky.describe(ev)
      seen[ev.event] = seen[ev.event] or line
      assert.is_nil(line:find("[%c]"), line)
      assert.is_nil(line:find("?", 1, true), line)
    end
    assert.matches("^token from exchange, %d+ s left, fingerprint %x+$", seen.token)
    assert.matches("^retry: attempt 2 after 503, waiting %d+%.%d%d s$", seen.retry)
  end)

  it("describes each kind of event ducky emits", function()
    assert.equals("token refresh failed (503): keeping the current token, 12 s left",
      ducky.describe { event = "stale_token", reason = "503", seconds_left = 12.9, fingerprint = "ab" })
    assert.equals("the API answered 401: token dropped, request replayed",
      ducky.describe { event = "replay_401" })
    assert.equals("token store error (store): token_cache.load: boom",
      ducky.describe { event = "store_error", source = "store", reason = "token_cache.load: boom" })
  end)

  it("keeps a line one line: control bytes of a reason are written as \\xNN", function()
    assert.equals("token store error (file): a\\x0ab\\x0d",
      ducky.describe { event = "store_error", source = "file", reason = "a\nb\r" })
  end)

  it("an event it does not know: its name and its fields, sorted, and ? for a missing one", function()
    assert.equals("queue_full a\\x0a=x b=true t=table z=1.5",
      ducky.describe { event = "queue_full", z = 1.5, ["a\n"] = "x", b = true, t = {}, [1] = "skipped" })
    assert.equals("token from ?, ? s left, fingerprint ?", ducky.describe { event = "token" })
    local called = false
    local ev = setmetatable({ event = "token" }, { __index = function() called = true return "x" end })
    assert.equals("token from ?, ? s left, fingerprint ?", ducky.describe(ev))
    assert.is_false(called)
  end)

  it("raises for what is not a table", function()
    assert.error_matches(function() ducky.describe("token") end, "table expected")
  end)
end)
