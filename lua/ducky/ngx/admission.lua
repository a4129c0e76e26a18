-- ducky.ngx.admission: admission control, per worker and thread pool (worker
-- side). `free` slots (threads = … of them), and a FIFO queue of the calls
-- that wait for one, each on its own ngx.semaphore. A call that finds a free
-- slot and no queue runs at once. A call that queues waits in the event loop
-- until a slot is handed to it (it then leads) or until a leader took it into
-- its batch and it is done: the request() calls of one configuration waiting
-- in the queue go to the pool together, as one client:batch (libcurl's multi
-- interface: one thread and one hop for them all), so a saturated worker
-- spends its threads and its CPU on HTTP rather than on thread hops. A leader
-- that is done hands its slot to the first waiting call, or frees it.
local ngx = ngx
local semaphore = require("ngx.semaphore")
local shared = require("ducky.ngx.shared")
local stats = require("ducky.ngx.stats")
local log = require("ducky.ngx.log")

local unpack = unpack or table.unpack

local M = {}

local DEFAULT_THREADS = 10 -- lua_worker_thread_vm_pool_size's default
-- A slot's holder has a deadline: its calls' timeouts and this grace (its pool
-- thread is done by then). A request that goes away while its call runs (a
-- client abort nginx was told to watch, a killed light thread) never gives its
-- slot back itself; past the deadline the slot is handed over all the same.
local LEASE_GRACE = 2
local BATCH_MAX = 32 -- request() calls that one pool thread runs together
local OPTS_AT = { request = 3, batch = 2 } -- where a call's opts are among its arguments

local pools = {} -- pool name -> admission state, made in each worker on first use
local pool_threads = {} -- pool name -> the threads given by new{}

-- Records threads = n for a pool (new{}); raises when an earlier new{} gave
-- the same pool another figure.
function M.set_threads(pool, threads)
  if threads and pool_threads[pool] and pool_threads[pool] ~= threads then
    error(("ducky.ngx: pool '%s' was given threads = %d by an earlier new{}, not %d: the pool's"
      .. " calls share one limit per worker"):format(pool, pool_threads[pool], threads), 0)
  end
  pool_threads[pool] = pool_threads[pool] or threads
end

-- The calls in flight per worker for this pool: the first threads = given for it.
function M.size(pool)
  return pool_threads[pool] or DEFAULT_THREADS
end

local function pool_state(pool)
  local P = pools[pool]
  if not P then
    P = { name = pool, free = M.size(pool), first = 1, last = 0, leases = {} }
    pools[pool] = P
  end
  return P
end

-- The first call waiting in the queue; a call past its deadline is skipped
-- (it times out on its own), so a slot never goes to a call that cannot use it.
local function queued_head(P)
  local now = ngx.now()
  while P.first <= P.last do
    local j = P[P.first]
    if j and j.state == "queued" and j.deadline > now then return j end
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

-- Gives back the slots of calls whose requests went away without a word (see
-- LEASE_GRACE); looks once a second at most.
local function reap(P)
  local now = ngx.now()
  if now - (P.reaped_at or 0) < 1 then return end
  P.reaped_at = now
  local lost = {}
  for lease, deadline in pairs(P.leases) do
    if now > deadline then lost[#lost + 1] = lease end
  end
  for _, lease in ipairs(lost) do -- not inside pairs(): hand_over() adds leases
    P.leases[lease] = nil
    hand_over(P)
  end
  if #lost > 0 then
    ngx.log(ngx.WARN, "ducky: ", #lost, " call(s) of pool '", P.name, "' outlived their requests;"
      .. " their thread slots are free again")
  end
end

-- For the background timer: reaps every pool's lost slots.
function M.reap_all()
  for _, P in pairs(pools) do reap(P) end
end

local function run_worker_thread(api, fn, ...)
  return pcall(ngx.run_worker_thread, api.pool, shared.POOL_MODULE, fn, ...)
end

-- Runs the pool op `what` in a pool thread; returns its result and error (an
-- error table as it crossed). A failure of the thread pool itself (no such
-- pool, no Lua VM, the module not found) is a config error marked `pool`.
function M.in_pool(api, what, ...)
  local conf = api.conf
  if conf.log == nil then conf.log = log.wanted(api) end
  local ok, ran, res, err, events, delta = run_worker_thread(api, "run", api.id, what, ...)
  if ok and ran and res == shared.NEED_CONFIG then
    ok, ran, res, err, events, delta = run_worker_thread(api, "setup", api.id, conf, what, ...)
  end
  if not ok or not ran then
    return nil, { kind = "config", pool = true, message = ("ducky.ngx: thread pool '%s': %s")
      :format(api.pool, tostring(ok and res or ran)) }
  end
  if delta then stats.add(api, delta) end
  if events then log.events(api, events) end
  return res, err
end

-- opts with the time spent queued taken off its timeout (a copy: the
-- caller's table is left alone).
local function remaining(opts, timeout, waited)
  if waited <= 0 then return opts end
  local o = shared.copy(opts)
  o.timeout = math.max(timeout - waited, 0.001)
  return o
end

-- The request() calls of job's configuration waiting in the queue, with job
-- first (BATCH_MAX at most); marks them running. Returns them and the
-- latest of their deadlines.
local function gather(P, job)
  local batch, until_ = { job }, job.deadline
  if job.what ~= "request" then return batch, until_ end
  for i = P.first, P.last do
    local j = P[i]
    if #batch >= BATCH_MAX then break end
    if j and j.state == "queued" and j.api == job.api and j.what == "request" then
      j.state, P[i] = "running", false
      batch[#batch + 1] = j
      if j.deadline > until_ then until_ = j.deadline end
    end
  end
  return batch, until_
end

-- Runs a batch of queued request() calls as one client:batch and gives each
-- its answer. A batch that raised (one call's arguments) reruns each alone.
local function run_batch(api, job, batch, until_, now)
  local list = {}
  for i, j in ipairs(batch) do
    list[i] = { j[1], j[2], remaining(j[3], j.timeout, now - j.start) }
  end
  local results, err = M.in_pool(api, "batch", list, { concurrency = #list,
    timeout = math.max(until_ - now, 0.001) })
  for i, j in ipairs(batch) do
    local r = results and results[i]
    if r then
      j.res, j.err = r.res, r.err
    elseif err and err.raised then
      j.res, j.err = M.in_pool(api, "request", list[i][1], list[i][2], list[i][3])
    else
      j.res, j.err = nil, err
    end
    if j ~= job then
      j.state = "done"
      j.sema:post(1)
    end
  end
  stats.count(api, "batched", #batch)
end

-- A leader holds a slot: it runs its call, with the request() calls of its
-- configuration waiting in the queue when it is one, gives each its answer
-- and hands the slot over.
local function lead(P, job)
  local api = job.api
  local now = ngx.now()
  local batch, until_ = gather(P, job)
  job.state = "running"
  P.leases[job] = until_ + LEASE_GRACE
  if #batch == 1 then
    local at = OPTS_AT[job.what] -- the queue time comes off the call's timeout
    if at then job[at] = remaining(job[at], job.timeout, now - job.start) end
    job.res, job.err = M.in_pool(api, job.what, unpack(job, 1, job.n))
  else
    run_batch(api, job, batch, until_, now)
  end
  job.state = "done"
  if P.leases[job] then
    P.leases[job] = nil
    hand_over(P)
  end
  return job.res, job.err
end

local function queue_timeout(api, method, timeout, running)
  stats.count(api, "queue_timeouts")
  return nil, { kind = "timeout", retryable = true, message = running
    and ("api:%s() timed out after %g s: its batch in pool '%s' did not end in time")
      :format(method, timeout, api.pool)
    or ("api:%s() timed out after %g s waiting in the queue for a thread of pool '%s' (at most"
      .. " %d calls in flight per worker: the threads option)"):format(method, timeout, api.pool,
      M.size(api.pool)) }
end

-- With `lua_check_client_abort on`, a client that goes away: its call leaves
-- the queue at once (or gives back the slot it was handed), a call in the
-- pool ends first and gives its slot back; then the request ends with 499,
-- as nginx would end it without this handler. (A request has one on_abort
-- handler: when its code set its own, ducky's is not set, and a lost slot
-- comes back at its deadline, see reap().)
local function aborted(P, job)
  local state = job.state
  if state == "queued" then
    job.state = "aborted"
    job.sema:post(1)
  elseif state == "lead" then -- handed a slot it has not taken up yet
    P.leases[job] = nil
    job.state = "aborted"
    hand_over(P)
  elseif state == "running" then
    job.aborted = true
  else
    return ngx.exit(499)
  end
end

-- One handler per request, for the call it waits on now (ngx.ctx.ducky_job).
local function on_abort()
  local job = ngx.ctx.ducky_job
  if job then return aborted(job.P, job) end
  return ngx.exit(499)
end

local function watch_abort(P, job)
  if ngx.get_phase() == "timer" then return end
  local ctx = ngx.ctx -- the request's own table
  -- luacheck: push ignore 122
  job.P, ctx.ducky_job = P, job
  if ctx.ducky_abort == nil then ctx.ducky_abort = pcall(ngx.on_abort, on_abort) end
  -- luacheck: pop
end

local function ended(job, res, err)
  if job.aborted or job.state == "aborted" then return ngx.exit(499) end
  return res, err
end

-- Waits in the queue; what the call gets when it leaves it.
local function wait_in_queue(api, P, job, method)
  stats.count(api, "queued")
  job.state = "queued"
  job.sema = semaphore.new(0)
  P.last = P.last + 1
  P[P.last] = job
  job.sema:wait(job.timeout)
  if job.state == "lead" then
    ngx.update_time()
    if ngx.now() < job.deadline then return ended(job, lead(P, job)) end
    P.leases[job] = nil -- handed a slot as its time ran out
    hand_over(P)
  elseif job.state == "done" then
    return ended(job, job.res, job.err)
  elseif job.state == "aborted" then
    return ended(job)
  end
  local running = job.state == "running"
  job.state = "cancelled"
  return queue_timeout(api, method, job.timeout, running)
end

-- Runs the pool op `what`(…) within `timeout` seconds, queue time included.
function M.submit(api, method, timeout, what, ...)
  local P = pool_state(api.pool)
  local now = ngx.now()
  local job = { api = api, what = what, n = select("#", ...), start = now, timeout = timeout,
    deadline = now + timeout, ... }
  watch_abort(P, job)
  if P.free <= 0 then reap(P) end
  if P.free > 0 and not queued_head(P) then
    P.free = P.free - 1
    return ended(job, lead(P, job))
  end
  return wait_in_queue(api, P, job, method)
end

return M
