-- The random model's constants and small pure helpers
-- (spec/support/model/model.lua).
local U = {}

U.KINDS = { config = true, network = true, timeout = true, tls = true, auth = true,
  http = true, decode = true, limit = true }
U.TOKEN_FAULT_KINDS = { "decode", "http", "network", "timeout" }
U.EVENTS = { token = true, retry = true, replay_401 = true, stale_token = true,
  store_error = true }
U.SOURCES = { memory = true, exchange = true, store = true, file = true }
-- the methods the stand-in's echo answers (M.run adds LOCK, MKCOL and PURGE when
-- it routes them too; older stand-ins answer 501), and the idempotent ones
U.ROUTED = {}
U.IDEMPOTENT = { GET = true, HEAD = true, PUT = true, DELETE = true, OPTIONS = true }
U.METHODS = {
  { "GET", 20 }, { "HEAD", 6 }, { "PUT", 8 }, { "DELETE", 6 }, { "OPTIONS", 4 }, { "POST", 15 },
  { "PATCH", 6 }, { "LOCK", 2 }, { "MKCOL", 1 }, { "PURGE", 1 },
}
U.MAX_OPEN = 5
-- a raise from a call whose client a hostile action may have closed or reentered
U.HOSTILE_RAISE = { "closed", "callback", "hostile boom", "reent", "busy", "in use" }

-- the custom store's misbehaviours and the log function's (spec/support/model/world.lua)
U.STORE_MODES = {
  { "ok", 40 }, { "string", 10 }, { "true", 10 }, { "number", 10 }, { "badtable", 8 },
  { "expired", 6 }, { "raise", 10 },
}
U.LOG_MODES = { { "record", 70 }, { "raise", 10 }, { "gc", 10 }, { "reenter", 10 } }

local function utf8_valid(s) -- strict, like Python's decoder
  local i, n = 1, #s
  while i <= n do
    local c = s:byte(i)
    local need
    local lo, hi = 0x80, 0xBF
    if c < 0x80 then need = 0
    elseif c >= 0xC2 and c <= 0xDF then need = 1
    elseif c >= 0xE0 and c <= 0xEF then
      need = 2
      if c == 0xE0 then lo = 0xA0 elseif c == 0xED then hi = 0x9F end
    elseif c >= 0xF0 and c <= 0xF4 then
      need = 3
      if c == 0xF0 then lo = 0x90 elseif c == 0xF4 then hi = 0x8F end
    else
      return false
    end
    for j = 1, need do
      local b = s:byte(i + j)
      if not b then return false end
      if j == 1 and (b < lo or b > hi) then return false end
      if j > 1 and (b < 0x80 or b > 0xBF) then return false end
    end
    i = i + need + 1
  end
  return true
end

local function latin1_to_utf8(s)
  return (s:gsub("[\128-\255]", function(ch)
    local b = ch:byte()
    return string.char(0xC0 + math.floor(b / 64), 0x80 + b % 64)
  end))
end

-- the text the echo shows for a body: UTF-8 as is, anything else read as latin-1
local function echo_text(body)
  if utf8_valid(body) then return body end
  return latin1_to_utf8(body)
end

local function deep_eq(a, b)
  if type(a) ~= type(b) then return false end
  if type(a) ~= "table" then return a == b end
  for k, v in pairs(a) do
    if not deep_eq(v, b[k]) then return false end
  end
  for k in pairs(b) do
    if a[k] == nil then return false end
  end
  return true
end

local function show(v, depth)
  depth = depth or 0
  if type(v) == "string" then return string.format("%q", #v > 80 and v:sub(1, 80) .. "..." or v) end
  if type(v) ~= "table" or depth > 2 then return tostring(v) end
  local parts = {}
  for k, x in pairs(v) do parts[#parts + 1] = "[" .. show(k, 3) .. "]=" .. show(x, depth + 1) end
  table.sort(parts)
  if #parts > 12 then parts = { parts[1], parts[2], parts[3], parts[4], parts[5], parts[6], "..." } end
  return "{" .. table.concat(parts, ", ") .. "}"
end

local function matches_any(msg, patterns)
  msg = tostring(msg)
  for _, p in ipairs(patterns) do
    if msg:find(p, 1, true) then return true end
  end
  return false
end

local function finalizable(fn)
  if newproxy then -- Lua 5.1 and LuaJIT: tables take no __gc
    local u = newproxy(true)
    getmetatable(u).__gc = fn
    return u
  end
  return setmetatable({}, { __gc = fn })
end

local function is_closed(c) return tostring(c):find("(closed)", 1, true) ~= nil end

local function kindset(list)
  local s = {}
  for _, k in ipairs(list) do s[k] = true end
  return s
end

U.utf8_valid, U.echo_text, U.deep_eq, U.show = utf8_valid, echo_text, deep_eq, show
U.matches_any, U.finalizable, U.is_closed, U.kindset = matches_any, finalizable, is_closed, kindset

return U
