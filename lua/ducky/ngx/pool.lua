-- ducky.ngx.pool: what runs in the thread pool's Lua VMs. nginx loads this
-- module there (ngx.run_worker_thread) and calls run() or setup(); each VM
-- keeps one ducky.client per configuration, made on first use. Only plain
-- data crosses to and from the worker (nginx copies it; metatables are lost).
local ngx = ngx
local ducky = require("ducky")
local shared = require("ducky.ngx.shared")
local store = require("ducky.ngx.store")
local fleet = require("ducky.ngx.fleet")
local stats = require("ducky.ngx.stats")

local M = {}

local SAFETY = 1 -- a token with less left than this is not handed out

local vm = {
  entries = {},    -- configuration id -> { client, refresher, dict, last stats, ... }
  events = nil,    -- events of the call under way (nil: none), store errors included
  delta = nil,     -- its stats, so far
  dropping = nil,  -- while an invalidation runs: the token it drops
}
-- This VM, as streams tell it (the address of a table it keeps: no other VM
-- of the process has it while this one lives).
local VM_ID = tostring(vm)

-- Events worth a line in nginx's log: all but the token read from memory,
-- which every call makes.
local function collect(event)
  if event.event == "token" and event.source == "memory" then return end
  local events = vm.events or {}
  events[#events + 1] = event
  vm.events = events
end

-- The token_cache of the configuration's clients in this VM: the dict's,
-- with Redis behind it for a fleet; false without a dict.
local function token_cache(conf, dict)
  if not dict then return false end
  local on_dict = store.new(vm, dict, conf.lock_ttl)
  if not conf.redis then return on_dict end
  return fleet.new(vm, dict, on_dict, conf.redis, conf.id)
end

local function make_entry(conf)
  local dict = conf.dict and ngx.shared[conf.dict]
  if conf.dict and not dict then
    error("lua_shared_dict " .. conf.dict .. " is not configured", 0)
  end
  local cache = token_cache(conf, dict)
  local function client(margin)
    local o = shared.copy(conf.copts)
    o.token_cache = cache
    if conf.log then o.log = collect end
    if margin then o.refresh_margin = margin end
    return ducky.client(o)
  end
  return { client = client(), dict = dict, id = conf.id, last = {}, cache = cache,
    refresher = function(self) -- a client that refreshes earlier than the others
      self.refresher = client(conf.refresh_at)
      return self.refresher
    end }
end

-- What a client counted since this VM last reported it, added to delta (a
-- table of the changed counters, nil while none changed); it goes back to the
-- worker with the call's result. Rate-limit headers come with exchanges only.
local function stats_delta(e, client, delta)
  e.scratch = e.scratch or {}
  local s = client:stats(e.scratch) -- filled in place: no table per call
  local last = e.last[client]
  if not last then
    last = {}
    e.last[client] = last
  end
  for _, name in ipairs(stats.CLIENT) do
    local d = s[name] - (last[name] or 0)
    if d ~= 0 then
      delta = delta or {}
      delta[name] = (delta[name] or 0) + d
      last[name] = s[name]
      if name == "token_fetches" and next(s.rate_limit) then -- a copy: s is reused
        delta.rate_limit = shared.copy(s.rate_limit)
      end
    end
  end
  return delta
end

-- Client c's token, unless it is one a worker dropped (the dict keeps the
-- fingerprint of the last one): the process's memory may still hold that
-- one, which then goes, and a new one comes. tok, left or nil, err.
local function live_token(e, c)
  local tok, left, info = c:token()
  if not (tok and e.dict and info.source == "memory") then return tok, left end
  local key = c:cache_key()
  if not (key and shared.was_dropped(e.dict, key, tok)) then return tok, left end
  vm.dropping = tok
  c:invalidate()
  vm.dropping = nil
  return c:token()
end

-- A token for authorization(), as { token, left, life }: the client's,
-- unless the dict holds a different one (another worker refreshed it) or
-- dropped this one (another worker invalidated it: then a new one).
local function bearer(e, key)
  local tok, left = live_token(e, e.client)
  if not tok then return nil, left end
  local entry = e.dict and key and store.read(e.dict, key)
  if entry then
    local life = entry.expires_in
    if entry.access_token ~= tok and entry.expires_at - ngx.now() > SAFETY then
      return { token = entry.access_token, left = entry.expires_at - ngx.now(), life = life }
    end
    return { token = tok, left = left, life = life }
  end
  return { token = tok, left = left }
end

-- Drops tok (nil: whatever is current) from this process and the dict.
local function invalidate(e, tok)
  vm.dropping = tok
  e.client:invalidate()
  vm.dropping = nil
  return true
end

-- nginx copies a pool call's return value into the worker's VM at most 100
-- tables deep (LUA_COPY_MAX_DEPTH), the result's own levels included: an
-- answer whose res.json nests deeper goes without it, marked json_in_body, and
-- the worker decodes res.body itself (ducky.ngx's as_result).
local JSON_DEPTH = 90
local function deeper(t, left)
  if left == 0 then return true end
  for _, v in next, t do
    if type(v) == "table" and deeper(v, left - 1) then return true end
  end
  return false
end
local function crossable(res)
  if type(res) == "table" and type(res.json) == "table" and deeper(res.json, JSON_DEPTH) then
    res.json, res.json_in_body = nil, true
  end
  return res
end

-- Adds the streamed calls that ended to `ended`, and lets them go.
local function take_ended(e, ended)
  local ops = e.ops
  for id, op in pairs(ops) do
    if op:done() then
      local res, err = op:result()
      ended[#ended + 1] = { id, crossable(res), err }
      ops[id], e.nops = nil, e.nops - 1
    end
  end
end

-- Streamed request() calls (ducky.ngx.admission): each started as an
-- operation on the configuration's client and kept in this VM between
-- calls; a call answers as soon as it ends, never waiting for another. The
-- worker's runner comes straight back to this VM while any is under way
-- (nginx hands out the VM freed last). calls: { id, method, path, opts }
-- each; wait: seconds at most for one to end. Returns { ended = { { id, res,
-- err }, … }, left = the calls still under way here }.
local function stream(e, calls, wait)
  local c, ops, ended = e.client, e.ops, {}
  if not ops then
    ops = {}
    e.ops, e.nops = ops, 0
  end
  for _, call in ipairs(calls) do
    local id, method, path, opts = call[1], call[2], call[3], call[4]
    local ok, op, err = pcall(c.start, c, method, path, opts)
    if ok and op then
      ops[id], e.nops = op, e.nops + 1
    elseif ok then
      ended[#ended + 1] = { id, nil, err }
    else -- its arguments: refused as request() refuses them, in request()'s words
      local _, raised = pcall(c.request, c, method, path, opts)
      ended[#ended + 1] = { id, nil, { kind = "config", message = tostring(raised), raised = true } }
    end
  end
  take_ended(e, ended)
  if #ended == 0 and e.nops > 0 then
    c:step(wait) -- until one ends
    take_ended(e, ended)
  end
  return { ended = ended, left = e.nops, vm = VM_ID }
end

local function request(e, method, path, opts)
  local res, err = e.client:request(method, path, opts)
  return crossable(res), err
end

-- ping and ping_protected with the time a call has left after its wait in the
-- queue (ducky.ngx.admission), when it waited
local function ping(e, timeout, auth)
  if timeout then
    return request(e, "GET", auth and "ping/protected" or "ping", { auth = auth, timeout = timeout })
  end
  local res, err
  if auth then res, err = e.client:ping_protected() else res, err = e.client:ping() end
  return crossable(res), err
end

local function batch(e, requests, opts)
  local list, err = e.client:batch(requests, opts)
  for _, r in ipairs(list or {}) do crossable(r.res) end
  return list, err
end

local OPS = {
  request = request,
  ping = function(e, timeout) return ping(e, timeout, false) end,
  ping_protected = function(e, timeout) return ping(e, timeout, true) end,
  batch = batch,
  stream = stream,
  token = function(e)
    local tok, left, info = e.client:token()
    if not tok then return nil, left end
    return { tok, left, info }
  end,
  bearer = bearer,
  refresh = function(e)
    local c = e.refresher
    if type(c) == "function" then c = c(e) end
    local tok, left = live_token(e, c)
    vm.delta = stats_delta(e, c, vm.delta)
    if not tok then return nil, left end
    return { token = tok, left = left }
  end,
  invalidate = invalidate,
  -- the machine's token and Redis's on one (a fleet's background refresh)
  sync = function(e, key, budget)
    return e.cache and e.cache.sync and e.cache.sync(key, budget) or false
  end,
}

-- Runs the op; a raised error (a call's arguments the client refused) comes
-- back as a config error marked `raised`, so that the worker can tell it
-- from a failure of the thread pool itself.
local function dispatch(e, what, ...)
  vm.events, vm.delta, vm.dropping = nil, nil, nil
  local ok, res, err = pcall(OPS[what], e, ...)
  if not ok then
    res, err = nil, { kind = "config", message = tostring(res), raised = true }
  end
  local events, delta = vm.events, stats_delta(e, e.client, vm.delta)
  vm.events, vm.delta = nil, nil
  return res, err, events, delta
end

-- Called by nginx in a pool VM: the call `what` for configuration `id`, or
-- NEED_CONFIG when this VM has not seen that configuration yet.
function M.run(id, what, ...)
  local e = vm.entries[id]
  if not e then return shared.NEED_CONFIG end
  return dispatch(e, what, ...)
end

-- The same, with the configuration: its clients are made and kept in this VM.
function M.setup(id, conf, what, ...)
  local e = vm.entries[id]
  if not e then
    local ok, made = pcall(make_entry, conf)
    if not ok then return nil, { kind = "config", message = tostring(made) } end
    e = made
    vm.entries[id] = e
  end
  return dispatch(e, what, ...)
end

return M
