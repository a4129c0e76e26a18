-- The random model's world (spec/support/model/model.lua): credentials,
-- clients, the shared custom store, the trace. Other files of the model add
-- World's generators (gen.lua), hostile actions (hostile.lua), checks
-- (check.lua) and ops (ops_calls.lua, ops_world.lua).
local H = require("spec.helpers")
local U = require("spec.support.model.util")
local ducky = require("ducky")
local socket = require("socket")

local show, EVENTS, SOURCES, MAX_OPEN = U.show, U.EVENTS, U.SOURCES, U.MAX_OPEN
local STORE_MODES, LOG_MODES = U.STORE_MODES, U.LOG_MODES

local World = {}
World.__index = World

-- What cl's log saw in this step (the step just checked, once its events
-- were cleared), one word each: event/source/kind(reason).
function World.step_events(cl)
  local evs = {}
  for _, ev in ipairs(#cl.state.events > 0 and cl.state.events or cl.state.last_events or {}) do
    evs[#evs + 1] = ev.event .. (ev.source and ("/" .. ev.source) or "")
      .. (ev.kind and ("/" .. tostring(ev.kind)) or "")
      .. (ev.reason and ("(" .. tostring(ev.reason) .. ")") or "")
  end
  return table.concat(evs, " ")
end

function World:fail(fmt, ...)
  local msg = select("#", ...) > 0 and string.format(fmt, ...) or fmt
  local trace = {}
  for i = math.max(1, #self.trace - 19), #self.trace do trace[#trace + 1] = "  " .. self.trace[i] end
  local cl = self.current
  if cl then trace[#trace + 1] = string.format("  %s's log this step: %s", cl.name, World.step_events(cl)) end
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
    id = id, secret = H.secret(id), good = not bad, created = socket.gettime() + H.clock_offset(),
    token_auth = self.r:pick({ "json", "form", "basic" }),
    scheme = self:pct("https") and "https" or "http",
    lifetime = (not bad and self:pct("short_life")) and self.r:pick({ 3, 4, 6 }) or nil,
    -- what the exchange bound counts (see bound)
    invalidations = 0, faults_401 = 0, token_faults = 0, timeouts = 0, revokes = 0, base = 0,
    abandoned = 0,
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
-- perhaps while the token answer was on its way, a client closed with
-- operations under way: an exchange it led goes with it, perhaps after the
-- stand-in sent the token). A revocation counts three: the
-- revoked token may come back once from the custom store and once from the file
-- store (clients of one credential with different stores share the memory cache
-- but not the stores), each time answered 401 and replaced.
function World.bound(cred)
  if not cred.good then return 0 end
  local life = 0
  if cred.lifetime then
    life = math.floor((socket.gettime() + H.clock_offset() - cred.created) / (cred.lifetime / 2)) + 1
  end
  return 1 + life + cred.invalidations + cred.faults_401 + cred.token_faults + cred.timeouts
    + cred.abandoned + 3 * cred.revokes
end

-- ---- the custom token store: one table shared by every client that has one
-- (like a Redis), each client with its own misbehaviour mode.

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
    -- a store that raises raises in lock too (Redis down): the exchange goes on at once
    store.lock = function()
      if state.store_mode == "raise" then error("store lock boom") end
      return true
    end
    store.unlock = function() end
  end
  return store
end

-- ---- clients


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

return World
