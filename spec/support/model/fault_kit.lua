-- The fault matrix's kit (spec/support/model/fault_matrix.lua): the fault
-- builders its rows use, and the forms of a secret that specs hunt for.
local H = require("spec.helpers")
local mime = require("mime")
local socket = require("socket")

local K = {}

K.TOKEN = "/oauth/token"
K.PROTECTED = "/v3/ping/protected"
K.RETRY_NOW = { ["Retry-After"] = "0" }
local TOKEN, PROTECTED = K.TOKEN, K.PROTECTED

-- A collector: row(t) appends row t (its expect defaulted) to list.
function K.collector(list)
  return function(t)
    t.expect = t.expect or {}
    list[#list + 1] = t
  end
end

-- fault_on(path)(t): a row's setup that puts fault t on path for the row's client
local function fault_on(path)
  return function(t)
    return function(ctx)
      local f = { path = path, client_id = ctx.id }
      for k, v in pairs(t) do f[k] = v end
      H.fault(f)
    end
  end
end

-- a fault on the token endpoint for this row's client only
K.token_fault = fault_on(TOKEN)

-- a 200 token answer carrying `body` (a JSON string, or a table to encode)
function K.token_answer(body)
  return K.token_fault { status = 200, body = body }
end

-- a fault on /v3/ping/protected for requests carrying this row's token
K.api_fault = fault_on(PROTECTED)

function K.lifetime(value)
  return function(ctx) H.config(ctx.id, value) end
end

function K.http_date(t)
  return os.date("!%a, %d %b %Y %H:%M:%S GMT", t)
end

-- the row's log events named name, in order
function K.events_named(ctx, name) return H.events_named(ctx.events, name) end
function K.retry_events(ctx) return H.events_named(ctx.events, "retry") end

-- a row's check: the call took less than `seconds`
function K.took_under(seconds)
  return function(ctx, assert)
    assert.is_true(ctx.elapsed < seconds, "took " .. ctx.elapsed)
  end
end

-- a row's check: the error's retry_after is a number of at least `seconds`
function K.retry_after_at_least(seconds)
  return function(ctx, assert)
    local v = ctx.err.retry_after
    assert.is_true(type(v) == "number" and v >= seconds, tostring(v))
  end
end

-- the secret as ducky sends it: raw, JSON-escaped (without the quotes), form
-- (percent-encoded, upper-case hex, space as %20) and Basic (base64 of
-- form(client_id):form(secret))
function K.sent_forms(id, secret)
  local function form(s)
    return (s:gsub("[^%w%-%._~]", function(ch) return ("%%%02X"):format(ch:byte()) end))
  end
  local function json(s)
    return (s:gsub('[%z\1-\31"\\]', function(ch)
      if ch == '"' or ch == "\\" then return "\\" .. ch end
      return ("\\u%04x"):format(ch:byte())
    end))
  end
  return { raw = secret, json = json(secret), form = form(secret),
    basic = (mime.b64(form(id) .. ":" .. form(secret))) }
end
K.FORM_NAMES = { "raw", "json", "form", "basic" }

-- s as a header value the stand-in writes byte for byte: it encodes headers in
-- latin-1, so each byte >= 0x80 goes to it as the code point of that value
function K.header_bytes(s)
  return (s:gsub("[\128-\255]", function(ch)
    local v = ch:byte()
    return string.char(0xC0 + math.floor(v / 64), 0x80 + v % 64)
  end))
end

-- Another host, for a redirect's Location: a listener on another port that a
-- followed redirect would connect to. K.other_host(ctx, path) sets
-- ctx.redirect_to; K.other_host_done(ctx), in a row's `after`, sets
-- ctx.other_conn to that connection, if any (the call returns only after a
-- followed redirect connected: it would be in the accept queue now).
function K.other_host(ctx, path)
  ctx.listener = assert(socket.bind("127.0.0.1", 0))
  ctx.listener:settimeout(0)
  ctx.redirect_to = ("http://127.0.0.1:%d%s"):format(select(2, ctx.listener:getsockname()), path)
end

function K.other_host_done(ctx)
  ctx.other_conn = ctx.listener:accept()
  if ctx.other_conn then ctx.other_conn:close() end
  ctx.listener:close()
end

return K
