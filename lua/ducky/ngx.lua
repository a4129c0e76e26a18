-- ducky.ngx: the Ducky API from nginx (lua-nginx-module / OpenResty) without
-- blocking the event loop.
--
--   thread_pool ducky threads=32;                    # main context
--   lua_worker_thread_vm_pool_size 32;               # http context
--   lua_shared_dict ducky_tokens 1m;                 # http context
--   init_by_lua_block        { API = require("ducky.ngx").new{ threads = 32 } }
--   init_worker_by_lua_block { API:init_worker() }   -- background token refresh
--
--   local res, err = API:request("GET", "/footprints", { query = { year = 2026 } })
--   ngx.req.set_header("Authorization", API:authorization())  -- before proxy_pass
--
-- Calls run on the nginx thread pool (ngx.run_worker_thread): the request's
-- coroutine yields while a pool thread waits on libcurl. Each worker admits at
-- most `threads` calls to the pool at once; the others wait in the event loop,
-- inside their timeout, so no call is ever refused for want of a thread or a
-- thread VM, and request() calls that wait go to the pool together, as one
-- client:batch. Tokens live in the lua_shared_dict, shared by every worker:
-- authorization() reads it in the event loop, and only a miss goes to the
-- pool; a timer started by init_worker() refreshes the token ahead of its
-- refresh margin, one worker at a time.
--
-- Two halves: the Api object in the worker's own Lua VM (new, the methods, the
-- timer), and M.run/M.setup, which nginx calls inside the thread pool's VMs.
-- Only plain data crosses between them (nginx copies it; metatables are lost).
local M = {}

local DEFAULT_POOL = "ducky"
local DEFAULT_DICT = "ducky_tokens"
local DEFAULT_THREADS = 10 -- lua_worker_thread_vm_pool_size's default
local DEFAULT_INTERVAL = 1 -- seconds between background refresh checks
local SAFETY = 1           -- a token with less left than this is not handed out
local NEED_CONFIG = "\0ducky.ngx: configuration needed"

-- The options ducky.ngx takes on top of ducky.client's.
local NGX_OPTIONS = { pool = true, shared_dict = true, threads = true, log_level = true,
  refresh_interval = true }

-- The phases where nginx lets Lua wait on the thread pool.
local CALL_PHASES = { rewrite = true, access = true, content = true, timer = true }

local LOG_LEVELS = { debug = "DEBUG", info = "INFO", notice = "NOTICE", warn = "WARN",
  error = "ERR", crit = "CRIT", alert = "ALERT", emerg = "EMERG" }

-- Stats counted by ducky.client in the pool, and by this module in the event loop.
local CLIENT_STATS = { "requests", "token_fetches", "token_cache_hits", "token_store_hits",
  "retries", "replays_401", "stale_tokens", "errors" }
local LOOP_STATS = { "queued", "queue_timeouts", "batched", "authorization_hits",
  "authorization_misses", "background_refreshes" }

-- ---- shared by both halves ----------------------------------------------------

-- The shared dict's keys, per cache key (the C core's) or per configuration.
local function lock_key(key) return key .. ":lock" end
local function refresh_key(key) return key .. ":refresh" end
local function gen_key(key) return key .. ":gen" end -- bumped on every change of the token
local function stat_prefix(id) return "ducky:stats:" .. id .. ":" end

-- A random value naming the holder of a lock in the dict.
local random_state
local function owner_value()
  if not random_state then
    local f = io.open("/dev/urandom", "rb")
    local bytes = f and f:read(8) or tostring(os.time()) .. tostring({})
    if f then f:close() end
    random_state = { bytes:byte(1, -1) }
    random_state.n = 0
  end
  random_state.n = random_state.n + 1
  local hex = {}
  for i, b in ipairs(random_state) do hex[i] = ("%02x"):format(b) end
  return table.concat(hex) .. ":" .. random_state.n
end

-- Deletes a lock only while it still holds our value. The dict has no atomic
-- compare-and-delete, so the delete happens only while the lock has more than a
-- second to live: another holder can take it only after it expires, which cannot
-- happen between our get and our delete.
local function unlock(dict, name, owner)
  if dict:get(name) == owner then
    local ttl = dict:ttl(name)
    if ttl and (ttl == 0 or ttl > 1) then dict:delete(name) end
  end
end

-- ---- in the thread pool's Lua VMs ------------------------------------------------

local vm = {
  entries = {}, -- configuration id -> { client, refresher, dict, last stats, ... }
  events = nil, -- events of the call under way (nil: none)
  delta = nil,  -- its stats, so far
}

local function sleep(seconds)
  local ffi = require("ffi")
  if not vm.usleep then
    pcall(ffi.cdef, "int usleep(unsigned int usec);")
    vm.usleep = ffi.C.usleep
  end
  vm.usleep(seconds * 1e6)
end

-- A token_cache on the lua_shared_dict, for the clients of the pool's VMs.
local function shared_store(dict, lock_ttl)
  local cjson = require("cjson")
  local owners = {}
  return {
    load = function(key)
      local text = dict:get(key)
      if not text then return nil end
      local ok, entry = pcall(cjson.decode, text)
      return ok and type(entry) == "table" and entry or nil
    end,
    store = function(key, entry)
      if not entry then
        dict:delete(key)
      else
        local ok, err = dict:set(key, cjson.encode(entry), math.max(entry.expires_at - os.time(), 1))
        if not ok then error("lua_shared_dict: " .. tostring(err), 0) end
      end
      dict:incr(gen_key(key), 1, 0) -- after the change: a reader of the new value sees the new token
    end,
    -- add() is atomic across workers: poll until it succeeds or time is up
    lock = function(key, timeout)
      local owner, waited = owner_value(), 0
      while not dict:add(lock_key(key), owner, lock_ttl) do
        if waited >= timeout then return false end
        sleep(0.01)
        waited = waited + 0.01
      end
      owners[key] = owner
      return true
    end,
    unlock = function(key)
      if owners[key] then unlock(dict, lock_key(key), owners[key]) end
      owners[key] = nil
    end,
  }
end

M._shared_store = shared_store -- for spec/nginx_spec.lua

-- Events worth a line in nginx's log: all but the token read from memory,
-- which every call makes.
local function collect(event)
  if event.event == "token" and event.source == "memory" then return end
  local events = vm.events or {}
  events[#events + 1] = event
  vm.events = events
end

local function make_entry(conf)
  local ducky = require("ducky")
  local dict = conf.dict and ngx.shared[conf.dict]
  if conf.dict and not dict then
    error("lua_shared_dict " .. conf.dict .. " is not configured", 0)
  end
  local function client(margin)
    local o = {}
    for k, v in pairs(conf.copts) do o[k] = v end
    o.token_cache = dict and shared_store(dict, conf.lock_ttl) or false
    if conf.log then o.log = collect end
    if margin then o.refresh_margin = margin end
    return ducky.client(o)
  end
  return { client = client(), dict = dict, id = conf.id, last = {},
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
  for _, name in ipairs(CLIENT_STATS) do
    local d = s[name] - (last[name] or 0)
    if d ~= 0 then
      delta = delta or {}
      delta[name] = (delta[name] or 0) + d
      last[name] = s[name]
      if name == "token_fetches" and next(s.rate_limit) then -- a copy: s is reused
        delta.rate_limit = {}
        for k, v in pairs(s.rate_limit) do delta.rate_limit[k] = v end
      end
    end
  end
  return delta
end

-- The current token for authorization(): the client's, unless the dict holds a
-- different one (another worker refreshed it, or it was invalidated there).
local function bearer(e, key)
  local c = e.client
  local tok, err, info = c:token()
  if not tok or not e.dict or not key then return tok, err end
  local text = e.dict:get(key)
  if text then
    local ok, entry = pcall(require("cjson").decode, text)
    if ok and type(entry) == "table" and type(entry.access_token) == "string"
      and entry.access_token ~= tok and entry.expires_at - os.time() > SAFETY then
      return entry.access_token
    end
  elseif info and info.source == "memory" then
    c:invalidate() -- dropped from the dict by another worker: not ours to keep
    tok, err = c:token()
  end
  return tok, err
end

local OPS = {
  request = function(e, method, path, opts) return e.client:request(method, path, opts) end,
  ping = function(e) return e.client:ping() end,
  ping_protected = function(e) return e.client:ping_protected() end,
  batch = function(e, requests, opts) return e.client:batch(requests, opts) end,
  token = function(e)
    local tok, left, info = e.client:token()
    if not tok then return nil, left end
    return { tok, left, info }
  end,
  bearer = bearer,
  refresh = function(e)
    local c = e.refresher
    if type(c) == "function" then c = c(e) end
    local tok, left, info = c:token()
    vm.delta = stats_delta(e, c, vm.delta)
    if not tok then return nil, left end
    return { left, info }
  end,
  invalidate = function(e) e.client:invalidate() return true end,
}

local function dispatch(e, what, ...)
  vm.events, vm.delta = nil, nil
  local res, err = OPS[what](e, ...)
  local events, delta = vm.events, stats_delta(e, e.client, vm.delta)
  vm.events, vm.delta = nil, nil
  return res, err, events, delta
end

-- Called by nginx in a pool VM: the call `what` for configuration `id`, or
-- NEED_CONFIG when this VM has not seen that configuration yet.
function M.run(id, what, ...)
  local e = vm.entries[id]
  if not e then return NEED_CONFIG end
  return dispatch(e, what, ...)
end

-- The same, with the configuration: its clients are made and kept in this VM.
function M.setup(id, conf, what, ...)
  local e = vm.entries[id]
  if not e then
    e = make_entry(conf)
    vm.entries[id] = e
  end
  return dispatch(e, what, ...)
end

-- ---- in the worker's own Lua VM -------------------------------------------------

local Api = {}
Api.__index = Api

local semaphore -- ngx.semaphore, loaded in the worker (not in the pool's VMs)
local get_phase, now_ = ngx.get_phase, ngx.now -- resty.core's, when loaded in a worker
local unpack = unpack or table.unpack
local pools = {} -- pool name -> admission state, made in each worker on first use
local pool_threads = {} -- pool name -> the threads given by new{}
-- A slot's holder has a deadline: its calls' timeouts and this grace (its pool
-- thread is done by then). A request that goes away while its call runs (a
-- client abort nginx was told to watch, a killed light thread) never gives its
-- slot back itself; past the deadline the slot is handed over all the same.
local LEASE_GRACE = 2
local BATCH_MAX = 32 -- request() calls that one pool thread runs together
local OPTS_AT = { request = 3, batch = 2 } -- where a call's opts are among its arguments

-- ducky.error() and, once the C core has it, ducky.headers() give back what
-- crossing the VM boundary took away; until then a Lua metatable makes header
-- lookups case-insensitive.
local header_mt = { __index = function(t, k)
  if type(k) == "string" then return rawget(t, k:lower()) end
end }
local ducky -- the module, loaded on first use (not in the pool's VMs)
local function headers(t)
  if type(t) ~= "table" then return t end
  ducky = ducky or require("ducky")
  if ducky.headers then return ducky.headers(t) end
  return setmetatable(t, header_mt)
end

local function as_error(t)
  if type(t) ~= "table" then return t end
  headers(t.headers)
  ducky = ducky or require("ducky")
  return ducky.error(t)
end

local function as_result(res, err)
  if type(res) == "table" then headers(res.headers) end
  return res, err
end

local function phase_error(method, phase)
  error(("ducky.ngx: api:%s() is not allowed in the %s phase: nginx lets Lua wait on its"
    .. " thread pool in rewrite, access, content and timer phases only"):format(method, phase), 3)
end

local function phase_check(method)
  local phase = ngx.get_phase()
  if not CALL_PHASES[phase] then phase_error(method, phase) end
end

-- The worker's counters live in Lua (self.counts) and reach the dict, where
-- stats() sums every worker's, at most a second late (and at once for stats()).
local function flush(self)
  self.flushed_at = ngx.now()
  if not self.dict then return end
  local pid = ngx.worker.pid()
  if self.stat_pid ~= pid then -- keys of this worker (not of the master new{} ran in)
    self.stat_pid, self.stat_key, self.flushed = pid, stat_prefix(self.id) .. pid .. ":", {}
  end
  local flushed = self.flushed
  for name, v in pairs(self.counts) do
    local d = v - (flushed[name] or 0)
    if d ~= 0 then
      self.dict:incr(self.stat_key .. name, d, 0)
      flushed[name] = v
    end
  end
  if self.rate_limit_changed then
    self.dict:set(stat_prefix(self.id) .. "rate_limit", require("cjson").encode(self.rate_limit))
    self.rate_limit_changed = nil
  end
end

local function count(self, name, n)
  local counts = self.counts
  counts[name] = (counts[name] or 0) + (n or 1)
  if ngx.now() - self.flushed_at >= 1 then flush(self) end
end

-- Adds what the pool's clients counted during a call.
local function add_stats(self, delta)
  local counts = self.counts
  for name, n in pairs(delta) do
    if name == "rate_limit" then
      self.rate_limit, self.rate_limit_changed = n, true
    else
      counts[name] = (counts[name] or 0) + n
    end
  end
  if ngx.now() - self.flushed_at >= 1 then flush(self) end
end

local function describe(ev)
  local e = ev.event
  if e == "token" then
    return ("token from %s, %d s left, fingerprint %s"):format(ev.source, ev.seconds_left or 0,
      tostring(ev.fingerprint))
  elseif e == "retry" then
    return ("retry: attempt %d after %s, waiting %.2f s"):format(ev.attempt or 0, tostring(ev.reason),
      ev.wait or 0)
  elseif e == "replay_401" then
    return "the API answered 401: token dropped, request replayed"
  elseif e == "stale_token" then
    return ("token refresh failed (%s): keeping the current token, %d s left"):format(
      tostring(ev.reason), ev.seconds_left or 0)
  elseif e == "store_error" then
    return ("token store error: %s"):format(tostring(ev.reason))
  end
  local parts = {}
  for k, v in pairs(ev) do parts[#parts + 1] = k .. "=" .. tostring(v) end
  table.sort(parts)
  return table.concat(parts, " ")
end

local function log_events(self, events)
  if not events or not self.log_level then return end
  for _, ev in ipairs(events) do ngx.log(self.log_level, "ducky: ", describe(ev)) end
end

-- The calls in flight per worker for this pool: the first threads = given for it.
local function pool_size(self)
  return pool_threads[self.pool] or DEFAULT_THREADS
end

-- Admission, per worker and thread pool: `free` slots (threads = … of them),
-- and a FIFO queue of the calls that wait for one, each on its own
-- ngx.semaphore. A call that finds a free slot and no queue runs at once. A
-- call that queues waits in the event loop until a slot is handed to it (it
-- then leads) or until a leader took it into its batch and it is done: the
-- request() calls of one configuration waiting in the queue go to the pool
-- together, as one client:batch (libcurl's multi interface: one thread and one
-- hop for them all), so a saturated worker spends its threads and its CPU on
-- HTTP rather than on thread hops. A leader that is done hands its slot to the
-- first waiting call, or frees it.
local function pool_state(self)
  local P = pools[self.pool]
  if not P then
    P = { free = pool_size(self), first = 1, last = 0, leases = {} }
    pools[self.pool] = P
  end
  return P
end

local function queued_head(P)
  while P.first <= P.last do
    local j = P[P.first]
    if j and j.state == "queued" then return j end
    P[P.first] = nil
    P.first = P.first + 1
  end
  return nil
end

-- The slot of a call that is done: to the first waiting call, else free.
local function hand_over(P)
  local j = queued_head(P)
  if j then
    P[P.first] = nil
    P.first = P.first + 1
    j.state = "lead"
    P.leases[j] = j.deadline + LEASE_GRACE -- until it takes its slot up
    j.sema:post(1)
  else
    P.free = P.free + 1
  end
end

-- Gives back the slots of calls whose requests went away (see LEASE_GRACE);
-- looks once a second at most.
local function reap(P, pool)
  local now, n = ngx.now(), 0
  if now - (P.reaped_at or 0) < 1 then return end
  P.reaped_at = now
  for lease, deadline in pairs(P.leases) do
    if now > deadline then
      P.leases[lease] = nil
      n = n + 1
      hand_over(P)
    end
  end
  if n > 0 then
    ngx.log(ngx.WARN, "ducky: ", n, " call(s) of pool '", pool, "' outlived their requests;"
      .. " their thread slots are free again")
  end
end

-- Whether nginx would log ducky's events at all: the pool's clients get a log
-- function only then (it costs a Lua call per API call).
local function events_wanted(self)
  if not self.log_level then return false end
  local ok, errlog = pcall(require, "ngx.errlog")
  local got, level = false, nil
  if ok then got, level = pcall(errlog.get_sys_filter_level) end
  return not got or type(level) ~= "number" or self.log_level <= level
end

-- Runs OPS[what] in a pool thread; returns the op's result and error (an
-- error table as it crossed).
local function in_pool(self, what, ...)
  local pool = self.pool
  if self.conf.log == nil then self.conf.log = events_wanted(self) end
  local ok, ran, res, err, events, delta = pcall(ngx.run_worker_thread, pool, "ducky.ngx", "run",
    self.id, what, ...)
  if ok and ran and res == NEED_CONFIG then
    ok, ran, res, err, events, delta = pcall(ngx.run_worker_thread, pool, "ducky.ngx", "setup",
      self.id, self.conf, what, ...)
  end
  if not ok or not ran then
    return nil, { kind = "config", message = ("ducky.ngx: thread pool '%s': %s"):format(pool,
      tostring(ok and res or ran)) }
  end
  if delta then add_stats(self, delta) end
  if events then log_events(self, events) end
  return res, err
end

-- opts with the time spent queued taken off its timeout (a copy: the
-- caller's table is left alone).
local function remaining(opts, timeout, waited)
  if waited <= 0 then return opts end
  local o = {}
  for k, v in pairs(opts or {}) do o[k] = v end
  o.timeout = math.max(timeout - waited, 0.001)
  return o
end

-- A leader holds a slot: it runs its call, with the request() calls of its
-- configuration waiting in the queue when it is one (BATCH_MAX at most),
-- gives each its answer and hands the slot over.
local function lead(P, job)
  local self = job.api
  local now = ngx.now()
  local batch, until_ = { job }, job.deadline
  if job.what == "request" then
    for i = P.first, P.last do
      local j = P[i]
      if #batch >= BATCH_MAX then break end
      if j and j.state == "queued" and j.api == self and j.what == "request" then
        j.state, P[i] = "running", false
        batch[#batch + 1] = j
        if j.deadline > until_ then until_ = j.deadline end
      end
    end
  end
  job.state = "running"
  P.leases[job] = until_ + LEASE_GRACE
  if #batch == 1 then
    local at = OPTS_AT[job.what] -- the queue time comes off the call's timeout
    if at then job[at] = remaining(job[at], job.timeout, now - job.start) end
    job.res, job.err = in_pool(self, job.what, unpack(job, 1, job.n))
  else
    local list = {}
    for i, j in ipairs(batch) do
      list[i] = { j[1], j[2], remaining(j[3], j.timeout, now - j.start) }
    end
    local results, err = in_pool(self, "batch", list, { concurrency = #list,
      timeout = math.max(until_ - now, 0.001) })
    for i, j in ipairs(batch) do
      local r = results and results[i]
      if r then
        j.res, j.err = r.res, r.err
      elseif err and err.kind == "config" and not err.message:find("not found", 1, true) then
        -- the batch failed as a whole (one call's arguments, say): each on its own
        j.res, j.err = in_pool(self, "request", list[i][1], list[i][2], list[i][3])
      else
        j.res, j.err = nil, err
      end
      if j ~= job then
        j.state = "done"
        j.sema:post(1)
      end
    end
    count(self, "batched", #batch)
  end
  job.state = "done"
  if P.leases[job] then
    P.leases[job] = nil
    hand_over(P)
  end
  return job.res, job.err
end

-- Runs OPS[what](…) in the pool within `timeout` seconds, queue time included.
local function submit(self, method, timeout, what, ...)
  if type(timeout) ~= "number" then error("ducky.ngx: " .. method .. ": timeout must be a number", 3) end
  local P = pool_state(self)
  local now = ngx.now()
  local job = { api = self, what = what, n = select("#", ...), start = now, timeout = timeout,
    deadline = now + timeout, ... }
  if P.free <= 0 then reap(P, self.pool) end
  if P.free > 0 and not queued_head(P) then
    P.free = P.free - 1
    return lead(P, job)
  end
  count(self, "queued")
  job.state = "queued"
  semaphore = semaphore or require("ngx.semaphore")
  job.sema = semaphore.new(0)
  P.last = P.last + 1
  P[P.last] = job
  job.sema:wait(timeout)
  if job.state == "lead" then
    ngx.update_time()
    local waited = ngx.now() - job.start
    if waited >= timeout then -- handed a slot as its time ran out
      P.leases[job] = nil
      hand_over(P)
    else
      return lead(P, job)
    end
  elseif job.state == "done" then
    return job.res, job.err
  end
  local running = job.state == "running"
  job.state = "cancelled"
  count(self, "queue_timeouts")
  return nil, { kind = "timeout", retryable = true, message = running
    and ("api:%s() timed out after %g s: its batch in pool '%s' did not end in time")
      :format(method, timeout, self.pool)
    or ("api:%s() timed out after %g s waiting in the queue for a thread of pool '%s' (at most"
      .. " %d calls in flight per worker: the threads option)"):format(method, timeout, self.pool,
      pool_size(self)) }
end

local function api_call(self, method, what, ...)
  local res, err = submit(self, method, self.timeout, what, ...)
  if res == nil then return nil, as_error(err) end
  return res
end

-- ---- the public methods ----

function Api:request(method, path, opts)
  phase_check("request")
  local timeout = type(opts) == "table" and opts.timeout or self.timeout
  local res, err = submit(self, "request", timeout, "request", method, path, opts)
  if res == nil then return nil, as_error(err) end
  return as_result(res)
end

function Api:ping()
  phase_check("ping")
  return as_result(api_call(self, "ping", "ping"))
end

function Api:ping_protected()
  phase_check("ping_protected")
  return as_result(api_call(self, "ping_protected", "ping_protected"))
end

function Api:batch(requests, opts)
  phase_check("batch")
  local timeout = type(opts) == "table" and opts.timeout or self.timeout
  local list, err = submit(self, "batch", timeout, "batch", requests, opts)
  if list == nil then return nil, as_error(err) end
  for _, r in ipairs(list) do
    if r.err then r.err = as_error(r.err) else as_result(r.res) end
  end
  return list
end

-- access_token, seconds_left, { source, fingerprint } or nil, err
function Api:token()
  phase_check("token")
  local t, err = api_call(self, "token", "token")
  if not t then return nil, err end
  return t[1], t[2], t[3]
end

-- Drops the token from the dict and this worker. With a token (or its
-- "Bearer …" header value), only if the dict still holds that very token: a
-- late 401 must not discard a token another request just refreshed.
function Api:invalidate(token)
  phase_check("invalidate")
  if token ~= nil then
    if type(token) ~= "string" then error("ducky.ngx: invalidate: token must be a string", 2) end
    token = token:gsub("^[Bb]earer%s+", "")
    local entry = self:cached_entry()
    if entry and entry.token ~= token then return true end
  end
  return api_call(self, "invalidate", "invalidate")
end

-- The key under which the C core keeps this configuration's token (a hash of
-- the credentials, as this worker's environment gives them): client:cache_key()
-- of a client made, and closed, here.
function Api:cache_key()
  if self.key == nil and self.dict then
    ducky = ducky or require("ducky")
    local o = {}
    for k, v in pairs(self.conf.copts) do o[k] = v end
    o.token_cache = false
    local c = ducky.client(o)
    local key = c:cache_key()
    c:close()
    self.key = key or false
    self.gen_key = key and gen_key(key)
  end
  return self.key or nil
end

-- The dict's token for this configuration, decoded once per change:
-- { token, bearer, expires_at, refresh_at } or nil. A change bumps the
-- generation counter beside it, so an unchanged token costs one number read.
function Api:cached_entry()
  local key = self.key
  if key == nil then key = self:cache_key() end
  if not key then return nil end
  local dict = self.dict
  local gen = dict:get(self.gen_key)
  if gen == self.gen and self.entry then return self.entry end
  self.gen, self.entry = gen, nil
  local raw = dict:get(key)
  if raw == nil then return nil end
  local ok, e = pcall(require("cjson").decode, raw)
  if not (ok and type(e) == "table" and type(e.access_token) == "string"
    and type(e.expires_at) == "number") then return nil end
  local life = type(e.expires_in) == "number" and e.expires_in or e.expires_at - ngx.time()
  self.entry = { token = e.access_token, bearer = "Bearer " .. e.access_token,
    expires_at = e.expires_at, refresh_at = math.min(self.conf.refresh_at, life / 2) }
  return self.entry
end

local tick

local function kick_refresh(self)
  if not self.refreshing then
    self.refreshing = true
    ngx.timer.at(0, tick, self)
  end
end

-- The slow path of authorization(): a token that changed, is near its
-- refresh, or is missing.
local function authorization(self, set)
  local e = self:cached_entry()
  if e then
    local now = ngx.now()
    local left = e.expires_at - now
    if left > SAFETY then
      if left <= e.refresh_at then kick_refresh(self) end -- the timer is late, or off
      count(self, "authorization_hits")
      return e.bearer
    end
  end
  count(self, "authorization_misses")
  if set then
    if self.dict then kick_refresh(self) end
    return nil, as_error{ kind = "auth", message = ("no token in lua_shared_dict '%s' yet, and the"
      .. " set phase cannot wait for one: a fetch has started"):format(tostring(self.dict_name)) }
  end
  local tok, err = submit(self, "authorization", self.timeout, "bearer", self.key or nil)
  if not tok then return nil, as_error(err) end
  return "Bearer " .. tok
end

-- "Bearer <token>" for an Authorization header, or nil, err. A token in the
-- dict is read in the event loop; only a miss goes to the pool. In
-- set_by_lua, which cannot wait, a miss gives nil and an error at once (and
-- starts a fetch in the background). The fast path: the token this worker
-- decoded last is still the dict's (its generation did not move) and far from
-- its refresh.
function Api:authorization()
  local phase = get_phase()
  local set = phase == "set"
  if not CALL_PHASES[phase] and not set then phase_error("authorization", phase) end
  local e = self.entry
  if e and self.dict:get(self.gen_key) == self.gen then
    local now = now_()
    if e.expires_at - now > e.refresh_at then
      local counts = self.counts
      counts.authorization_hits = (counts.authorization_hits or 0) + 1
      if now - self.flushed_at >= 1 then flush(self) end
      return e.bearer
    end
  end
  return authorization(self, set)
end

-- One background refresh check: when the dict's token is near its refresh
-- margin (or missing), one worker at a time takes the refresh lock and has the
-- token refreshed in the pool; requests keep the current token meanwhile.
tick = function(premature, self)
  if premature then return end
  local key = self:cache_key()
  if not key then self.refreshing = false return end
  local e = self:cached_entry()
  if e and e.expires_at - ngx.now() > e.refresh_at then
    self.refreshing = false
    return
  end
  local owner = owner_value()
  if not self.dict:add(refresh_key(key), owner, self.timeout + 5) then
    self.refreshing = false
    return -- another worker is at it
  end
  local t, err = submit(self, "refresh", self.timeout, "refresh")
  unlock(self.dict, refresh_key(key), owner)
  self.refreshing = false
  if t then
    count(self, "background_refreshes")
    if self.log_level then
      ngx.log(self.log_level, "ducky: background refresh: token has ", math.floor(t[1]), " s left")
    end
  else
    local lvl = (err and err.kind == "config") and ngx.ERR or ngx.WARN
    ngx.log(lvl, "ducky: background refresh failed: ", err and err.message or "?")
  end
end

-- For init_worker_by_lua: learns the cache key and starts the refresh timer.
function Api:init_worker()
  local phase = ngx.get_phase()
  if phase ~= "init_worker" then
    error(("ducky.ngx: api:init_worker() belongs in init_worker_by_lua, not the %s phase")
      :format(phase), 2)
  end
  if not self.dict or not self.interval then return true end
  self:cache_key()
  self.refreshing = true
  assert(ngx.timer.at(0, tick, self))
  assert(ngx.timer.every(self.interval, function(premature)
    flush(self)
    if pools[self.pool] then reap(pools[self.pool], self.pool) end
    if not self.refreshing then
      self.refreshing = true
      tick(premature, self)
    end
  end))
  return true
end

-- This worker's counts, and `all`: the same summed over every worker (the dict
-- keeps them; another worker's reach it within a second). Fields of
-- client:stats() plus queued, batched, queue_timeouts, authorization_hits,
-- authorization_misses, background_refreshes.
function Api:stats()
  local mine, all = {}, {}
  for _, list in ipairs{ CLIENT_STATS, LOOP_STATS } do
    for _, name in ipairs(list) do
      mine[name], all[name] = self.counts[name] or 0, 0
    end
  end
  mine.rate_limit, all.rate_limit = self.rate_limit or {}, {}
  mine.all = all
  if not self.dict then
    for name, v in pairs(mine) do
      if type(v) == "number" then all[name] = v end
    end
    return mine
  end
  flush(self)
  local prefix = stat_prefix(self.id)
  for _, k in ipairs(self.dict:get_keys(0)) do
    if k:sub(1, #prefix) == prefix then
      local name = k:sub(#prefix + 1):match("^%d+:(.+)$")
      local v = name and self.dict:get(k)
      if type(v) == "number" and all[name] then all[name] = all[name] + v end
    end
  end
  local rl = self.dict:get(prefix .. "rate_limit")
  if rl then
    local ok, t = pcall(require("cjson").decode, rl)
    if ok and type(t) == "table" then all.rate_limit = t end
  end
  return mine
end

function Api:__tostring()
  return ("ducky.ngx (pool %s, dict %s, %d threads)"):format(self.pool,
    tostring(self.dict_name), pool_size(self))
end

-- ---- new{} ---------------------------------------------------------------------

-- Raises, in ducky's words, for a value that cannot cross into the pool's VMs.
local function check_plain(v, path, seen)
  local t = type(v)
  if t == "function" or t == "userdata" or t == "thread" then
    local hint = ""
    if path == "log" then
      hint = " (events go to nginx's error log: set log_level)"
    end
    error(("ducky.ngx: option '%s' must be plain data, not a %s: options cross into the"
      .. " thread pool's Lua VMs, which only take strings, numbers, booleans and tables of them%s")
      :format(path, t, hint), 0)
  elseif t == "table" then
    if seen[v] then error(("ducky.ngx: option '%s' holds a cycle"):format(path), 0) end
    seen[v] = true
    for k, x in pairs(v) do
      check_plain(k, path .. " key", seen)
      check_plain(x, path .. "." .. tostring(k), seen)
    end
    seen[v] = nil
  end
end

local function config_key(copts, dict)
  local names = {}
  for k in pairs(copts) do names[#names + 1] = k end
  table.sort(names)
  local cjson = require("cjson")
  local parts = { tostring(dict) }
  for _, k in ipairs(names) do
    local v = copts[k]
    parts[#parts + 1] = k .. "=" .. (type(v) == "table" and cjson.encode(v) or tostring(v))
  end
  return table.concat(parts, "\0")
end

local function ngx_option(opts, name, kind, check, what)
  local v = opts[name]
  if v == nil then return nil end
  if type(v) ~= kind or (check and not check(v)) then
    error(("ducky.ngx: option '%s' must be %s"):format(name, what), 0)
  end
  return v
end

local function new(opts)
  if opts == nil then opts = {} end
  if type(opts) ~= "table" then error("ducky.ngx: options must be a table", 0) end
  for k, v in pairs(opts) do
    if type(k) ~= "string" then error("ducky.ngx: option names must be strings", 0) end
    if k == "token_cache" then
      error("ducky.ngx: option 'token_cache' is not for nginx: tokens live in the"
        .. " lua_shared_dict named by shared_dict", 0)
    end
    check_plain(v, k, {})
  end
  local pool = ngx_option(opts, "pool", "string", function(s) return s ~= "" end,
    "a thread_pool name") or DEFAULT_POOL
  local dict_name = opts.shared_dict
  if dict_name == nil then dict_name = DEFAULT_DICT end
  if dict_name ~= false and (type(dict_name) ~= "string" or dict_name == "") then
    error("ducky.ngx: option 'shared_dict' must be a lua_shared_dict name or false", 0)
  end
  local threads = ngx_option(opts, "threads", "number",
    function(n) return n >= 1 and n <= 65536 and n % 1 == 0 end,
    "a whole number from 1 to 65536")
  if threads and pool_threads[pool] and pool_threads[pool] ~= threads then
    error(("ducky.ngx: pool '%s' was given threads = %d by an earlier new{}, not %d: the pool's"
      .. " calls share one limit per worker"):format(pool, pool_threads[pool], threads), 0)
  end
  local level = opts.log_level
  if level == nil then level = "info" end
  if level ~= false and not LOG_LEVELS[level] then
    error("ducky.ngx: option 'log_level' must be one of debug, info, notice, warn, error, crit,"
      .. " alert, emerg, or false", 0)
  end
  local interval = opts.refresh_interval
  if interval == nil then interval = DEFAULT_INTERVAL end
  if interval ~= false and (type(interval) ~= "number" or not (interval >= 0.01 and interval <= 3600)) then
    error("ducky.ngx: option 'refresh_interval' must be a number of seconds (0.01 to 3600) or false", 0)
  end

  local copts = {}
  for k, v in pairs(opts) do
    if not NGX_OPTIONS[k] then copts[k] = v end
  end
  -- the same checks, and messages, as ducky.client: make one and close it at once
  local check = {}
  for k, v in pairs(copts) do check[k] = v end
  check.token_cache = false
  local made, client = pcall(require("ducky").client, check)
  if not made then error(client, 0) end
  client:close()

  local dict = dict_name and ngx.shared[dict_name]
  if dict_name and not dict then
    error(("ducky.ngx: lua_shared_dict '%s' is not configured: add `lua_shared_dict %s 1m;` to"
      .. " the http block, or set shared_dict = false"):format(dict_name, dict_name), 0)
  end
  pool_threads[pool] = pool_threads[pool] or threads
  local timeout = copts.timeout or 30
  -- the background refresh comes this long before expiry: ahead of the margin
  -- the requests' clients refresh at, by two timer ticks and some
  local refresh_at = (copts.refresh_margin or 60) + 2 * (interval or 0) + 5
  local id = ngx.md5(config_key(copts, dict_name))
  return setmetatable({
    id = id, pool = pool, dict_name = dict_name or nil, dict = dict or nil,
    counts = {}, flushed_at = 0,
    timeout = timeout, interval = interval or nil,
    log_level = level and ngx[LOG_LEVELS[level]] or nil,
    conf = { id = id, copts = copts, dict = dict_name or nil,
      refresh_at = refresh_at, lock_ttl = timeout + 5 },
  }, Api)
end

-- opts: ducky.client options (plain data), plus pool (thread pool name,
-- "ducky"), shared_dict (lua_shared_dict for tokens, "ducky_tokens"; false:
-- none), threads (pool calls in flight per worker, 10), log_level ("info";
-- false: no events logged) and refresh_interval (seconds between background
-- refresh checks, 1; false: no timer). Raises for a bad option.
function M.new(opts)
  local ok, api = pcall(new, opts)
  if not ok then error(api, 2) end
  return api
end

return M
