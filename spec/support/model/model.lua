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
-- stand-in reset, documented misuse, operations (start, then step at random
-- moments, cancel, let go of, close or call the client meanwhile), outages of
-- the token endpoint with time moved (ops_engine.lua). Modifiers (M.PERCENT): an API fault on the
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
--
-- The model's files (spec/support/model/): rng.lua (the generator), util.lua
-- (constants, pure helpers), world.lua (credentials, clients, stores, trace),
-- gen.lua (calls and their faults), hostile.lua (hostile callbacks), check.lua
-- (expectations), ops_calls.lua, ops_world.lua and ops_engine.lua (the ops);
-- this file: the
-- weights, the checks after every step, and the run.
local H = require("spec.helpers")
local U = require("spec.support.model.util")
local World = require("spec.support.model.world")
local Ho = require("spec.support.model.hostile")
local socket = require("socket")
require("spec.support.model.gen")
require("spec.support.model.ops_calls")
require("spec.support.model.ops_world")
require("spec.support.model.ops_engine")

local M = {}

M.rng = require("spec.support.model.rng")

-- ---------------------------------------------------------------------------
-- Weights. Ops are picked by weight each step; PERCENT are the chances of the
-- modifiers applied to a call.

M.WEIGHTS = {
  { "request", 30 }, { "batch", 16 }, { "ping", 3 }, { "ping_protected", 4 }, { "token", 4 },
  { "invalidate", 3 }, { "stats", 3 }, { "close", 2 }, { "use_closed", 2 }, { "new_client", 4 },
  { "drop_client", 1 }, { "gc", 4 }, { "store_mode", 3 }, { "token_fault", 3 }, { "revoke", 1 },
  { "reset", 1 }, { "misuse", 2 }, { "async", 8 }, { "outage", 1 },
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

M.HOSTILE_ACTIONS = Ho.HOSTILE_ACTIONS

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
    st.last_events, st.events, st.loads = st.events, {}, {}
  end
  if #self.violations > 0 then
    local v = self.violations
    self.violations = {}
    self:fail("inside a callback: %s", table.concat(v, "; "))
  end
end

-- What the log of cred's clients saw in the step just checked (for a failure).
local function cred_events(self, cred)
  local out = {}
  for _, cl in ipairs(self.clients) do
    if cl.cred == cred then out[#out + 1] = cl.name .. ": " .. World.step_events(cl) end
  end
  return table.concat(out, "; ")
end

function World:check_exchanges()
  local st = H.stats()
  for _, cred in ipairs(self.creds) do
    local n = cred.base + (st.exchanges_by_client[cred.id] or 0)
    if n ~= (cred.seen or 0) then -- the steps that made exchanges, for a failure's message
      cred.seen, cred.history = n, (cred.history or "") .. (" %d@step%d"):format(n, self.step_no)
    end
    local ub = World.bound(cred)
    if n > ub then
      local tr = st.token_requests_by_client and st.token_requests_by_client[cred.id] or {}
      self:fail("%s: %d token exchanges, the model allows %d (invalidations %d, 401 faults %d, "
        .. "token faults %d, timeouts %d, revocations %d, closed under way %d, lifetime %s); "
        .. "exchanges:%s; token requests "
        .. "received %s, succeeded %s, failed %s; the logs of its clients this step: %s", cred.id, n, ub,
        cred.invalidations, cred.faults_401, cred.token_faults, cred.timeouts, cred.revokes,
        cred.abandoned, tostring(cred.lifetime), cred.history, tostring(tr.received), tostring(tr.succeeded),
        tostring(tr.failed), cred_events(self, cred))
    end
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
  U.ROUTED = { GET = true, HEAD = true, PUT = true, DELETE = true, OPTIONS = true, POST = true,
    PATCH = true }
  if routes_odd_methods() then U.ROUTED.LOCK, U.ROUTED.MKCOL, U.ROUTED.PURGE = true, true, true end
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
  -- back-off steps of 0: a failed exchange does not shadow the calls after it
  -- (op_outage moves time to check the back-off itself)
  require("ducky")._test.fix_jitter(0)
  local ok, err = pcall(function()
    for i = 1, steps do
      w.step_no = i
      w:step()
    end
  end)
  for _, cl in ipairs(w.clients) do pcall(cl.c.close, cl.c) end
  require("ducky")._test.fix_jitter()
  H.reset_clock()
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
M.utf8_valid = U.utf8_valid
return M
