-- The client secret and the access tokens never leak (DESIGN.md Token rules 8,
-- README "Security notes"): every scenario of the fault matrix
-- (spec/support/model/fault_matrix.lua) is run again with a distinctive secret and a
-- `log` function; every error (tostring and every field, recursively), every log
-- event, tostring(client) and stats() is searched for the secret in every form it
-- takes on the wire, and for a whole access token.
local H = require("spec.helpers")
local M = require("spec.support.model.fault_matrix")
local mime = require("mime")
local ducky = require("ducky")

-- an id (and so a secret, "secret-<id>") with characters that encode differently
-- in JSON, a form body, a URL and a Basic header
local PREFIX = "s3cr3t +/=&%?\195\188"

local function form_encode(s) -- application/x-www-form-urlencoded, both hex cases
  local upper = s:gsub("[^%w%-%._~ ]", function(ch) return ("%%%02X"):format(ch:byte()) end):gsub(" ", "+")
  return upper, (upper:gsub("%%%x%x", string.lower))
end

local function pct_encode(s) -- RFC 3986, space as %20, both hex cases
  local upper = s:gsub("[^%w%-%._~]", function(ch) return ("%%%02X"):format(ch:byte()) end)
  return upper, (upper:gsub("%%%x%x", string.lower))
end

-- every form the secret takes on the wire (and a few it could take in a message)
local function forbidden_forms(id, secret)
  local f = { secret }
  for _, fn in ipairs { form_encode, pct_encode } do
    local a, b = fn(secret)
    f[#f + 1], f[#f + 2] = a, b
  end
  local json = secret:gsub("/", "\\/")
  f[#f + 1] = json
  f[#f + 1] = (mime.b64(id .. ":" .. secret))
  f[#f + 1] = (mime.b64(secret))
  local fid, fsec = form_encode(id), form_encode(secret)
  f[#f + 1] = (mime.b64(fid .. ":" .. fsec))
  local pid, psec = pct_encode(id), pct_encode(secret)
  f[#f + 1] = (mime.b64(pid .. ":" .. psec))
  return f
end

local strings_of = H.strings_of

local find_leak = H.find_leak

local function find_token(texts)
  for _, s in ipairs(texts) do
    local tok = s:match("tok_" .. ("%x"):rep(32))
    if tok then return ("%q holds the access token %s"):format(s:sub(1, 300), tok) end
  end
  return nil
end

-- runs one matrix row with token_auth `auth` and checks everything it produced
local function run_and_check(row, auth)
  local ctx = M.run(row, { id_prefix = PREFIX, opts = { token_auth = auth } })
  if ctx.skipped then return ctx end
  local id, secret = ctx.opts.client_id, ctx.opts.client_secret
  assert.equals(H.secret(id), secret)
  local forms = forbidden_forms(id, secret)

  local err_texts = strings_of(ctx.err)
  if ctx.err then err_texts[#err_texts + 1] = tostring(ctx.err) end
  local event_texts = strings_of(ctx.events)
  local client_texts = { tostring(ctx.client) }
  strings_of(ctx.client:stats(), client_texts)
  ctx.client:close()
  client_texts[#client_texts + 1] = tostring(ctx.client)

  assert.is_nil(find_leak(err_texts, forms), "error")
  assert.is_nil(find_leak(event_texts, forms), "log event")
  assert.is_nil(find_leak(client_texts, forms), "tostring(client) or stats()")
  assert.is_nil(find_token(err_texts), "error")
  assert.is_nil(find_token(event_texts), "log event")
  assert.is_nil(find_token(client_texts), "tostring(client) or stats()")
  return ctx
end

describe("secrets", function()
  it("the distinctive secret really has several wire forms", function()
    local id = H.new_id(PREFIX)
    local forms = forbidden_forms(id, H.secret(id))
    local distinct = {}
    for _, f in ipairs(forms) do distinct[f] = true end
    local n = 0
    for _ in pairs(distinct) do n = n + 1 end
    assert.is_true(n >= 8, tostring(n))
  end)

  describe("in every fault matrix scenario (token_auth json)", function()
    for _, row in ipairs(M.rows) do
      it(row.where .. ": " .. row.name, function()
        local ctx = run_and_check(row, "json")
        if ctx.skipped then pending(ctx.skipped) end
      end)
    end
  end)

  -- form and basic carry the secret differently; only the token endpoint sees it
  for _, auth in ipairs { "form", "basic" } do
    describe("in the token endpoint scenarios (token_auth " .. auth .. ")", function()
      for _, row in ipairs(M.rows) do
        if row.where == "token endpoint" or row.where == "TLS" then
          it(row.name, function() run_and_check(row, auth) end)
        end
      end
    end)
  end

  describe("when the scenario succeeds", function()
    it("the credential works with these characters (json, form, basic)", function()
      for _, auth in ipairs { "json", "form", "basic" } do
        local ctx = run_and_check({ name = "plain call", where = "API", expect = {} }, auth)
        assert.is_nil(ctx.err, ctx.err and (auth .. ": " .. tostring(ctx.err)))
        assert.equals(200, ctx.res.status)
        assert.equals(1, ctx.exchanges, auth)
        -- a token event names the token by fingerprint only
        local ev = M.events_named(ctx, "token")[1]
        assert.matches("^%x+$", ev.fingerprint)
        assert.is_true(#ev.fingerprint < 32, ev.fingerprint)
      end
    end)
  end)

  describe("when a server echoes the secret back", function()
    it("a token endpoint error quoting the secret does not carry it into err", function()
      local row = {
        name = "echoing token endpoint", where = "token endpoint", expect = {},
        setup = function(ctx)
          local secret = ctx.opts.client_secret
          H.fault { path = M.TOKEN_PATH, client_id = ctx.id, status = 401,
            body = { error = "invalid_client", error_description = "wrong client_secret " .. secret } }
        end,
      }
      local ctx = run_and_check(row, "json")
      assert.equals("auth", ctx.err.kind)
      assert.equals(401, ctx.err.status)
    end)
  end)

  -- Issue 13 item 3: a token endpoint quoting the secret back in each encoding
  -- ducky sends it in. ECHO_PREFIX makes the four differ: a quote, a backslash, a
  -- space, a slash, a plus, an ampersand, é and a control character.
  local ECHO_PREFIX = "q\"b\\ s/p+a&\195\169\1"

  -- the secret as ducky sends it (raw, JSON-escaped, form, Basic): see fault_matrix.lua
  local sent_forms, FORM_NAMES = M.sent_forms, M.FORM_NAMES

  -- the forms as a list for find_leak, each also with control characters
  -- replaced by spaces (what bin/ducky does to its error line)
  local function form_list(forms)
    local out = {}
    for _, name in ipairs(FORM_NAMES) do
      out[#out + 1] = forms[name]
      out[#out + 1] = (forms[name]:gsub("%c", " "))
    end
    return out
  end

  -- the stand-in's record of a request body (latin-1 text, re-encoded to UTF-8
  -- by the JSON control answer) back to the bytes on the wire
  local function wire_bytes(s)
    return (s:gsub("([\194\195])([\128-\191])", function(a, b)
      return string.char((a:byte() - 192) * 64 + (b:byte() - 128))
    end))
  end

  describe("a token endpoint quoting the secret in every encoding ducky sends (issue 13 item 3)", function()
    it("the spec's encodings are the bytes ducky sends (json, form, basic)", function()
      for _, auth in ipairs { "json", "form", "basic" } do
        local id = H.new_id(ECHO_PREFIX)
        local secret = H.secret(id)
        local forms = sent_forms(id, secret)
        local c = ducky.client(H.opts { client_id = id, client_secret = secret, token_auth = auth })
        assert(c:token())
        c:close()
        local sent = H.stats().last_token_request
        if auth == "json" then
          local field = '"client_secret":"' .. forms.json .. '"'
          assert.truthy(wire_bytes(sent.body):find(field, 1, true), sent.body)
        elseif auth == "form" then
          assert.truthy(wire_bytes(sent.body):find("client_secret=" .. forms.form, 1, true), sent.body)
        else
          assert.equals("Basic " .. forms.basic, sent.authorization_value)
        end
      end
    end)

    -- a 200 answer is checked, and a token_type that is not Bearer quoted in
    -- the error: masked like the error fields (found by review: it was not)
    it("a 200 answer whose token_type quotes the secret: masked in err and events", function()
      for _, name in ipairs(FORM_NAMES) do
        local id = H.new_id(ECHO_PREFIX)
        local secret = H.secret(id)
        local forms = sent_forms(id, secret)
        local events = {}
        local c = ducky.client(H.opts { client_id = id, client_secret = secret,
          log = function(e) events[#events + 1] = e end })
        H.fault { path = M.TOKEN_PATH, client_id = id, status = 200,
          body = { access_token = "tok", token_type = forms[name], expires_in = 3600 } }
        local res, err = c:ping_protected()
        c:close()
        assert.is_nil(res)
        assert.equals("decode", err.kind, tostring(err))
        local texts = strings_of(err)
        texts[#texts + 1] = tostring(err)
        strings_of(events, texts)
        local leak = find_leak(texts, form_list(forms))
        assert.is_nil(leak, ("%s form echoed: %s"):format(name, tostring(leak)))
        assert.matches('token_type is "%*+", not Bearer', tostring(err))
      end
    end)

    for _, auth in ipairs { "json", "form", "basic" } do
      it("token_auth " .. auth .. ": masked in err, tostring(err) and events", function()
        for _, name in ipairs(FORM_NAMES) do
          local id = H.new_id(ECHO_PREFIX)
          local secret = H.secret(id)
          local forms = sent_forms(id, secret)
          local events = {}
          local c = ducky.client(H.opts { client_id = id, client_secret = secret, token_auth = auth,
            log = function(e) events[#events + 1] = e end })
          -- one encoding per answer, so that each fits whole in the one-line message
          H.fault { path = M.TOKEN_PATH, client_id = id, status = 401,
            body = { error = "x" .. forms[name], error_description = "got " .. forms[name] } }
          local res, err = c:ping_protected()
          c:close()
          assert.is_nil(res)
          assert.equals("auth", err.kind, tostring(err))
          assert.equals(401, err.status)
          local texts = strings_of(err)
          texts[#texts + 1] = tostring(err)
          strings_of(events, texts)
          local leak = find_leak(texts, form_list(forms))
          assert.is_nil(leak, ("%s form echoed: %s"):format(name, tostring(leak)))
          assert.matches("^got %*+$", err.description, nil, nil)
          assert.matches("^x%*+$", err.code, nil, nil)
        end
      end)
    end

    -- bin/ducky prints tostring(err) (and with -v every event) on stderr
    local UNSET = { "NO_COLOR", "DUCKY_CONFIG", "DUCKY_CLIENT_ID", "DUCKY_CLIENT_SECRET",
      "DUCKY_CLIENT_SECRET_FILE", "DUCKY_BASE_URL", "DUCKY_TOKEN_URL", "DUCKY_AUDIENCE", "DUCKY_TOKEN_AUTH",
      "DUCKY_CA_FILE", "DUCKY_CA_PATH", "DUCKY_INSECURE", "DUCKY_PROXY", "DUCKY_TIMEOUT",
      "DUCKY_CONNECT_TIMEOUT", "DUCKY_RETRIES", "DUCKY_MAX_BODY" }
    local function q(v) return "'" .. tostring(v):gsub("'", "'\\''") .. "'" end

    for _, auth in ipairs { "json", "form", "basic" } do
      it("token_auth " .. auth .. ": bin/ducky's stdout and stderr hold none of them", function()
        local dir = H.tmpdir()
        for _, name in ipairs(FORM_NAMES) do
          local id = H.new_id(ECHO_PREFIX)
          local secret = H.secret(id)
          local forms = sent_forms(id, secret)
          H.fault { path = M.TOKEN_PATH, client_id = id, status = 401,
            body = { error = "x" .. forms[name], error_description = "got " .. forms[name] } }
          local env = { XDG_CACHE_HOME = dir .. "/cache", XDG_CONFIG_HOME = dir .. "/config",
            DUCKY_BASE_URL = H.base_url(), DUCKY_TOKEN_URL = H.token_url(), DUCKY_AUDIENCE = H.audience(),
            DUCKY_CLIENT_ID = id, DUCKY_CLIENT_SECRET = secret, DUCKY_TOKEN_AUTH = auth, DUCKY_TIMEOUT = "5",
            NO_COLOR = "1" }
          local parts = { "env" }
          for _, k in ipairs(UNSET) do parts[#parts + 1] = "-u " .. k end
          for k, v in pairs(env) do parts[#parts + 1] = q(k .. "=" .. v) end
          local cmd = ("%s %s %s bin/ducky -v ping --protected </dev/null 2>%s")
            :format(table.concat(parts, " "), H.CHILD_ENV, H.LUA, q(dir .. "/stderr"))
          local out, code = H.run(cmd)
          local stderr = H.read_file(dir .. "/stderr") or ""
          assert.equals(4, code, stderr .. out)
          assert.matches("ducky: auth error", stderr, nil, true)
          local leak = find_leak({ out, stderr }, form_list(forms))
          assert.is_nil(leak, ("%s form echoed: %s"):format(name, tostring(leak)))
        end
        os.execute(H.CLEAN_ENV .. "rm -rf " .. q(dir))
      end)
    end
  end)

  -- Issue 13 item 4: the token endpoint's rate-limit headers are kept as
  -- numbers, and only when they are numbers (an echoed secret is not kept).
  it("stats().rate_limit keeps numeric values, as numbers, and nothing else (issue 13 item 4)", function()
    local id = H.new_id(PREFIX)
    local secret = H.secret(id)
    local echoed = M.header_bytes(secret) -- byte for byte on the wire
    H.fault { path = M.TOKEN_PATH, client_id = id, headers = {
      ["x-ratelimit-remaining"] = echoed, ["auth0-client-quota-limit"] = echoed,
      ["x-ratelimit-reset"] = "1700000000" } }
    local c = ducky.client(H.opts { client_id = id, client_secret = secret })
    assert(c:token())
    local rl = c:stats().rate_limit
    c:close()
    assert.equals("number", type(rl["x-ratelimit-limit"]))
    assert.equals(30, rl["x-ratelimit-limit"]) -- the stand-in's own
    assert.equals(1700000000, rl["x-ratelimit-reset"])
    assert.is_nil(rl["x-ratelimit-remaining"])
    assert.is_nil(rl["auth0-client-quota-limit"])
    for k, v in pairs(rl) do assert.equals("number", type(v), k) end
  end)

  -- Issue 13 item 5: after close() no copy of the secret is left in the heap. A
  -- child process gets the secret only through DUCKY_CLIENT_SECRET (the
  -- environment lives on the stack; no Lua string of it is made), makes a client
  -- per token_auth, calls, closes them all, collects garbage twice, then reads
  -- every readable [heap], [stack] or anonymous mapping (thread stacks) of
  -- /proc/self/maps through /proc/self/mem looking for the secret in each
  -- encoding (heap_needles). The child never holds a whole needle: each comes
  -- as two halves, and a hit is the first half followed by the second. Run over
  -- plain HTTP and over TLS. Not covered: a host that initialised libcurl
  -- itself before loading ducky (ducky then cannot choose libcurl's allocator).
  local HEAP_CHILD_CALLS = [==[
    local H = require("spec.helpers")
    local ducky = require("ducky")
    local id = os.getenv("HX_ID")
    local needles, longest = {}, 0
    for i = 1, tonumber(os.getenv("HX_N")) do
      local n = { name = os.getenv("HX_" .. i .. "_NAME"), a = os.getenv("HX_" .. i .. "_A"),
        b = os.getenv("HX_" .. i .. "_B") }
      needles[i] = n
      longest = math.max(longest, #n.a + #n.b)
    end

    local clients = {}
    do -- no H.opts (it would make the secret as a Lua string): the secret from the environment only
      for _, auth in ipairs { "json", "form", "basic" } do
        local kind = os.getenv("HX_KIND")
        local c = ducky.client { client_id = id, base_url = H.base_url(kind), token_url = H.token_url(kind),
          ca_file = H.ca_file(), audience = H.audience(), token_auth = auth, token_cache = false, retries = 0,
          timeout = 10 }
        assert(c:ping_protected())
        assert(c:request("GET", "/echo"))
        assert(c:request("POST", "/echo", { json = { a = 1 } }))
        for _, r in ipairs(c:batch({ { "GET", "/echo" }, { "GET", "/ping" } })) do assert(r.res, r.err) end
        c:invalidate()
        assert(c:ping_protected()) -- a second exchange
        clients[#clients + 1] = c
      end
    end
    if os.getenv("HX_CLOSE") == "1" then
      for _, c in ipairs(clients) do c:close() end
      clients = nil
    end
  ]==]

  local HEAP_SCAN = require("spec.support.heap_scan").SCAN
  local HEAP_CHILD = HEAP_CHILD_CALLS .. HEAP_SCAN

  -- The needles of a HEAP_CHILD run, as {name, text}: the first 16 bytes of the
  -- secret in each form it is sent in ("secret-" and the id's start: a whole
  -- copy is found, and so is one cut short, such as the first 19 of 25 bytes;
  -- the later bytes are the id's, which is no secret); the Basic credentials
  -- before encoding (form(id) ":" form(secret), and plain) around their colon;
  -- and every 16-byte window of the Basic form at 8-byte steps (any piece of 23
  -- bytes or more is found). No needle holds another's half, so that the
  -- environment, which holds the halves, matches none.
  local function heap_needles(id, secret)
    local forms = sent_forms(id, secret)
    local list, seen = {}, {}
    local function add(name, text)
      if not seen[text] then list[#list + 1], seen[text] = { name, text }, true end
    end
    for _, name in ipairs { "raw", "json", "form" } do
      add(name .. " (first 16 bytes)", forms[name]:sub(1, 16))
    end
    local form_id = sent_forms(id, id).form
    add("id:secret, form-encoded", form_id:sub(-8) .. ":" .. forms.form:sub(1, 11))
    add("id:secret", id:sub(-8) .. ":" .. secret:sub(1, 11))
    local b = forms.basic
    for at = 1, #b - 15, 8 do add(("basic (bytes %d-%d)"):format(at, at + 15), b:sub(at, at + 15)) end
    add(("basic (bytes %d-%d)"):format(#b - 15, #b), b:sub(-16))
    return list
  end

  -- A scanning child's environment runs without LeakSanitizer's exit check under
  -- the sanitizers (its own tracer crashed there after the child read hundreds
  -- of MB of its own memory, depending on the heap's layout); the suite checks
  -- leaks elsewhere.
  local function no_leak_check(env)
    if os.getenv("ASAN_OPTIONS") then env.ASAN_OPTIONS = os.getenv("ASAN_OPTIONS") .. ":detect_leaks=0" end
    return env
  end

  -- the environment of a HEAP_CHILD run: the secret, the needles in halves
  local function heap_env(id, secret, close, kind)
    local needles = heap_needles(id, secret)
    local env = { HX_ID = id, DUCKY_CLIENT_SECRET = secret, HX_N = tostring(#needles),
      HX_CLOSE = close and "1" or "0", HX_KIND = kind or "http" }
    no_leak_check(env)
    for i, nd in ipairs(needles) do
      local f = nd[2]
      local half = math.floor(#f / 2)
      env["HX_" .. i .. "_NAME"], env["HX_" .. i .. "_A"], env["HX_" .. i .. "_B"] = nd[1], f:sub(1, half),
        f:sub(half + 1)
    end
    return env
  end

  -- a secret of 40 random characters with specials (no single quote: the shell
  -- quotes with it), and fixed ones so that the four encodings differ whatever the draw
  local function heap_id(tag)
    local alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
      .. "\"\\ /+&%=?:;,!#$*()[]{}<>|~^@"
    local chars = {}
    for i = 1, 40 do
      local k = math.random(1, #alphabet + 1)
      chars[i] = k > #alphabet and "\195\169" or alphabet:sub(k, k)
    end
    return H.new_id(tag) .. "-\"\\ /+&\195\169-" .. table.concat(chars)
  end

  it("the heap scan finds the secret while the clients are open (the scan's own check)", function()
    local id = heap_id("heap-open")
    local out, code = H.run_lua(HEAP_CHILD, heap_env(id, H.secret(id), false))
    assert.matches("scanned %d+ bytes in %d+ regions", out)
    assert.equals(1, code, out)
    assert.matches("FOUND raw %(first 16 bytes%)", out)
    assert.matches("FOUND basic %(bytes %d+%-%d+%)", out)
  end)

  -- issue 13 item 5; issue 19 item 9: the stack too, pieces of the secret too, Basic included
  for _, kind in ipairs { "http", "https" } do
    it("after close() no copy or piece of the secret is left in the heap, anonymous memory or the stack ("
        .. kind .. ")", function()
      local id = heap_id("heap")
      local out, code = H.run_lua(HEAP_CHILD, heap_env(id, H.secret(id), true, kind))
      assert.matches("scanned %d+ bytes in %d+ regions", out)
      assert.equals(0, code, out)
      assert.equals(6, H.exchanges(id), out)
    end)
  end

  -- found by review: os.exit(code, true) from a log function (or a store's)
  -- closes the state in the middle of the client's call; its __gc, seeing the
  -- call under way, left the client as it was, every form of the secret in it.
  -- The child's scan runs in the finalizer of a table made before the client
  -- (finalized after it, as the state closes).
  local EXIT_CHILD = HEAP_CHILD_CALLS:match("^(.-)\n    local clients = {}") .. [==[
    local function on_close()
  ]==] .. HEAP_SCAN:gsub("collectgarbage%(%)", ""):gsub("os%.exit%(#found == 0 and 0 or 1%)",
    "io.stdout:flush()") .. [==[
    end
    SENTINEL = setmetatable({}, { __gc = on_close })
    local c = ducky.client { client_id = id, base_url = H.base_url(), token_url = H.token_url(),
      audience = H.audience(), token_cache = false, retries = 0, timeout = 10,
      log = function(ev) if ev.event == "token" then os.exit(0, true) end end }
    c:ping_protected()
    print("the log function did not end the process")
  ]==]

  it("os.exit(code, true) from a log function in the middle of a call leaves no copy of the secret",
    function()
      -- Lua 5.1's os.exit has no `close`, and LuaJIT's finalizes userdata in no set
      -- order (the scan may come first); 5.2 and later finalize in reverse order of marking
      if H.run_lua("print(_VERSION)", {}):find("Lua 5.1", 1, true) then
        return pending("Lua 5.1 and LuaJIT: no os.exit(code, true), or no finalizer order to rely on")
      end
      local id = heap_id("heap-exit")
      local out, code = H.run_lua(EXIT_CHILD, heap_env(id, H.secret(id), false))
      assert.equals(0, code, out)
      assert.matches("scanned %d+ bytes in %d+ regions, 0 found", out)
    end)

  -- The bearer token's request lines: libcurl builds a request's lines in one
  -- block of up to twice their size, and a long request (over 8 KiB or so)
  -- goes out through its 16 KiB send buffer besides; ducky's free wipes both
  -- (any block up to 64 KiB but the download buffer, whose size ducky sets
  -- apart: alloc.h). Before, only blocks up to 2 KiB were wiped, yet a real
  -- Auth0 token (700-1000 bytes) makes the lines over 1 KiB, a block of 2 KiB
  -- and more; the 20,000-byte pad found copies then. The child pads the lines
  -- with a header of HX_PAD bytes, drops the token (invalidate: the process's
  -- copy is wiped) and closes the client, then looks for "Bearer " and the
  -- token's start in its memory. The token itself also passed through Lua
  -- strings (the token endpoint's JSON, `token()`), which Lua frees as they
  -- are: the needle is the request line's form only.
  local BEARER_CHILD = [==[
    local H = require("spec.helpers")
    local ducky = require("ducky")
    local id = os.getenv("HX_ID")
    local c = ducky.client(H.opts { client_id = id, client_secret = H.secret(id), token_cache = false,
      headers = { ["X-Pad"] = string.rep("p", tonumber(os.getenv("HX_PAD"))) } })
    local tok = assert(c:token())
    local needles = { { name = "Bearer and the token's first 24 bytes", a = "Bearer " .. tok:sub(1, 8),
      b = tok:sub(9, 24) } }
    local longest = #needles[1].a + #needles[1].b
    tok = nil -- luacheck: ignore 311
    -- routes that do not echo the request (/echo's answer quotes its Authorization)
    assert(c:ping_protected())
    assert(c:request("POST", "/footprints", { json = { site = "x", year = 2026 } }))
    for _, r in ipairs(c:batch({ { "GET", "/footprints" }, { "GET", "/ping/protected" } })) do
      assert(r.res, r.err)
    end
    c:invalidate()
    c:close()
    c = nil -- luacheck: ignore 311
  ]==] .. HEAP_SCAN

  for _, pad in ipairs { 0, 1500, 20000 } do
    it(("after invalidate() and close() no request line with the bearer token is left in memory"
        .. " (lines padded by %d bytes)"):format(pad), function()
      local id = H.new_id("bearer-heap")
      local out, code = H.run_lua(BEARER_CHILD, no_leak_check { HX_ID = id, HX_PAD = tostring(pad) })
      assert.matches("scanned %d+ bytes in %d+ regions", out)
      assert.equals(0, code, out)
    end)
  end
end)
