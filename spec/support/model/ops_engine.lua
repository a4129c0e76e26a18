-- The random model's ops on the engine (spec/support/model/model.lua):
-- operations started, then stepped at random moments, cancelled, let go of
-- and collected, their client closed or called blocking while they are under
-- way (issue 20 §1); and outages of the token endpoint of random length at
-- random moments, with time moved, never waited for (issue 19 §A).
local U = require("spec.support.model.util")
local World = require("spec.support.model.world")
local C = require("spec.support.model.check")
local Ho = require("spec.support.model.hostile")
local H = require("spec.helpers")
local ducky = require("ducky")
local socket = require("socket")

local is_closed = U.is_closed
local expect, new_ctx = C.expect, Ho.new_ctx

-- One started call: its request and op (nil: start returned nil, err).
local function start_one(self, cl, slot)
  local rq = self:gen_request(cl, true)
  self:api_fault(rq)
  local ok, op, err = pcall(cl.c.start, cl.c, rq.sent_method, rq.path, rq.opts)
  slot.rq, slot.ok, slot.op, slot.err = rq, ok, op, err
  slot.deadline = socket.gettime() + rq.timeout + 2
end

-- Waits on the client's descriptor a little, as a host loop would, and
-- steps; or, one time in three, lets step(budget) wait in C.
local function wait_and_step(self, cl, budget)
  if self.r:int(1, 3) == 1 then
    local n = cl.c:step(budget)
    self:check(type(n) == "number" and n >= 0 and n % 1 == 0, "%s step(%g) gave %s", cl.name, budget,
      tostring(n))
    return
  end
  local fd = cl.c:pollfd()
  local t = cl.c:timeout()
  socket.select({ { getfd = function() return fd end } }, nil, math.min(t or budget, budget))
  cl.c:step()
end

local function all_done(slots)
  for _, s in ipairs(slots) do
    if s.op and not s.dropped and not s.op:done() then return false end
  end
  return true
end

-- One random move while the operations are under way.
local function move(self, cl, slots, ctx)
  local i = self.r:int(1, #slots)
  local s = slots[i]
  local what = self.r:int(1, 20)
  if what <= 13 then
    wait_and_step(self, cl, self.r:pick({ 0, 0.01, 0.05 }))
  elseif what <= 15 and s.op and not s.dropped then
    if not s.op:done() then s.cancelled = true end
    s.op:cancel()
  elseif what <= 17 and s.op and not s.dropped then
    s.op, s.dropped = nil, true -- let go of: the collector cancels it
    collectgarbage()
  elseif what == 18 then
    local res, err = cl.c:ping() -- a blocking call drives the others too
    self:check(res or err, "%s ping between operations: nothing", cl.name)
  elseif what == 19 and self.r:chance(0.15) then
    ctx.may_close[cl] = true
    if not all_done(slots) then cl.cred.abandoned = cl.cred.abandoned + 1 end
    cl.c:close()
    cl.closed = true
    self:note("  %s closed with operations under way", cl.name)
  end
end

function World:check_slot(cl, s, where)
  if not s.ok then -- start raised: only on a closed client
    self:check(tostring(s.op):find("closed", 1, true) and cl.closed, "%s: start raised %s", where,
      tostring(s.op))
    return
  end
  if s.dropped then return end
  local res, err = nil, s.err -- start's nil, err: what request() would give
  if s.op then
    self:check(s.op:done(), "%s: not done after its deadline", where)
    res, err = s.op:result()
    if (s.cancelled or cl.closed) and err and err.kind == "cancelled" then return end
  end
  local saved = cl.closed
  cl.closed = false -- check_answer refuses answers of a closed client; these came before
  self:check_answer(s.rq, expect(s.rq), new_ctx(), true, res, err, where)
  cl.closed = saved
end

function World:op_async()
  local cl = self:pick_client()
  if cl.closed then return self:op_use_closed() end
  local slots, ctx = {}, new_ctx()
  for i = 1, self.r:int(1, 8) do
    slots[i] = {}
    start_one(self, cl, slots[i])
  end
  self:note("%s start %d operations", cl.name, #slots)
  local deadline = 0
  for _, s in ipairs(slots) do deadline = math.max(deadline, s.deadline) end
  while not cl.closed and not all_done(slots) do
    self:check(socket.gettime() < deadline, "%s: operations still under way after their deadline",
      cl.name)
    move(self, cl, slots, ctx)
  end
  for i, s in ipairs(slots) do self:check_slot(cl, s, ("%s operation %d/%d"):format(cl.name, i, #slots)) end
  -- a token exchange a cancelled or let-go operation led goes on in the engine:
  -- finished here, as a host loop would, not left for another client to take
  -- over (that would be one exchange more than the model counts)
  local stop = socket.gettime() + 10
  while not cl.closed and cl.c:timeout() and socket.gettime() < stop do wait_and_step(self, cl, 0.05) end
  self:check(not cl.closed or is_closed(cl.c), "%s: closed but not", cl.name)
  return ctx
end

-- An outage of the token endpoint for one credential: it fails its next k
-- exchanges. Calls every dt seconds (moved, not waited for): none is a "limit"
-- error (failures never spend the hour), the endpoint sees one try per back-off
-- step at most, and once it answers again a call succeeds within one step.
function World:op_outage()
  local good = {}
  for _, cl in ipairs(self:open_clients()) do
    if cl.cred.good and not cl.cred.risk and cl.store ~= "custom" then good[#good + 1] = cl end
  end
  if #good == 0 then return self:op_new_client() end
  local cl = self.r:pick(good)
  local k, dt = self.r:int(1, 5), self.r:pick({ 0.2, 0.5, 1, 3 })
  local jitter = self.r:pick({ 0.1, 0.5, 1 })
  self:note("%s outage: the token endpoint fails %d exchanges, a call every %s s, jitter %s", cl.name,
    k, dt, jitter)
  ducky._test.fix_jitter(jitter)
  -- a token exchange already under way (an operation let go of left it to its
  -- engine) was answered before the outage: let every client of the
  -- credential finish what it has first
  for _, other in ipairs(self:open_clients()) do
    local stop = socket.gettime() + 10
    while other.cred == cl.cred and other.c:timeout() and socket.gettime() < stop do
      wait_and_step(self, other, 0.05)
    end
  end
  cl.c:invalidate() -- the next call exchanges
  cl.cred.invalidations = cl.cred.invalidations + 1
  local before = H.token_requests(cl.cred.id).received
  H.fault{ path = "/oauth/token", client_id = cl.cred.id, status = 503, times = k,
    headers = { ["Retry-After"] = "0" } }
  cl.cred.token_faults = cl.cred.token_faults + k
  local t, back_at, calls = 0, nil, 0
  while true do
    local tok, err = cl.c:token()
    calls = calls + 1
    if tok then break end
    self:check(err.kind ~= "limit", "%s outage: a limit error: %s", cl.name, tostring(err))
    if not back_at and H.token_requests(cl.cred.id).received - before >= k then back_at = t end
    self:check(not back_at or t - back_at <= H.BACKOFF_CAP + dt,
      "%s outage: the endpoint was back at %.1f s, calls still failed at %.1f s", cl.name, back_at or 0, t)
    H.shift_clock(dt)
    t = t + dt
  end
  local tries = H.token_requests(cl.cred.id).received - before
  self:check(tries == k + 1, "%s outage: %d tries for %d failures and a success (%d calls)", cl.name,
    tries, k, calls)
  ducky._test.fix_jitter(0)
  self:note("  back after %.1f s of moved time, %d calls", t, calls)
end

return World
