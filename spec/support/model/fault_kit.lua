-- The fault matrix's kit (spec/support/model/fault_matrix.lua): the fault
-- builders its rows use, and the forms of a secret that specs hunt for.
local H = require("spec.helpers")
local mime = require("mime")

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

-- a fault on the token endpoint for this row's client only
function K.token_fault(t)
  return function(ctx)
    local f = { path = TOKEN, client_id = ctx.id }
    for k, v in pairs(t) do f[k] = v end
    H.fault(f)
  end
end

-- a 200 token answer carrying `body` (a JSON string, or a table to encode)
function K.token_answer(body)
  return K.token_fault { status = 200, body = body }
end

-- a fault on /v3/ping/protected for requests carrying this row's token
function K.api_fault(t)
  return function(ctx)
    local f = { path = PROTECTED, client_id = ctx.id }
    for k, v in pairs(t) do f[k] = v end
    H.fault(f)
  end
end

function K.lifetime(value)
  return function(ctx) H.config(ctx.id, value) end
end

function K.http_date(t)
  return os.date("!%a, %d %b %Y %H:%M:%S GMT", t)
end

function K.retry_events(ctx)
  local out = {}
  for _, ev in ipairs(ctx.events) do
    if ev.event == "retry" then out[#out + 1] = ev end
  end
  return out
end
function K.events_named(ctx, name)
  local out = {}
  for _, ev in ipairs(ctx.events) do
    if ev.event == name then out[#out + 1] = ev end
  end
  return out
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

return K
