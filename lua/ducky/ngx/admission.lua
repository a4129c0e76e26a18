-- ducky.ngx.admission: admission control, per worker and thread pool (worker
-- side). Calls wait in a FIFO queue, each on its own ngx.semaphore, and
-- runners take them to the pool: at most `threads` runners per pool, each a
-- timer that lives as long as the worker and holds one pool thread while it
-- runs. A call wakes an idle runner (or starts one); the runner wakes at the
-- end of the event loop's iteration, so the calls that arrived in that
-- iteration go to the pool together: the request() calls of one
-- configuration as one client:batch (libcurl's multi interface: one thread
-- and one hop for them all), a saturated worker spending its threads and its
-- CPU on HTTP rather than on thread hops. Calls that find every runner busy
-- wait for the first that is done. A runner never belongs to a request, so a
-- request that goes away never takes a thread with it.
local ngx = ngx
local semaphore = require("ngx.semaphore")
local shared = require("ducky.ngx.shared")
local stats = require("ducky.ngx.stats")
local log = require("ducky.ngx.log")
local steady = require("ducky.ngx.steady")

local unpack = unpack or table.unpack

local M = {}

local DEFAULT_THREADS = 10 -- lua_worker_thread_vm_pool_size's default
local BATCH_MAX = 32 -- request() calls that one pool thread runs together
-- Calls to a varying path go in streams; one stream per configuration
-- listens: its runner comes back from its VM this often at most, with the
-- calls queued meanwhile, so that such calls need no runner of their own.
-- The others come back when one of their calls ends (or after IDLE_WAIT).
local STREAM_WAIT = 0.002
local STALE = 1 -- a listener not back for this long is taken over
local IDLE_WAIT = 1 -- an idle runner looks this often whether nginx is exiting
-- A runner's timer that has not run after this long never will (nginx drops
-- timers past lua_max_running_timers); the calls then run where they are made.
local START_WAIT = 1
local NO_TIMERS = 60 -- then no runner is tried for this long
-- A call in the pool ends by its own timeout (the pool's client keeps it); its
-- caller waits this much longer for the answer before it gives up.
local RUN_GRACE = 2
local OPTS_AT = { request = 3, batch = 2 } -- where a call's opts are among its arguments
local TIMEOUT_ARG = { ping = true, ping_protected = true } -- given the time left as an argument

local pools = {} -- pool name -> admission state, made in each worker on first use
-- Semaphores of calls that ended, for the next calls (making one costs an
-- allocation in C and a finalizer for the GC): one whose post its caller took.
local spare, SPARE_MAX = {}, 256
local pool_threads = {} -- pool name -> the threads given by new{}
local streaming, stream_ids = {}, 0 -- id -> a streamed call under way in a pool VM

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
    -- runners: running; pending: made, their timers not run yet (since
    -- pending_at); idle: waiting on wake; kicked: wake posted, not yet taken
    P = { name = pool, size = M.size(pool), runners = 0, pending = 0, idle = 0, kicked = false,
      wake = semaphore.new(0), first = 1, last = 0, draining = 0, timers_at = 0 }
    pools[pool] = P
  end
  return P
end

-- The first call waiting in the queue; a call past its deadline is skipped
-- (it times out on its own), so a thread never goes to a call that cannot use it.
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

-- Takes job, and with it the request() calls waiting in the queue that may
-- share its batch (BATCH_MAX in all at most: its configuration, method and
-- path, a steady one, see ducky.ngx.steady), out of the queue; marks them
-- running. Returns them and the latest of their deadlines.
local function gather(P, job)
  P[P.first] = nil
  P.first = P.first + 1
  job.state = "running"
  local batch, until_ = { job }, job.deadline
  local api, method, path = job.api, job[1], job[2]
  if job.what ~= "request" or not steady.steady(api, path) then return batch, until_ end
  for i = P.first, P.last do
    local j = P[i]
    if #batch >= BATCH_MAX then break end
    if j and j.state == "queued" and j.api == api and j.what == "request" and j[2] == path
        and j[1] == method then
      j.state, P[i] = "running", false
      batch[#batch + 1] = j
      if j.deadline > until_ then until_ = j.deadline end
    end
  end
  return batch, until_
end

-- Runs a batch of request() calls as one client:batch and gives each its
-- answer. A batch that raised (one call's arguments) reruns each alone.
local function run_batch(api, batch, until_, now)
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
  end
  stats.count(api, "batched", #batch)
  stats.count(api, "batches")
end

local call_runner

-- Gives a call taken from the queue its answer (a caller that stopped
-- waiting is left alone).
local function answer(j, res, err)
  if j.state == "running" then
    j.res, j.err, j.state = res, err, "done"
    j.sema:post(1)
  end
end

-- Whether job goes in a stream: a request() call to a path that varies
-- widely (ducky.ngx.steady), which must not wait for its batch-mates.
local function streams(job)
  return job.what == "request" and not steady.steady(job.api, job[2])
end

-- Whether every thread of the pool is taken (no runner idle, none may
-- start): calls to a varying path then share threads in streams; until
-- then each goes alone, one hop and no wait.
local function full(P)
  return P.idle == 0 and P.runners + P.pending >= P.size
end

-- Takes up to `room` queued calls of api that go in a stream out of the
-- queue into `into`, marked running.
local function take_streamed(P, api, room, into)
  local now = ngx.now()
  for i = P.first, P.last do
    if room <= 0 then break end
    local j = P[i]
    if j and j.state == "queued" and j.api == api and j.deadline > now and streams(j) then
      j.state, P[i] = "running", false
      into[#into + 1] = j
      room = room - 1
    end
  end
  return into
end

-- Runs job and the calls that may share its stream: each starts in a pool
-- VM as an operation and answers as soon as it ends; the runner comes
-- straight back to that VM (nginx hands out the VM freed last: no yield
-- comes in between) with the calls queued meanwhile, BATCH_MAX under way at
-- most, until none is. A call's answer reaches it whichever stream's runner
-- finds it ended.
local function stream(P, job)
  local api, chain, vm = job.api, { left = 0 }, nil
  P[P.first] = nil
  P.first = P.first + 1
  job.state = "running"
  local jobs, left = take_streamed(P, api, BATCH_MAX - 1, { job }), 0
  while #jobs > 0 or left > 0 do
    local list, now = {}, ngx.now()
    for i, j in ipairs(jobs) do
      stream_ids = stream_ids + 1
      streaming[stream_ids], j.sent, j.chain = j, now, chain
      list[i] = { stream_ids, j[1], j[2], remaining(j[3], j.timeout, now - j.start) }
    end
    stats.count(api, "streamed", #jobs)
    if queued_head(P) then call_runner(P) end -- more waits than this stream takes
    local listener = api.listener
    if not listener or now - listener.at > STALE then api.listener, listener = chain, chain end
    chain.at = now
    local out, err = M.in_pool(api, "stream", list, listener == chain and STREAM_WAIT or IDLE_WAIT)
    now = ngx.now()
    if not out then -- the pool failed: this stream's calls end with its error (their
      -- operations, left in the VM, end unseen or reach the next stream there)
      for id, j in pairs(streaming) do
        if j.chain == chain then
          streaming[id] = nil
          answer(j, nil, err)
        end
      end
      break
    end
    if vm and out.vm ~= vm then
      log.once(P, "stream", ngx.ERR, ("pool '%s': a stream came back to another Lua VM:"
        .. " its calls answer late (this nginx hands out VMs another way)"):format(P.name))
    end
    vm, left = out.vm, out.left
    chain.left = left
    for _, e in ipairs(out.ended) do
      local j = streaming[e[1]]
      if j then
        streaming[e[1]] = nil
        steady.record(api, j[2], now - j.sent)
        answer(j, e[2], e[3])
      end
    end
    jobs = left < BATCH_MAX and take_streamed(P, api, BATCH_MAX - left, {}) or {}
  end
  if api.listener == chain then api.listener = nil end
end

-- Whether a listening stream will take job at its next return (then no
-- runner need come for it).
local function listened(P, job)
  local l = streams(job) and full(P) and job.api.listener
  return l and l.left < BATCH_MAX and ngx.now() - l.at <= STALE
end

-- Runs a job taken from the queue, with its batch, and gives each call its
-- answer (a caller that stopped waiting is left alone).
local function run(batch, until_)
  local job = batch[1]
  local now = ngx.now()
  if #batch == 1 then
    local at = OPTS_AT[job.what] -- the queue time comes off the call's timeout
    if at then
      job[at] = remaining(job[at], job.timeout, now - job.start)
    elseif TIMEOUT_ARG[job.what] and now > job.start then
      job[1], job.n = math.max(job.timeout - (now - job.start), 0.001), 1
    end
    job.res, job.err = M.in_pool(job.api, job.what, unpack(job, 1, job.n))
  else
    run_batch(job.api, batch, until_, now)
  end
  if job.what == "request" then steady.record(job.api, job[2], ngx.now() - now) end
  for _, j in ipairs(batch) do answer(j, j.res, j.err) end
end


-- A runner: takes what waits in the queue to the pool, batch by batch, and
-- waits to be woken when the queue is empty. It lives as long as the worker
-- (a timer); when nginx exits, it ends once the queue is empty.
local function serve(P, premature)
  while true do
    local job = queued_head(P)
    if job and streams(job) and full(P) then
      stream(P, job)
    elseif job then
      local batch, until_ = gather(P, job)
      if queued_head(P) then call_runner(P) end -- more than a batch waits: another runner
      run(batch, until_)
    elseif premature or ngx.worker.exiting() then
      return
    else
      P.idle = P.idle + 1
      local posted = P.wake:wait(IDLE_WAIT)
      P.idle = P.idle - 1
      if posted then P.kicked = false end
    end
  end
end

local function runner(premature, P)
  P.pending = math.max(P.pending - 1, 0)
  P.runners = P.runners + 1
  local ok, err = pcall(serve, P, premature)
  P.runners = P.runners - 1
  if not ok then
    ngx.log(ngx.ERR, "ducky: a runner of pool '", P.name, "' failed: ", tostring(err))
    if queued_head(P) then call_runner(P) end
  end
end

local function no_timer(P, why)
  log.once(P, "runner", ngx.ERR, ("pool '%s': a runner's timer %s: give lua_max_running_timers"
    .. " room for %d more (the pool's threads)"):format(P.name, why, P.size))
end

-- Sees to it that a runner looks at the queue at the end of this iteration
-- of the event loop: an idle one woken, one starting, or a new one started
-- while the pool has room; false when none ever will (no runner, and none
-- can start).
call_runner = function(P)
  if P.kicked then return true end
  if P.idle > 0 then
    P.kicked = true
    P.wake:post(1)
    return true
  end
  local now = ngx.now()
  if P.pending > 0 then
    if now - P.pending_at < START_WAIT then return true end
    P.pending = 0 -- their timers never ran: nginx ran out of running timers
    P.timers_at = now + NO_TIMERS
    no_timer(P, "did not run")
  end
  if P.runners >= P.size then return true end -- all busy: the first done takes the queue
  if now < P.timers_at or ngx.worker.exiting() then return P.runners > 0 end
  local ok, err = ngx.timer.at(0, runner, P)
  if not ok then
    P.timers_at = now + NO_TIMERS
    no_timer(P, "could not be made (" .. tostring(err) .. ")")
    return P.runners > 0
  end
  P.pending, P.pending_at = P.pending + 1, now
  return true
end

local function queue_timeout(api, method, timeout, running)
  stats.count(api, "queue_timeouts")
  return nil, { kind = "timeout", retryable = true, message = running
    and ("api:%s() timed out after %g s: the pool '%s' did not answer in time")
      :format(method, timeout, api.pool)
    or ("api:%s() timed out after %g s waiting in the queue for a thread of pool '%s' (at most"
      .. " %d calls in flight per worker: the threads option)"):format(method, timeout, api.pool,
      M.size(api.pool)) }
end

-- With `lua_check_client_abort on`, a client that goes away: its call leaves
-- the queue at once, a call in the pool finishes first; then the request
-- ends with 499, as nginx would end it without this handler. (A request has
-- one on_abort handler: when its code set its own, ducky's is not set, and
-- a queued call of a request killed by it runs for nobody.)
local function aborted(job)
  local state = job.state
  if state == "queued" then
    job.state = "aborted"
    job.sema:post(1)
  elseif state == "running" then
    job.aborted = true
  else
    return ngx.exit(499)
  end
end

-- One handler per request, for every call its light threads wait on now
-- (ngx.ctx.ducky_jobs: job -> true, each taken out when it ends).
local function on_abort()
  local waiting = false
  for job in pairs(ngx.ctx.ducky_jobs or {}) do
    if job.state == "queued" or job.state == "running" then
      waiting = true
      aborted(job)
    end
  end
  if not waiting then return ngx.exit(499) end
end

-- The handler is set by a request's first call; ngx.ctx (the request's own
-- table, dear to make) is touched only where the handler is ducky's: with
-- `lua_check_client_abort off`, nginx refuses it and nothing else happens.
local function watch_abort(job)
  if ngx.get_phase() == "timer" then return end
  local ok, set, err = pcall(ngx.on_abort, on_abort)
  -- luacheck: push ignore 122
  if not ok then return end
  local jobs
  if set then
    jobs = {}
    ngx.ctx.ducky_jobs = jobs
  elseif err == "duplicate call" then -- ours, from an earlier call, or the request's own
    jobs = ngx.ctx.ducky_jobs
  end
  if jobs then
    jobs[job] = true
    job.jobs = jobs
  end
  -- luacheck: pop
end

local function ended(job)
  if job.aborted or job.state == "aborted" then return ngx.exit(499) end
  return job.res, job.err
end

-- No runner takes the queue (nginx ran no timer for one): callers take it
-- themselves, `threads` of them at most; the others wait for them.
local function take_queue(P, new)
  if (new and listened(P, new)) or call_runner(P) or P.draining >= P.size then return end
  P.draining = P.draining + 1
  local ok, err = pcall(function()
    local job = queued_head(P)
    while job do
      run(gather(P, job))
      job = queued_head(P)
    end
  end)
  P.draining = P.draining - 1
  if not ok then error(err, 0) end
end

-- Waits for the call's answer: until its deadline while it is queued
-- (looking every START_WAIT whether a runner is coming), and RUN_GRACE past
-- it once a runner took it (the call ends by its own timeout).
local function wait(api, P, job, method)
  local sema = job.sema
  local posted = false
  while job.state == "queued" do
    local left = job.deadline - ngx.now()
    -- under 1 ms left is over: the semaphore counts whole milliseconds, and a
    -- wait of 0 returns at once, with ngx.now() standing still until a yield
    if left < 0.001 then break end
    posted = sema:wait(math.min(left, START_WAIT))
    if not posted and job.state == "queued" then take_queue(P) end
  end
  local state = job.state
  if state == "running" then
    posted = sema:wait(math.max(job.deadline - ngx.now(), 0) + RUN_GRACE)
    state = job.state
  elseif not posted then -- done by take_queue(), or aborted: its post is there to take
    posted = sema:wait(0)
  end
  if posted and #spare < SPARE_MAX then spare[#spare + 1] = sema end -- nothing more will post it
  if job.jobs then job.jobs[job] = nil end
  if state == "done" or state == "aborted" then return ended(job) end
  job.state = "cancelled"
  return queue_timeout(api, method, job.timeout, state == "running")
end

-- Runs the pool op `what`(…) within `timeout` seconds, queue time included.
function M.submit(api, method, timeout, what, ...)
  local P = pool_state(api.pool)
  local now = ngx.now()
  local job = { api = api, what = what, n = select("#", ...), start = now, timeout = timeout,
    deadline = now + timeout, state = "queued", sema = table.remove(spare) or semaphore.new(0), ... }
  watch_abort(job)
  if P.idle == 0 and P.runners + P.pending >= P.size then stats.count(api, "queued") end
  P.last = P.last + 1
  P[P.last] = job
  take_queue(P, job)
  return wait(api, P, job, method)
end

return M
