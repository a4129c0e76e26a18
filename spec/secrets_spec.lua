-- The client secret and the access tokens never leak (DESIGN.md Token rules 8,
-- README "Security notes"): every scenario of the fault matrix
-- (spec/support/fault_matrix.lua) is run again with a distinctive secret and a
-- `log` function; every error (tostring and every field, recursively), every log
-- event, tostring(client) and stats() is searched for the secret in every form it
-- takes on the wire, and for a whole access token.
local H = require("spec.helpers")
local M = require("spec.support.fault_matrix")
local mime = require("mime")

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

-- every string reachable from v: keys, values, tostring of tables with __tostring
local function strings_of(v, out, seen)
  out, seen = out or {}, seen or {}
  local t = type(v)
  if t == "string" then
    out[#out + 1] = v
  elseif t == "number" or t == "boolean" then
    out[#out + 1] = tostring(v)
  elseif t == "table" and not seen[v] then
    seen[v] = true
    local mt = getmetatable(v)
    if mt and mt.__tostring then out[#out + 1] = tostring(v) end
    for k, x in pairs(v) do
      strings_of(k, out, seen)
      strings_of(x, out, seen)
    end
  end
  return out
end

local function find_leak(texts, forms)
  for _, s in ipairs(texts) do
    for _, f in ipairs(forms) do
      if s:find(f, 1, true) then return ("%q holds %q"):format(s:sub(1, 300), f) end
    end
  end
  return nil
end

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
end)
