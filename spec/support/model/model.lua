-- Model-based random testing of ducky (issue 11). A seeded generator runs long
-- random sequences of operations over several clients (same and different
-- credentials; memory, file and custom token stores; http and https) against
-- the stand-in, with random faults, and checks the invariants after every step.
--
-- Ops (M.WEIGHTS): request (every method, odd ones too, random query, json,
-- body, headers, timeout, retries, auth = false, same-origin absolute and
-- foreign URLs), batch (0-40 items, concurrency 1-16 wandering up and down on
-- each client), ping, ping_protected, token, invalidate, stats, close, use of a
-- closed client, new and dropped (left to __gc) clients, collectgarbage, custom
-- store modes (load returns garbage, raises, or works), token faults, revoke,
-- stand-in reset, documented misuse. Modifiers (M.PERCENT): an API fault on the
-- call's own path (5xx, 401, dropped connection, delay), an options table whose
-- __index/__pairs runs a hostile action (M.HOSTILE_ACTIONS: close the client,
-- call it again, collect, raise), garbage with finalizers doing the same while
-- the call runs.
--
-- Invariants: an answer belongs to its request (the echo's method, path, query,
-- headers, body, token owner); a batch gives #list entries in order, each with
-- exactly one of res and err; res has the contract's shape, err is a
-- ducky.error of a contract kind that the request's faults allow, and without
-- a fault the call succeeds in one attempt; no silent empty answer; a closed
-- client raises "closed", nothing else raises but documented misuse (checked)
-- and what a hostile action did; a client closes only when told to; log events
-- and store entries are well formed and never hold the secret or a token; a
-- store's failing or garbage load() logs a store_error; the stand-in's token
-- exchanges per credential stay within the model's bound (see bound()).
--
--   local model = require("spec.support.model.model")
--   model.run{ seed = 42, steps = 2000 }   -- or DUCKY_SEED / DUCKY_STEPS
--
-- Environment: DUCKY_SEED (default: from the clock; printed at the start and
-- on failure), DUCKY_STEPS (default 1200), DUCKY_MODEL_LOG=FILE (every step's
-- op, flushed: after a crash its last line is the step that crashed),
-- DUCKY_MODEL_WEIGHTS="batch=40,hostile=0,h_close=0,..." (op weights,
-- PERCENT entries, h_<hostile action> weights), DUCKY_MODEL_PROFILE=1 (time
-- per op at the end). A seed replays the same ops on Lua 5.1, 5.4 and LuaJIT;
-- what the collector does meanwhile (finalizers) may differ from run to run.
local H = require("spec.helpers")
local ducky = require("ducky")
local cjson = require("cjson")
local socket = require("socket")

local M = {}

-- ---------------------------------------------------------------------------
-- A seeded generator, the same sequence on Lua 5.1, 5.4 and LuaJIT (Park-Miller:
-- the products stay below 2^53, exact in doubles and in integers).

local MOD = 2147483647

local Rng = {}
Rng.__index = Rng

function M.rng(seed)
  return setmetatable({ x = math.floor(seed) % (MOD - 1) + 1 }, Rng)
end

function Rng:float()
  self.x = (self.x * 48271) % MOD
  return (self.x - 1) / (MOD - 1)
end

function Rng:int(a, b) return a + math.floor(self:float() * (b - a + 1)) end
function Rng:chance(p) return self:float() < p end
function Rng:pick(list) return list[self:int(1, #list)] end

-- list = { { value, weight }, ... }; weights of 0 are never picked
function Rng:weighted(list)
  local total = 0
  for _, e in ipairs(list) do total = total + e[2] end
  local x = self:float() * total
  for _, e in ipairs(list) do
    if x < e[2] then return e[1] end
    x = x - e[2]
  end
  for i = #list, 1, -1 do
    if list[i][2] > 0 then return list[i][1] end
  end
end

-- ---------------------------------------------------------------------------
-- Weights. Ops are picked by weight each step; PERCENT are the chances of the
-- modifiers applied to a call.

M.WEIGHTS = {
  { "request", 30 }, { "batch", 16 }, { "ping", 3 }, { "ping_protected", 4 }, { "token", 4 },
  { "invalidate", 3 }, { "stats", 3 }, { "close", 2 }, { "use_closed", 2 }, { "new_client", 4 },
  { "drop_client", 1 }, { "gc", 4 }, { "store_mode", 3 }, { "token_fault", 3 }, { "revoke", 1 },
  { "reset", 1 }, { "misuse", 2 },
}

M.PERCENT = {
  fault = 30,      -- an API fault on the call's own path (per request, per batch item)
  hostile = 10,    -- an options table whose __index/__pairs runs an action
  finalizer = 8,   -- garbage with __gc actions made right before the call
  no_auth = 15,    -- auth = false
  custom_store = 40, file_store = 10, bad_cred = 8, https = 15, short_life = 25,
  store_lock = 50, -- a custom store with lock and unlock
  -- a check rather than a chance: 100 requires a store_error event in every step
  -- where the custom store's load returned garbage, 0 does not
  garbage_event = 100,
}

local KINDS = { config = true, network = true, timeout = true, tls = true, auth = true,
  http = true, decode = true, limit = true }
local TOKEN_FAULT_KINDS = { "decode", "http", "network", "timeout" }
local EVENTS = { token = true, retry = true, replay_401 = true, stale_token = true,
  store_error = true }
local SOURCES = { memory = true, exchange = true, store = true, file = true }
-- the methods the stand-in's echo answers (M.run adds LOCK, MKCOL and PURGE when
-- it routes them too; older stand-ins answer 501), and the idempotent ones
local ROUTED = {}
local IDEMPOTENT = { GET = true, HEAD = true, PUT = true, DELETE = true, OPTIONS = true }
local METHODS = {
  { "GET", 20 }, { "HEAD", 6 }, { "PUT", 8 }, { "DELETE", 6 }, { "OPTIONS", 4 }, { "POST", 15 },
  { "PATCH", 6 }, { "LOCK", 2 }, { "MKCOL", 1 }, { "PURGE", 1 },
}
local MAX_OPEN = 5
-- a raise from a call whose client a hostile action may have closed or reentered
local HOSTILE_RAISE = { "closed", "callback", "hostile boom", "reent", "busy", "in use" }

-- ---------------------------------------------------------------------------
-- Small pure helpers

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

-- ---------------------------------------------------------------------------
-- The world: credentials, clients, the shared custom store, the trace.

local World = {}
World.__index = World

function World:fail(fmt, ...)
  local msg = select("#", ...) > 0 and string.format(fmt, ...) or fmt
  local trace = {}
  for i = math.max(1, #self.trace - 19), #self.trace do trace[#trace + 1] = "  " .. self.trace[i] end
  local cl = self.current
  if cl then -- what the client's log saw during this step
    local evs = {}
    for _, ev in ipairs(cl.state.events) do
      evs[#evs + 1] = ev.event .. (ev.source and ("/" .. ev.source) or "")
        .. (ev.reason and ("(" .. tostring(ev.reason) .. ")") or "")
    end
    trace[#trace + 1] = string.format("  %s's log this step: %s", cl.name, table.concat(evs, " "))
  end
  error(string.format("model invariant broken (seed %s, step %d of %d): %s\n"
    .. "replay: DUCKY_SEED=%s DUCKY_STEPS=%d tools/test.sh %s spec/model_spec.lua\nlast ops:\n%s",
    ("%.0f"):format(self.seed), self.step_no, self.steps, msg, ("%.0f"):format(self.seed), self.step_no,
    H.BUILD, table.concat(trace, "\n")), 0)
end

function World:check(cond, fmt, ...)
  if not cond then self:fail(fmt, ...) end
end

-- a line of the trace (kept short: the last 20 are shown on failure)
function World:note(fmt, ...)
  local line = string.format("%d: " .. fmt, self.step_no, ...)
  self.trace[#self.trace + 1] = line
  if #self.trace > 60 then table.remove(self.trace, 1) end
  if self.logf then
    self.logf:write(line, "\n")
    self.logf:flush()
  end
end

function World:pct(name) return self.r:chance(self.percent[name] / 100) end

function World:tag()
  self.ntag = self.ntag + 1
  return string.format("s%d-%d", self.step_no, self.ntag)
end

-- A violation seen inside a callback (log, store, finalizer, metamethod):
-- raising there would be swallowed, so it is recorded and reported after the step.
function World:violation(fmt, ...)
  self.violations[#self.violations + 1] = string.format(fmt, ...)
end

-- ---- credentials

function World:new_cred(bad)
  local id = H.new_id("model")
  local cred = {
    id = id, secret = H.secret(id), good = not bad, created = socket.gettime(),
    token_auth = self.r:pick({ "json", "form", "basic" }),
    scheme = self:pct("https") and "https" or "http",
    lifetime = (not bad and self:pct("short_life")) and self.r:pick({ 3, 4, 6 }) or nil,
    -- what the exchange bound counts (see bound)
    invalidations = 0, faults_401 = 0, token_faults = 0, timeouts = 0, revokes = 0, base = 0,
    risk = false, -- a token fault may be pending at the stand-in
    revoked_ever = false,
  }
  if bad then cred.secret = "wrong-" .. cred.secret end
  if cred.lifetime then H.config(id, cred.lifetime) end
  self.creds[#self.creds + 1] = cred
  return cred
end

-- The most token exchanges the stand-in may have counted for cred: one for the
-- first token, one per token life, and one per thing that drops or loses a token
-- (invalidate, a 401 answer, an injected token fault, a call that timed out,
-- perhaps while the token answer was on its way). A revocation counts three: the
-- revoked token may come back once from the custom store and once from the file
-- store (clients of one credential with different stores share the memory cache
-- but not the stores), each time answered 401 and replaced.
local function bound(cred)
  if not cred.good then return 0 end
  local life = 0
  if cred.lifetime then
    life = math.floor((socket.gettime() - cred.created) / (cred.lifetime / 2)) + 1
  end
  return 1 + life + cred.invalidations + cred.faults_401 + cred.token_faults + cred.timeouts
    + 3 * cred.revokes
end

-- ---- the custom token store: one table shared by every client that has one
-- (like a Redis), each client with its own misbehaviour mode.

local STORE_MODES = {
  { "ok", 40 }, { "string", 10 }, { "true", 10 }, { "number", 10 }, { "badtable", 8 },
  { "expired", 6 }, { "raise", 10 },
}

local GARBAGE = {
  string = function() return "not an entry" end,
  ["true"] = function() return true end,
  number = function() return 42 end,
  badtable = function() return { access_token = 42, expires_at = "soon", token_type = {} } end,
  expired = function() return { access_token = "tok_expired", token_type = "Bearer",
    expires_at = os.time() - 100, expires_in = 3600 } end,
}

function World:make_store(state)
  local data, w = self.store_data, self
  local function check_key(key)
    if type(key) ~= "string" or not key:match("^%x+$") then
      w:violation("token_cache got a key that is not hex: %s", show(key))
    end
  end
  local store = {
    load = function(key)
      check_key(key)
      state.loads[#state.loads + 1] = state.store_mode
      if state.store_mode == "raise" then error("store boom") end
      if GARBAGE[state.store_mode] then return GARBAGE[state.store_mode]() end
      return data[key]
    end,
    store = function(key, entry)
      check_key(key)
      if entry ~= nil then
        if type(entry) ~= "table" or type(entry.access_token) ~= "string"
          or not entry.access_token:match("^tok_%x+$") or entry.token_type ~= "Bearer"
          or type(entry.expires_at) ~= "number" or type(entry.expires_in) ~= "number" then
          w:violation("token_cache.store got a malformed entry: %s", show(entry))
        end
        for _, v in pairs(type(entry) == "table" and entry or {}) do
          if type(v) == "string" and v:find(state.secret, 1, true) then
            w:violation("token_cache.store got the client secret")
          end
        end
      end
      data[key] = entry
    end,
  }
  if self:pct("store_lock") then
    store.lock = function() return true end
    store.unlock = function() end
  end
  return store
end

-- ---- clients

local LOG_MODES = { { "record", 70 }, { "raise", 10 }, { "gc", 10 }, { "reenter", 10 } }

function World:log_fn(state)
  local w = self
  return function(ev)
    if type(ev) ~= "table" or not EVENTS[ev.event] then
      w:violation("log got an unknown event: %s", show(ev))
      return
    end
    state.events[#state.events + 1] = ev
    for k, v in pairs(ev) do
      if type(v) == "string" and (v:find(state.secret, 1, true) or v:find("tok_", 1, true)) then
        w:violation("log event field %s holds the secret or a token: %s", tostring(k), v)
      end
    end
    if ev.event == "token" and (not SOURCES[ev.source] or type(ev.seconds_left) ~= "number"
      or type(ev.fingerprint) ~= "string" or not ev.fingerprint:match("^%x+$")
      or #ev.fingerprint ~= 12) then
      w:violation("malformed token event: %s", show(ev))
    end
    local mode = state.log_mode
    if mode == "raise" then
      error("log boom")
    elseif mode == "gc" then
      collectgarbage("step")
    elseif mode == "reenter" and state.box.c then
      local ok, err = pcall(state.box.c.stats, state.box.c)
      if ok or not tostring(err):find("callbacks", 1, true) then
        w:violation("a client method inside the client's own log did not raise: %s", tostring(err))
      end
    end
  end
end

function World:new_client(cred)
  if not cred then
    local good = {}
    for _, c in ipairs(self.creds) do
      if c.good then good[#good + 1] = c end
    end
    if self:pct("bad_cred") then
      cred = self:new_cred(true)
    elseif #good == 0 or self.r:chance(0.35) then
      cred = self:new_cred(false)
    else
      cred = self.r:pick(good)
    end
  end
  self.nclient = self.nclient + 1
  -- what callbacks see: never the client itself, so a dropped client can be collected
  local state = { events = {}, loads = {}, secret = cred.secret, box = setmetatable({}, { __mode = "v" }),
    log_mode = self.r:weighted(LOG_MODES), store_mode = self.r:weighted(STORE_MODES) }
  local cl = { name = "c" .. self.nclient, cred = cred, state = state, conc = self.r:int(1, 4),
    closed = false, store = "memory" }
  local token_cache = false
  if self:pct("custom_store") then
    token_cache = self:make_store(state)
    cl.store = "custom"
  elseif self:pct("file_store") then
    token_cache = nil
    cl.store = "file"
  end
  local o = {
    client_id = cred.id, client_secret = cred.secret, audience = H.audience(),
    base_url = H.base_url(cred.scheme), token_url = H.token_url(cred.scheme),
    token_auth = cred.token_auth, token_cache = token_cache,
    ca_file = cred.scheme == "https" and H.ca_file() or nil,
    retries = self.r:int(0, 1), timeout = self.r:pick({ 5, 5, 10, 3 }),
    max_exchanges_per_hour = 1000000, log = self:log_fn(state),
  }
  cl.opts = o
  cl.c = ducky.client(o)
  state.box.c = cl.c
  self.clients[#self.clients + 1] = cl
  self:note("new client %s cred=%s%s store=%s/%s log=%s auth=%s %s%s", cl.name, cred.id,
    cred.good and "" or "(bad)", cl.store, state.store_mode, state.log_mode, cred.token_auth,
    cred.scheme, cred.lifetime and (" life=" .. cred.lifetime) or "")
  return cl
end

function World:open_clients()
  local open = {}
  for _, cl in ipairs(self.clients) do
    if not cl.closed then open[#open + 1] = cl end
  end
  return open
end

function World:pick_client()
  local open = self:open_clients()
  if #open == 0 or (#open < MAX_OPEN and self.r:chance(0.03)) then
    self.current = self:new_client()
  else
    self.current = self.r:pick(open)
  end
  return self.current
end

-- ---------------------------------------------------------------------------
-- Generators

local SAFE = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
local QCHARS = SAFE .. " -_.~!*'();:@&=+$,/?#[]%\"<>\\^`{|}"
local HCHARS = SAFE .. "-_.,;=/:()[]{}?!@#$%&*+"
local UTF8 = { "é", "ü", "日本", "€", "ß", "ça", "\240\159\166\134" }
local QKEYS = { "a", "b", "year", "q_1", "x-y", "k e y", "a&b", "c=d", "%", "+", "ü", "k\0z", "list" }

function World:chars(set, n)
  local t = {}
  for i = 1, n do
    local j = self.r:int(1, #set)
    t[i] = set:sub(j, j)
  end
  return table.concat(t)
end

function World:text()
  local r = self.r:float()
  if r < 0.6 then return self:chars(QCHARS, self.r:int(0, 12)) end
  if r < 0.9 then return self.r:pick(UTF8) .. self:chars(SAFE, self.r:int(0, 4)) end
  return "nul\0" .. self:chars(SAFE, 2)
end

function World:scalar()
  local r = self.r:float()
  if r < 0.45 then return self:text() end
  if r < 0.7 then return self.r:int(-1000000, 1000000) end
  if r < 0.85 then return self.r:int(-400, 400) / 4 end
  return self.r:chance(0.5)
end

-- a query table and the args the echo must show for it
function World:query()
  local q, expect = {}, {}
  for _ = 1, self.r:int(0, 4) do
    local k = self.r:pick(QKEYS)
    if q[k] == nil then
      local v
      local shown = {}
      if self.r:chance(0.25) then
        v = {}
        for j = 1, self.r:int(0, 3) do
          v[j] = self:scalar()
          shown[j] = tostring(v[j])
        end
      else
        v = self:scalar()
        shown[1] = tostring(v)
      end
      q[k] = v
      if #shown > 0 then expect[k] = shown end
    end
  end
  return q, expect
end

function World:json_value(depth)
  local r = self.r:float()
  if depth > 2 or r < 0.5 then
    local s = self.r:float()
    if s < 0.1 then return cjson.null end
    if s < 0.2 then return self.r:chance(0.5) end
    if s < 0.55 then return self:text() end
    if s < 0.8 then return self.r:int(-100000, 100000) end
    return self.r:int(-400, 400) / 4
  end
  local t = {}
  if r < 0.75 then
    for i = 1, self.r:int(1, 4) do t[i] = self:json_value(depth + 1) end
  else
    for i = 1, self.r:int(0, 4) do t["k" .. i .. self:chars(SAFE, 2)] = self:json_value(depth + 1) end
  end
  return t
end

function World:body()
  local r = self.r:float()
  local n = self.r:chance(0.1) and self.r:int(1000, 20000) or self.r:int(0, 300)
  if r < 0.3 then
    local t = {}
    for i = 1, n do t[i] = string.char(self.r:int(0, 255)) end
    return table.concat(t)
  end
  if r < 0.7 then return self:chars(QCHARS .. "\n\t", n) end
  local t = {}
  for i = 1, math.ceil(n / 4) do t[i] = self.r:pick(UTF8) end
  return table.concat(t)
end

function World:headers(expect)
  local h = {}
  for i = 1, self.r:int(1, 4) do
    local name = "X-M-" .. i .. self:chars(SAFE, self.r:int(0, 6))
    local value
    if self.r:chance(0.15) then
      value = self.r:int(0, 99999)
    else
      value = self:chars(SAFE, 1) .. self:chars(HCHARS .. "  ", self.r:int(0, 20)) .. self:chars(SAFE, 1)
    end
    h[name] = value
    expect[name:lower()] = tostring(value)
  end
  return h
end

-- One call: method, path, options, and what the answer must look like.
function World:gen_request(cl, in_batch)
  local rq = { cl = cl, cred = cl.cred, tag = self:tag(), expect_headers = {}, path_args = {} }
  rq.auth = not self:pct("no_auth")
  local m = self.r:weighted(METHODS)
  rq.method = m
  rq.sent_method = self.r:chance(0.1) and m:lower() or m
  local r = self.r:float()
  local base = H.base_url(cl.cred.scheme)
  if r < 0.86 then
    rq.route = "echo"
    rq.fault_path = "/v3/echo/" .. rq.tag
    local style = self.r:int(1, 4)
    if style == 1 then rq.path = "/echo/" .. rq.tag
    elseif style == 2 then rq.path = "echo/" .. rq.tag
    elseif style == 3 then rq.path = base .. "/echo/" .. rq.tag
    else
      rq.path = "/echo/" .. rq.tag .. "?pq=" .. rq.tag
      rq.path_args.pq = { rq.tag }
    end
    if not rq.auth then -- the echo wants a token unless public=1
      rq.path = rq.path .. (rq.path:find("?", 1, true) and "&" or "?") .. "public=1"
      rq.path_args.public = { "1" }
    end
  elseif r < 0.93 then
    rq.route = "status"
    rq.code = self.r:pick({ 200, 201, 202, 204, 400, 403, 404, 409, 418, 422 })
    rq.path = "/status/" .. rq.code .. "?public=1"
    rq.path_args.public = { "1" }
  elseif r < 0.97 then
    rq.route = "foreign"
    rq.path = self.r:pick({ "http://elsewhere.invalid/v3/echo", "https://127.0.0.1:1/v3/echo",
      base:gsub("^http", "ftp") .. "/echo" })
  else
    rq.route = "ping"
    rq.path = self.r:pick({ "/ping", "ping" })
  end
  rq.timeout = cl.opts.timeout
  rq.retries = cl.opts.retries
  if rq.auth and self.r:chance(0.15) then return rq end -- no options at all
  local o = {}
  if self.r:chance(0.5) then o.query, rq.query_args = self:query() end
  local b = self.r:float()
  if b < 0.2 then
    o.json = self:json_value(0)
    rq.json, rq.has_json = o.json, true
    rq.ctype = "application/json"
  elseif b < 0.4 then
    o.body = self:body()
    rq.body = o.body
    rq.ctype = "application/octet-stream"
  end
  if self.r:chance(0.3) then
    o.headers = self:headers(rq.expect_headers)
    if rq.ctype and self.r:chance(0.3) then
      o.headers["Content-Type"] = "text/plain"
      rq.ctype = "text/plain"
    end
  end
  if self.r:chance(0.3) then
    o.timeout = self.r:chance(0.85) and self.r:pick({ 1, 2, 5, 8 }) or self.r:pick({ 0.05, 0.1, 0.2 })
    rq.timeout = o.timeout
  end
  if self.r:chance(0.3) then
    o.retries = self.r:int(0, 2)
    rq.retries = o.retries
  end
  if not rq.auth then
    o.auth = false
  elseif self.r:chance(0.05) then
    o.auth = true
  end
  rq.opts = o
  rq.in_batch = in_batch
  return rq
end

-- A fault at the stand-in for this request's own path (the path is unique).
local API_FAULTS = { { "5xx", 30 }, { "401", 25 }, { "drop", 20 }, { "delay", 25 } }

function World:api_fault(rq, delay_budget)
  if rq.route ~= "echo" or not ROUTED[rq.method] or not self:pct("fault") then return 0 end
  if rq.auth and not rq.cred.good then return 0 end -- it would never be consumed
  local f = { path = rq.fault_path, times = 1 }
  if rq.auth then f.client_id = rq.cred.id end
  local kind = self.r:weighted(API_FAULTS)
  local spent = 0
  if kind == "5xx" then
    f.status = self.r:pick({ 500, 502, 503, 504 })
    f.headers = { ["Retry-After"] = "0" }
    f.times = self.r:int(1, 2)
  elseif kind == "401" then
    f.status = 401
    f.body = { error = "invalid_token", error_description = "model fault" }
    f.times = self.r:chance(0.75) and 1 or 2
    if rq.auth then rq.cred.faults_401 = rq.cred.faults_401 + f.times end
  elseif kind == "drop" then
    f.drop = self.r:pick({ "before_headers", "mid_body" })
  else
    f.delay = self.r:pick({ 0.05, 0.1, 0.2, 0.3 })
    if delay_budget and f.delay > delay_budget then return 0 end
    spent = f.delay
  end
  H.fault(f)
  rq.fault = f
  rq.fault_kind = kind == "drop" and f.drop or kind
  return spent
end

-- ---------------------------------------------------------------------------
-- Hostile callbacks: option tables whose metamethods run code, finalizers.

M.HOSTILE_ACTIONS = {
  { "close", 40 }, { "close_other", 5 }, { "request", 10 }, { "ping", 5 }, { "batch", 10 },
  { "batch_empty", 8 }, { "invalidate", 5 }, { "stats", 4 }, { "token", 4 }, { "gc", 5 },
  { "error", 4 },
}

-- A function doing one hostile thing to cl (or another client); what it may
-- have done is recorded in ctx (may_close: clients that may be closed now).
function World:hostile_action(cl, ctx, name, in_finalizer)
  local w = self
  local c = cl.c
  local tag = self:tag()
  local conc = self.r:int(1, 16)
  local other
  if name == "close_other" then
    local open = self:open_clients()
    other = self.r:pick(open)
    ctx.may_close[other] = true
  elseif name == "close" then
    ctx.may_close[cl] = true
  elseif name == "invalidate" then
    cl.cred.invalidations = cl.cred.invalidations + 1
  elseif name == "error" and not in_finalizer then
    ctx.may_raise_boom = true -- a finalizer's error never reaches the call
  end
  ctx.actions[#ctx.actions + 1] = name
  local function nested(what, ok, res, err)
    -- a nested call during the outer one's argument reading: a correct answer,
    -- an error value, or a clear raise
    if not ok then
      if not matches_any(res, HOSTILE_RAISE) then
        w:violation("nested %s raised an unclear error: %s", what, tostring(res))
      end
      return
    end
    if res == nil and not ducky.is_error(err) then
      w:violation("nested %s gave neither an answer nor a ducky.error", what)
    elseif res == nil and err.kind == "timeout" then -- perhaps while a token was on its way
      cl.cred.timeouts = cl.cred.timeouts + 1
    end
  end
  return function()
    if name == "close" then
      pcall(c.close, c)
    elseif name == "close_other" then
      pcall(other.c.close, other.c)
    elseif name == "request" then
      local ok, res, err = pcall(c.request, c, "GET", "/echo/" .. tag, { query = { n = tag } })
      nested("request", ok, res, err)
      if ok and res and res.json and res.json.path ~= "/v3/echo/" .. tag then
        w:violation("nested request got the answer of %s", tostring(res.json.path))
      end
    elseif name == "ping" then
      nested("ping", pcall(c.ping, c))
    elseif name == "batch" then
      local ok, out = pcall(c.batch, c, { { "GET", "/echo/" .. tag }, { "GET", "/echo/" .. tag .. "b" } },
        { concurrency = conc })
      if not ok then nested("batch", ok, out) elseif type(out) ~= "table" or #out ~= 2 then
        w:violation("nested batch returned %s", show(out))
      else
        for _, r in ipairs(out) do nested("batch item", true, r.res, r.err) end
      end
    elseif name == "batch_empty" then
      local ok, out = pcall(c.batch, c, {})
      if not ok then nested("batch", ok, out) end
    elseif name == "invalidate" then
      local ok, err = pcall(c.invalidate, c)
      if not ok then nested("invalidate", ok, err) end
    elseif name == "stats" then
      local ok, err = pcall(c.stats, c)
      if not ok then nested("stats", ok, err) end
    elseif name == "token" then
      nested("token", pcall(c.token, c))
    elseif name == "gc" then
      collectgarbage()
    elseif name == "error" then
      error("hostile boom")
    end
  end
end

-- An options table (real's fields behind __index, nothing raw) that runs
-- action the first time ducky reads `key` (or iterates it with pairs).
local function hostile_table(real, key, action)
  local fired = false
  local function fire()
    if not fired then
      fired = true
      action()
    end
  end
  return setmetatable({}, {
    __index = function(_, k)
      if k == key then fire() end
      return real[k]
    end,
    __pairs = function()
      fire()
      return next, real, nil
    end,
  })
end

local REQUEST_KEYS = { "timeout", "retries", "auth", "query", "json", "body", "headers" }

local function new_ctx()
  return { may_close = {}, actions = {} }
end

-- Garbage whose finalizers act on cl, made right before the call, with the
-- collector made eager so they run while the call reads its arguments, sends,
-- or builds its answer (how eager is random: that moves the moment).
function World:arm_finalizers(cl, ctx)
  -- pause 0: every allocation steps the collector (on 5.4, every 2^k bytes),
  -- from the end of the next cycle on
  ctx.gc = { collectgarbage("setpause", 0), collectgarbage("setstepmul", self.r:pick({ 100, 200, 1000 })) }
  if _VERSION == "Lua 5.4" then ctx.gc.mode = collectgarbage("incremental", 0, 0, self.r:int(1, 8)) end
  collectgarbage()
  local n = self.r:int(1, 4)
  for _ = 1, n do
    local action = self:hostile_action(cl, ctx, self.r:weighted(self.hostile), true)
    finalizable(function() pcall(action) end)
  end
  return n
end

local function disarm(ctx)
  if ctx.gc then
    collectgarbage("setpause", ctx.gc[1])
    collectgarbage("setstepmul", ctx.gc[2])
    if ctx.gc.mode then
      collectgarbage("incremental", 0, 0, 13) -- 5.4's default step size
      collectgarbage(ctx.gc.mode)
    end
    collectgarbage()
    collectgarbage() -- every pending finalizer has run now
    ctx.gc = nil
  end
end

-- ---------------------------------------------------------------------------
-- Expectations and checks of one answer

local function kindset(list)
  local s = {}
  for _, k in ipairs(list) do s[k] = true end
  return s
end

-- What may come back for rq: ok (success allowed), kinds (error kinds allowed),
-- status (the status an http/auth error must carry, when known). In a batch,
-- batch_timeout bounds every item, and an item's own timeout counts from the
-- start of the batch: one that ran for elapsed seconds may have timed out any
-- item whose timeout is shorter.
local function expect(rq, batch_timeout, elapsed)
  local e = { ok = true, kinds = {}, must_fail = false }
  local timeout = rq.timeout
  if batch_timeout and batch_timeout < timeout then timeout = batch_timeout end
  if elapsed and timeout <= elapsed + 0.5 then e.kinds.timeout = true end
  local function fail_only(kind, status)
    e.must_fail = true
    e.kinds[kind] = true
    if status then e.status, e.status_kind = status, kind end
  end
  if rq.route == "foreign" then
    fail_only("config")
    return e
  end
  local needs_token = rq.auth
  if needs_token and not rq.cred.good then
    fail_only("auth")
  elseif needs_token and rq.cred.risk then
    for _, k in ipairs(TOKEN_FAULT_KINDS) do e.kinds[k] = true end
  end
  -- a revoked token may linger in a store another client of the credential did
  -- not drop it from: the replay can get it again, and a second 401
  if needs_token and rq.cred.revoked_ever then e.kinds.auth = true end
  if timeout < 1 then e.kinds.timeout = true end
  if not ROUTED[rq.method] then
    fail_only("http", 501)
  elseif rq.route == "status" and rq.code >= 300 then
    fail_only("http", rq.code)
  elseif rq.fault then
    local f, idem = rq.fault, IDEMPOTENT[rq.method]
    local k = rq.fault_kind
    if k == "5xx" then
      e.kinds.http = true
      e.ok = idem and rq.retries >= f.times
    elseif k == "401" then
      e.kinds.auth = true
      e.ok = rq.auth and f.times == 1
    elseif k == "before_headers" then -- libcurl itself resends on a reused connection
      e.kinds.network = true
      e.ok = idem
    elseif k == "mid_body" then
      e.kinds.network = true
      e.ok = (idem and rq.retries >= 1) or rq.method == "HEAD"
    elseif k == "delay" then
      if timeout <= f.delay then
        e.kinds.timeout = true
        e.ok = false
      elseif timeout < f.delay + 1 then
        e.kinds.timeout = true
      end
    end
  end
  if e.must_fail then e.ok = false end
  return e
end

function World:check_error(rq, err, e, where)
  self:check(ducky.is_error(err), "%s: err is not a ducky.error: %s", where, show(err))
  self:check(KINDS[err.kind], "%s: err.kind %s is not a contract kind", where, tostring(err.kind))
  self:check(type(err.message) == "string", "%s: err.message is %s", where, type(err.message))
  local line = tostring(err)
  self:check(type(line) == "string" and not line:find(rq.cred.secret, 1, true),
    "%s: tostring(err) holds the secret", where)
  if err.kind == "timeout" then rq.cred.timeouts = rq.cred.timeouts + 1 end
  self:check(e.kinds[err.kind], "%s: unexpected %s error: %s", where, err.kind, line)
  if e.status and err.kind == e.status_kind and not rq.cred.risk then
    self:check(err.status == e.status, "%s: expected status %d, got %s (%s)", where, e.status,
      tostring(err.status), line)
  end
end

function World:check_echo(rq, res, where)
  local j = res.json
  self:check(type(j) == "table", "%s: the echo's body is not JSON: %s", where, show(res.body))
  self:check(j.method == rq.method, "%s: sent %s, the echo saw %s", where, rq.method, tostring(j.method))
  self:check(j.path == "/v3/echo/" .. rq.tag, "%s: sent /v3/echo/%s, the echo saw %s", where, rq.tag,
    tostring(j.path))
  local args = {}
  for k, v in pairs(rq.query_args or {}) do args[k] = v end
  for k, v in pairs(rq.path_args) do args[k] = v end
  self:check(deep_eq(j.args, args), "%s: query args %s, expected %s (query string %s)", where,
    show(j.args), show(args), show(j.query))
  local h = j.headers or {}
  for name, value in pairs(rq.expect_headers) do
    self:check(h[name] == value, "%s: header %s is %s, expected %s", where, name, show(h[name]), show(value))
  end
  self:check(h.expect == nil, "%s: an Expect header was sent", where)
  if rq.auth then
    self:check(type(h.authorization) == "string" and h.authorization:match("^Bearer tok_%x+$"),
      "%s: no bearer token: %s", where, show(h.authorization))
    self:check(j.client_id == rq.cred.id, "%s: the token belongs to %s, not to %s", where,
      tostring(j.client_id), rq.cred.id)
  else
    self:check(h.authorization == nil, "%s: auth=false sent %s", where, show(h.authorization))
  end
  if rq.ctype then
    self:check(h["content-type"] == rq.ctype, "%s: content-type %s, expected %s", where,
      show(h["content-type"]), rq.ctype)
  end
  if rq.has_json then
    self:check(deep_eq(j.json, rq.json), "%s: json %s came back as %s", where, show(rq.json), show(j.json))
  elseif rq.body then
    self:check(j.body == echo_text(rq.body), "%s: a body of %d bytes came back as %s", where, #rq.body,
      show(j.body))
  end
end

-- rq's outcome: ok = pcall's first value, then res, err as returned.
function World:check_answer(rq, e, ctx, ok, res, err, where)
  if not ok then
    local msg = tostring(res)
    if matches_any(msg, { "closed" }) and (ctx.may_close[rq.cl] or rq.cl.closed) then return end
    if ctx.may_raise_boom and msg:find("hostile boom", 1, true) then return end
    if #ctx.actions > 0 and matches_any(msg, HOSTILE_RAISE) then return end
    self:fail("%s raised: %s", where, msg)
  end
  self:check(rq.cl.closed ~= true, "%s on a closed client did not raise", where)
  if res == nil then
    self:check(err ~= nil, "%s: neither res nor err", where)
    self:check_error(rq, err, e, where)
    return
  end
  self:check(err == nil, "%s: both res and err", where)
  self:check(type(res) == "table", "%s: res is a %s", where, type(res))
  self:check(e.ok, "%s: expected an error (%s), got status %s", where, show(e.kinds), tostring(res.status))
  self:check(type(res.status) == "number" and res.status >= 200 and res.status < 300,
    "%s: res.status %s", where, tostring(res.status))
  self:check(type(res.headers) == "table", "%s: res.headers is %s", where, type(res.headers))
  for k, v in pairs(res.headers) do
    self:check(type(k) == "string" and k == k:lower() and type(v) == "string",
      "%s: header %s=%s", where, show(k), show(v))
  end
  self:check(type(res.body) == "string", "%s: res.body is %s", where, type(res.body))
  self:check(next(res.headers) ~= nil or res.body ~= "", "%s: a silent empty answer: status %s, no headers, "
    .. "no body", where, tostring(res.status))
  self:check(not res.body:find(rq.cred.secret, 1, true), "%s: the body holds the secret", where)
  self:check(type(res.attempts) == "number" and res.attempts >= 1, "%s: attempts %s", where,
    tostring(res.attempts))
  local max_attempts = (rq.retries + 1) * (rq.auth and 2 or 1)
  self:check(res.attempts <= max_attempts, "%s: %d attempts, at most %d expected", where, res.attempts,
    max_attempts)
  self:check(res.headers["x-request-id"] ~= nil, "%s: %d answer without x-request-id (headers %s)",
    where, res.status, show(res.headers))
  if rq.route == "echo" then
    self:check(res.status == 200, "%s: echo answered %d", where, res.status)
    if rq.method == "HEAD" then
      self:check(res.body == "" and tonumber(res.headers["content-length"] or "0") > 0,
        "%s: HEAD answer: body %d bytes, content-length %s", where, #res.body,
        tostring(res.headers["content-length"]))
    else
      self:check(#res.body > 0, "%s: a 200 from the echo with an empty body (headers %s)", where,
        show(res.headers))
      self:check_echo(rq, res, where)
    end
    if not rq.fault and not rq.cred.revoked_ever and not rq.cred.risk then
      self:check(res.attempts == 1, "%s: %d attempts without any fault", where, res.attempts)
    end
  elseif rq.route == "status" then
    self:check(res.status == rq.code, "%s: status %d, expected %d", where, res.status, rq.code)
  elseif rq.route == "ping" then
    self:check(rq.method == "HEAD" or (res.json and res.json.message == "pong"),
      "%s: ping answered %s", where, show(res.body))
  end
end

-- ---------------------------------------------------------------------------
-- Ops

local function describe_rq(rq)
  local o = rq.opts or {}
  return string.format("%s %s%s%s%s%s%s%s", rq.sent_method, rq.path, o.query and " q" or "",
    rq.has_json and " json" or (rq.body and (" body" .. #rq.body) or ""),
    o.headers and " h" or "", o.timeout and (" t=" .. o.timeout) or "",
    rq.auth and "" or " noauth", rq.fault and (" fault=" .. rq.fault_kind .. "x" .. rq.fault.times) or "")
end

-- cl.closed is the model's belief; tostring tells the truth. A client may only
-- have closed by itself where a hostile action may have closed it.
function World:sync_closed(ctx)
  for _, cl in ipairs(self.clients) do
    local actual = is_closed(cl.c)
    if actual ~= cl.closed then
      self:check(actual and ctx and ctx.may_close[cl],
        "%s is %s but should be %s", cl.name, actual and "closed" or "open", cl.closed and "closed" or "open")
      cl.closed = true
      self:note("  %s closed by a hostile action", cl.name)
    end
  end
end

function World:options_for(rq, ctx)
  if not self:pct("hostile") then return rq.opts end
  local action = self.r:weighted(self.hostile)
  local key = self.r:pick(REQUEST_KEYS)
  ctx.hostile = action .. "@" .. key
  return hostile_table(rq.opts or {}, key, self:hostile_action(rq.cl, ctx, action))
end

function World:op_request()
  local cl = self:pick_client()
  local rq = self:gen_request(cl, false)
  self:api_fault(rq)
  local ctx = new_ctx()
  local opts = self:options_for(rq, ctx)
  local fin = self:pct("finalizer") and self:arm_finalizers(cl, ctx)
  self:note("%s request %s%s%s", cl.name, describe_rq(rq), ctx.hostile and (" hostile=" .. ctx.hostile) or "",
    fin and (" finalizers=" .. table.concat(ctx.actions, ",")) or "")
  local ok, res, err = pcall(cl.c.request, cl.c, rq.sent_method, rq.path, opts)
  disarm(ctx)
  self:check_answer(rq, expect(rq), ctx, ok, res, err, cl.name .. " request " .. rq.tag)
  return ctx
end

local BATCH_SIZES = { { 0, 5 }, { 1, 20 }, { 2, 40 }, { 3, 25 } }

function World:op_batch()
  local cl = self:pick_client()
  local size = self.r:weighted(BATCH_SIZES)
  local n = size == 0 and 0 or size == 1 and self.r:int(1, 5) or size == 2 and self.r:int(6, 20)
    or self.r:int(21, 40)
  -- concurrency wanders up and down on each client: the pool grows and shrinks
  if self.r:chance(0.2) then
    cl.conc = self.r:int(1, 16)
  else
    cl.conc = math.max(1, math.min(16, cl.conc + self.r:int(-4, 6)))
  end
  local list, rqs, budget = {}, {}, 0.5
  for i = 1, n do
    local rq = self:gen_request(cl, true)
    budget = budget - self:api_fault(rq, budget)
    rqs[i] = rq
    list[i] = { rq.sent_method, rq.path, rq.opts }
  end
  local bopts, btimeout = nil, cl.opts.timeout
  local r = self.r:float()
  if r < 0.8 then
    bopts = { concurrency = cl.conc }
  elseif r < 0.9 then
    bopts = { concurrency = cl.conc, timeout = self.r:pick({ 2, 5 }) }
    btimeout = bopts.timeout
  end
  local ctx = new_ctx()
  if self:pct("hostile") then
    local action = self.r:weighted(self.hostile)
    local fn = self:hostile_action(cl, ctx, action)
    if n > 0 and (bopts == nil or self.r:chance(0.6)) then
      local i = self.r:int(1, n)
      local key = self.r:pick(REQUEST_KEYS)
      list[i][3] = hostile_table(rqs[i].opts or {}, key, fn)
      ctx.hostile = string.format("%s@item%d.%s", action, i, key)
    else
      bopts = bopts or { concurrency = cl.conc }
      local key = self.r:pick({ "concurrency", "timeout" })
      bopts = hostile_table(bopts, key, fn)
      ctx.hostile = action .. "@" .. key
    end
  end
  local fin = self:pct("finalizer") and self:arm_finalizers(cl, ctx)
  local nfault = 0
  for _, rq in ipairs(rqs) do if rq.fault then nfault = nfault + 1 end end
  self:note("%s batch n=%d conc=%s t=%s faults=%d%s%s", cl.name, n, bopts and tostring(cl.conc) or "default",
    tostring(btimeout), nfault, ctx.hostile and (" hostile=" .. ctx.hostile) or "",
    fin and (" finalizers=" .. table.concat(ctx.actions, ",")) or "")
  local t0 = socket.gettime()
  local ok, out = pcall(cl.c.batch, cl.c, list, bopts)
  local elapsed = socket.gettime() - t0
  disarm(ctx)
  local where = cl.name .. " batch"
  if not ok then
    local msg = tostring(out)
    if matches_any(msg, { "closed" }) and (ctx.may_close[cl] or cl.closed) then return ctx end
    if ctx.may_raise_boom and msg:find("hostile boom", 1, true) then return ctx end
    if #ctx.actions > 0 and matches_any(msg, HOSTILE_RAISE) then return ctx end
    self:fail("%s raised: %s", where, msg)
  end
  self:check(type(out) == "table", "%s returned %s", where, type(out))
  self:check(#out == n, "%s of %d returned %d entries", where, n, #out)
  for i = 1, n do
    local entry = out[i]
    local w = string.format("%s item %d/%d (%s)", where, i, n, describe_rq(rqs[i]))
    self:check(type(entry) == "table", "%s: entry is %s", w, type(entry))
    self:check((entry.res == nil) ~= (entry.err == nil), "%s: res %s and err %s", w, show(entry.res),
      show(entry.err))
    local e = expect(rqs[i], btimeout, elapsed)
    if rqs[i].fault_kind == "401" then e.kinds.auth = true end -- one refresh per batch
    self:check_answer(rqs[i], e, ctx, true, entry.res, entry.err, w)
  end
  return ctx
end

function World:op_ping()
  local cl = self:pick_client()
  self:note("%s ping", cl.name)
  local res, err = cl.c:ping()
  self:check(res and res.status == 200 and res.json and res.json.message == "pong",
    "%s ping: %s %s", cl.name, show(res), tostring(err))
end

function World:op_ping_protected()
  local cl = self:pick_client()
  self:note("%s ping_protected", cl.name)
  local rq = { cl = cl, cred = cl.cred, route = "ping", method = "GET", auth = true,
    timeout = cl.opts.timeout, retries = cl.opts.retries, expect_headers = {} }
  local e = expect(rq)
  e.ok = e.ok and cl.cred.good
  if not cl.cred.good then e.kinds.auth = true end
  local res, err = cl.c:ping_protected()
  self:check_answer(rq, e, new_ctx(), true, res, err, cl.name .. " ping_protected")
  if res then
    self:check(res.json and res.json.ready == true, "%s ping_protected: %s", cl.name, show(res.body))
  end
end

function World:op_token()
  local cl = self:pick_client()
  self:note("%s token", cl.name)
  local tok, left, info = cl.c:token()
  local where = cl.name .. " token"
  if tok == nil then
    local rq = { cl = cl, cred = cl.cred }
    local e = { kinds = {} }
    if not cl.cred.good then e.kinds.auth = true end
    if cl.cred.risk then e.kinds = kindset(TOKEN_FAULT_KINDS) end
    self:check_error(rq, left, e, where)
    return
  end
  self:check(cl.cred.good, "%s: a bad credential got a token", where)
  self:check(type(tok) == "string" and tok:match("^tok_%x+$"), "%s: token %s", where, show(tok))
  self:check(type(left) == "number" and left > 0 and left <= (cl.cred.lifetime or 86400) + 1,
    "%s: seconds_left %s", where, tostring(left))
  self:check(type(info) == "table" and SOURCES[info.source] and type(info.fingerprint) == "string",
    "%s: info %s", where, show(info))
end

function World:op_invalidate()
  local cl = self:pick_client()
  self:note("%s invalidate", cl.name)
  cl.cred.invalidations = cl.cred.invalidations + 1
  cl.c:invalidate()
end

local STAT_FIELDS = { "requests", "token_fetches", "token_cache_hits", "token_store_hits", "retries",
  "replays_401", "stale_tokens", "errors" }

function World:op_stats()
  local cl = self:pick_client()
  self:note("%s stats", cl.name)
  local s = cl.c:stats()
  local last = cl.last_stats or {}
  for _, f in ipairs(STAT_FIELDS) do
    self:check(type(s[f]) == "number" and s[f] >= (last[f] or 0),
      "%s stats: %s is %s, was %s", cl.name, f, tostring(s[f]), tostring(last[f]))
  end
  self:check(type(s.rate_limit) == "table", "%s stats: rate_limit is %s", cl.name, type(s.rate_limit))
  cl.last_stats = s
end

function World:op_close()
  local cl = self:pick_client()
  self:note("%s close", cl.name)
  cl.c:close()
  cl.closed = true
end

-- a closed client raises on every use, and closes again quietly
local CLOSED_USES = {
  function(c) return c:request("GET", "/echo/closed") end,
  function(c) return c:batch({ { "GET", "/echo/closed" } }, { concurrency = 4 }) end,
  function(c) return c:batch({}) end,
  function(c) return c:ping() end,
  function(c) return c:ping_protected() end,
  function(c) return c:token() end,
  function(c) return c:invalidate() end,
  function(c) return c:stats() end,
}

function World:op_use_closed()
  local closed = {}
  for _, cl in ipairs(self.clients) do if cl.closed then closed[#closed + 1] = cl end end
  if #closed == 0 then return self:op_close() end
  local cl = self.r:pick(closed)
  local i = self.r:int(1, #CLOSED_USES)
  self:note("%s use while closed (%d)", cl.name, i)
  local ok, err = pcall(CLOSED_USES[i], cl.c)
  self:check(not ok and tostring(err):find("closed", 1, true), "%s: use %d of a closed client: %s",
    cl.name, i, ok and "did not raise" or tostring(err))
  self:check(pcall(cl.c.close, cl.c), "%s: closing a closed client raised", cl.name)
  self:check(is_closed(cl.c), "%s: tostring does not say closed", cl.name)
end

function World:op_new_client()
  local open = self:open_clients()
  if #open >= MAX_OPEN then
    local cl = open[1]
    self:note("%s close (to make room)", cl.name)
    cl.c:close()
    cl.closed = true
  end
  self:new_client()
end

-- forget a client without closing it: __gc closes it whenever it runs
function World:op_drop_client()
  local i = self.r:int(1, #self.clients)
  local cl = self.clients[i]
  if not cl then return end
  self:note("%s dropped%s", cl.name, cl.closed and "" or " (left to __gc)")
  table.remove(self.clients, i)
end

function World:op_gc()
  local r = self.r:float()
  if r < 0.4 then
    self:note("collectgarbage collect")
    collectgarbage("collect")
  elseif r < 0.9 then
    self:note("collectgarbage step")
    collectgarbage("step")
  elseif _VERSION == "Lua 5.4" then
    local mode = self.r:pick({ "generational", "incremental" })
    self:note("collectgarbage %s", mode)
    collectgarbage(mode)
  end
end

function World:op_store_mode()
  local custom = {}
  for _, cl in ipairs(self:open_clients()) do
    if cl.store == "custom" then custom[#custom + 1] = cl end
  end
  if #custom == 0 then return self:op_new_client() end
  local cl = self.r:pick(custom)
  cl.state.store_mode = self.r:weighted(STORE_MODES)
  cl.state.log_mode = self.r:chance(0.3) and self.r:weighted(LOG_MODES) or cl.state.log_mode
  self:note("%s store mode %s, log %s", cl.name, cl.state.store_mode, cl.state.log_mode)
end

local TOKEN_FAULTS = {
  function(r) return { status = r:pick({ 500, 502, 503, 429 }), headers = { ["Retry-After"] = "0" },
    body = { error = "temporarily_unavailable" } } end,
  function(r) return { status = 200, body = r:pick({ "<html>oops</html>", '{"access_token":5}',
    '{"token_type":"Bearer","expires_in":60}', "null", "" }) } end,
  function(r) return { drop = r:pick({ "before_headers", "mid_body" }) } end,
  function(r) return { delay = r:pick({ 0.05, 0.1, 0.2, 0.3 }) } end,
}

function World:op_token_fault()
  local good = {}
  for _, cred in ipairs(self.creds) do if cred.good then good[#good + 1] = cred end end
  if #good == 0 then return self:op_new_client() end
  local cred = self.r:pick(good)
  local f = self.r:pick(TOKEN_FAULTS)(self.r)
  if f.status == 200 and f.body == "" then f.body = nil end
  f.path, f.client_id, f.times = "/oauth/token", cred.id, self.r:int(1, 2)
  self:note("token fault for %s: %s", cred.id, show(f))
  H.fault(f)
  cred.token_faults = cred.token_faults + f.times
  cred.risk = true
end

function World:op_revoke()
  local open = self:open_clients()
  if #open == 0 then return self:op_new_client() end
  local cred = self.r:pick(open).cred
  self:note("revoke %s", cred.id)
  H.revoke(cred.id)
  cred.revokes = cred.revokes + 1
  cred.revoked_ever = true
end

-- the stand-in forgets its faults and counts; the model keeps the counts
function World:op_reset()
  local st = H.stats()
  self:note("reset the stand-in (%d faults pending)", st.faults_pending)
  for _, cred in ipairs(self.creds) do
    cred.base = cred.base + (st.exchanges_by_client[cred.id] or 0)
    cred.risk = false
  end
  H.reset()
  for _, cred in ipairs(self.creds) do
    if cred.lifetime then H.config(cred.id, cred.lifetime) end
  end
end

-- documented programmer errors: each raises naming the problem (every one of
-- the words), nothing is sent
local MISUSE = {
  { "not an HTTP method name", function(c) return c:request("GE T", "/echo/m") end },
  { "path holds a space", function(c) return c:request("GET", "/echo/a b") end },
  { "unknown option 'bogus'", function(c) return c:request("GET", "/echo/m", { bogus = 1 }) end },
  { "json and body exclude each other",
    function(c) return c:request("POST", "/echo/m", { json = {}, body = "x" }) end },
  { "query value for 'f'", function(c) return c:request("GET", "/echo/m", { query = { f = print } }) end },
  { "holds CR, LF or NUL",
    function(c) return c:request("GET", "/echo/m", { headers = { ["X-A"] = "a\r\nb" } }) end },
  { "out of range", function(c) return c:request("GET", "/echo/m", { timeout = -1 }) end },
  { "json", function(c) return c:request("POST", "/echo/m", { json = { [1] = 1, [1000] = 2 } }) end },
  { { "item 2", "not an HTTP method name" },
    function(c) return c:batch({ { "GET", "/echo/m" }, { "GE T", "/echo/m" } }, { concurrency = 3 }) end },
  { "not a { method, path, opts } table", function(c) return c:batch({ "GET /echo" }) end },
  { "unknown option 'parallel'", function(c) return c:batch({}, { parallel = 2 }) end },
  { "concurrency", function(c) return c:batch({}, { concurrency = 0 }) end },
}

function World:op_misuse()
  local cl = self:pick_client()
  local i = self.r:int(1, #MISUSE)
  local words = MISUSE[i][1]
  if type(words) == "string" then words = { words } end
  self:note("%s misuse: %s", cl.name, table.concat(words, " "))
  local before = H.stats().requests
  local ok, err = pcall(MISUSE[i][2], cl.c)
  local named = not ok
  for _, word in ipairs(words) do named = named and tostring(err):find(word, 1, true) ~= nil end
  self:check(named, "%s misuse %d: expected a raise naming %s, got %s", cl.name, i,
    table.concat(words, " ... "), ok and "no raise" or tostring(err))
  self:check(H.stats().requests == before, "%s misuse %d sent a request", cl.name, i)
end

-- ---------------------------------------------------------------------------
-- After every step

-- garbage from the custom store's load (not an expired entry: that is just old)
local GARBAGE_MODES = { string = true, ["true"] = true, number = true, badtable = true }

-- The store callbacks: a load that raised, or returned garbage, is ignored with
-- a store_error event (and the call went on as if nothing was stored).
function World:check_callbacks()
  for _, cl in ipairs(self.clients) do
    local st = cl.state
    local raised, garbage = false, nil
    for _, mode in ipairs(st.loads) do
      if mode == "raise" then raised = true end
      if GARBAGE_MODES[mode] then garbage = mode end
    end
    local seen, seen_load = false, false
    for _, ev in ipairs(st.events) do
      if ev.event == "store_error" then
        seen = true
        if tostring(ev.reason):find("token_cache.load", 1, true) then seen_load = true end
      end
    end
    self:check(not raised or seen_load, "%s: token_cache.load raised but no store_error event was logged",
      cl.name)
    self:check(not garbage or seen or self.percent.garbage_event == 0,
      "%s: token_cache.load returned garbage (%s) but no store_error event was logged", cl.name, garbage)
    st.events, st.loads = {}, {}
  end
  if #self.violations > 0 then
    local v = self.violations
    self.violations = {}
    self:fail("inside a callback: %s", table.concat(v, "; "))
  end
end

function World:check_exchanges()
  local st = H.stats()
  for _, cred in ipairs(self.creds) do
    local n = cred.base + (st.exchanges_by_client[cred.id] or 0)
    local ub = bound(cred)
    self:check(n <= ub, "%s: %d token exchanges, the model allows %d (invalidations %d, 401 faults %d, "
      .. "token faults %d, timeouts %d, revocations %d, lifetime %s)", cred.id, n, ub, cred.invalidations,
      cred.faults_401, cred.token_faults, cred.timeouts, cred.revokes, tostring(cred.lifetime))
  end
  if st.faults_pending == 0 then
    for _, cred in ipairs(self.creds) do cred.risk = false end
  elseif self.r:chance(0.1) then
    self:op_reset()
  end
end

function World:step()
  local op = self.r:weighted(self.ops)
  local t = socket.gettime()
  self.current = nil
  local ctx = self["op_" .. op](self)
  self:sync_closed(ctx)
  self:check_callbacks()
  self:check_exchanges()
  local p = self.profile[op] or { 0, 0 }
  self.profile[op] = { p[1] + 1, p[2] + socket.gettime() - t }
end

-- ---------------------------------------------------------------------------

-- "name=N,...": an op's weight, a PERCENT, or h_<action> a hostile action's weight
local function parse_weights(spec, weights, percent, hostile)
  for name, v in tostring(spec or ""):gmatch("([%w_]+)=(%d+)") do
    local found = false
    for _, e in ipairs(weights) do
      if e[1] == name then e[2], found = tonumber(v), true end
    end
    for _, e in ipairs(hostile) do
      if "h_" .. e[1] == name then e[2], found = tonumber(v), true end
    end
    if percent[name] then percent[name], found = tonumber(v), true end
    if not found then error("DUCKY_MODEL_WEIGHTS: unknown name " .. name) end
  end
end

-- Whether the stand-in routes LOCK like GET (a newer one does).
local function routes_odd_methods()
  local _, code = require("socket.http").request({ url = H.base_url() .. "/echo/probe?public=1",
    method = "LOCK" })
  return code == 200
end

local function env_number(name)
  local v = os.getenv(name)
  return v and v ~= "" and tonumber(v) or nil
end

-- Runs the model; raises (with seed, step and trace) on the first broken invariant.
--   opts.seed, opts.steps, opts.log (file), opts.weights ("name=N,...")
function M.run(opts)
  opts = opts or {}
  local seed = math.floor(opts.seed or env_number("DUCKY_SEED")
    or (os.time() % 1000000) * 1000 + math.floor(socket.gettime() * 1000) % 1000)
  local steps = opts.steps or env_number("DUCKY_STEPS") or 1200
  local ops = {}
  for i, e in ipairs(M.WEIGHTS) do ops[i] = { e[1], e[2] } end
  local percent = {}
  for k, v in pairs(M.PERCENT) do percent[k] = v end
  local hostile = {}
  for i, e in ipairs(M.HOSTILE_ACTIONS) do hostile[i] = { e[1], e[2] } end
  parse_weights(opts.weights or os.getenv("DUCKY_MODEL_WEIGHTS"), ops, percent, hostile)
  ROUTED = { GET = true, HEAD = true, PUT = true, DELETE = true, OPTIONS = true, POST = true,
    PATCH = true }
  if routes_odd_methods() then ROUTED.LOCK, ROUTED.MKCOL, ROUTED.PURGE = true, true, true end
  local logpath = opts.log or os.getenv("DUCKY_MODEL_LOG")
  local w = setmetatable({
    seed = seed, steps = steps, r = M.rng(seed), ops = ops, percent = percent, hostile = hostile,
    creds = {}, clients = {}, store_data = {}, trace = {}, violations = {},
    step_no = 0, ntag = 0, nclient = 0, profile = {},
    logf = logpath and logpath ~= "" and assert(io.open(logpath, "w")) or nil,
  }, World)
  io.stderr:write(string.format("model: seed %s, %d steps (DUCKY_SEED=%s DUCKY_STEPS=%d to replay)\n",
    ("%.0f"):format(seed), steps, ("%.0f"):format(seed), steps))
  local t0 = socket.gettime()
  local ok, err = pcall(function()
    for i = 1, steps do
      w.step_no = i
      w:step()
    end
  end)
  for _, cl in ipairs(w.clients) do pcall(cl.c.close, cl.c) end
  if _VERSION == "Lua 5.4" then collectgarbage("incremental") end
  collectgarbage()
  if w.logf then w.logf:close() end
  if os.getenv("DUCKY_MODEL_PROFILE") then -- where the time went, per op
    for _, e in ipairs(ops) do
      local p = w.profile[e[1]]
      if p then io.stderr:write(("model: %-16s %6d steps %7.2f s\n"):format(e[1], p[1], p[2])) end
    end
  end
  if not ok then error(err, 0) end
  return { seed = seed, steps = steps, seconds = socket.gettime() - t0, clients = w.nclient,
    creds = #w.creds }
end

M.World = World
M.utf8_valid = utf8_valid
return M
