-- The random model's ops that call the API (spec/support/model/model.lua):
-- request, batch, ping, ping_protected, token.
local U = require("spec.support.model.util")
local World = require("spec.support.model.world")
local Ho = require("spec.support.model.hostile")
local C = require("spec.support.model.check")
local socket = require("socket")

local show, matches_any, is_closed, kindset = U.show, U.matches_any, U.is_closed, U.kindset
local HOSTILE_RAISE, TOKEN_FAULT_KINDS, SOURCES = U.HOSTILE_RAISE, U.TOKEN_FAULT_KINDS, U.SOURCES
local hostile_table, REQUEST_KEYS, new_ctx, disarm = Ho.hostile_table, Ho.REQUEST_KEYS, Ho.new_ctx, Ho.disarm
local expect = C.expect

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

-- A batch for cl: its items (each with its own faults) and options; the
-- client's concurrency wanders up and down, so the pool grows and shrinks.
function World:gen_batch(cl)
  local size = self.r:weighted(BATCH_SIZES)
  local n = size == 0 and 0 or size == 1 and self.r:int(1, 5) or size == 2 and self.r:int(6, 20)
    or self.r:int(21, 40)
  if self.r:chance(0.2) then
    cl.conc = self.r:int(1, 16)
  else
    cl.conc = math.max(1, math.min(16, cl.conc + self.r:int(-4, 6)))
  end
  local b = { n = n, list = {}, rqs = {}, btimeout = cl.opts.timeout }
  local budget = 0.5
  for i = 1, n do
    local rq = self:gen_request(cl, true)
    budget = budget - self:api_fault(rq, budget)
    b.rqs[i] = rq
    b.list[i] = { rq.sent_method, rq.path, rq.opts }
  end
  local r = self.r:float()
  if r < 0.8 then
    b.bopts = { concurrency = cl.conc }
  elseif r < 0.9 then
    b.bopts = { concurrency = cl.conc, timeout = self.r:pick({ 2, 5 }) }
    b.btimeout = b.bopts.timeout
  end
  return b
end

-- Perhaps a hostile action behind one item's options or the batch's own.
function World:batch_hostile(cl, ctx, b)
  if not self:pct("hostile") then return end
  local action = self.r:weighted(self.hostile)
  local fn = self:hostile_action(cl, ctx, action)
  if b.n > 0 and (b.bopts == nil or self.r:chance(0.6)) then
    local i = self.r:int(1, b.n)
    local key = self.r:pick(REQUEST_KEYS)
    b.list[i][3] = hostile_table(b.rqs[i].opts or {}, key, fn)
    ctx.hostile = string.format("%s@item%d.%s", action, i, key)
  else
    b.bopts = b.bopts or { concurrency = cl.conc }
    local key = self.r:pick({ "concurrency", "timeout" })
    b.bopts = hostile_table(b.bopts, key, fn)
    ctx.hostile = action .. "@" .. key
  end
end

-- The batch's outcome: ok and out as pcall returned them, after elapsed seconds.
function World:check_batch(cl, ctx, b, ok, out, elapsed)
  local where = cl.name .. " batch"
  if not ok then
    local msg = tostring(out)
    if matches_any(msg, { "closed" }) and (ctx.may_close[cl] or cl.closed) then return end
    if ctx.may_raise_boom and msg:find("hostile boom", 1, true) then return end
    if #ctx.actions > 0 and matches_any(msg, HOSTILE_RAISE) then return end
    self:fail("%s raised: %s", where, msg)
  end
  local n, rqs = b.n, b.rqs
  self:check(type(out) == "table", "%s returned %s", where, type(out))
  self:check(#out == n, "%s of %d returned %d entries", where, n, #out)
  for i = 1, n do
    local entry = out[i]
    local w = string.format("%s item %d/%d (%s)", where, i, n, describe_rq(rqs[i]))
    self:check(type(entry) == "table", "%s: entry is %s", w, type(entry))
    self:check((entry.res == nil) ~= (entry.err == nil), "%s: res %s and err %s", w, show(entry.res),
      show(entry.err))
    local e = expect(rqs[i], b.btimeout, elapsed)
    if rqs[i].fault_kind == "401" then e.kinds.auth = true end -- one refresh per batch
    self:check_answer(rqs[i], e, ctx, true, entry.res, entry.err, w)
  end
end

function World:op_batch()
  local cl = self:pick_client()
  local b = self:gen_batch(cl)
  local ctx = new_ctx()
  self:batch_hostile(cl, ctx, b)
  local fin = self:pct("finalizer") and self:arm_finalizers(cl, ctx)
  local nfault = 0
  for _, rq in ipairs(b.rqs) do if rq.fault then nfault = nfault + 1 end end
  self:note("%s batch n=%d conc=%s t=%s faults=%d%s%s", cl.name, b.n,
    b.bopts and tostring(cl.conc) or "default", tostring(b.btimeout), nfault,
    ctx.hostile and (" hostile=" .. ctx.hostile) or "",
    fin and (" finalizers=" .. table.concat(ctx.actions, ",")) or "")
  local t0 = socket.gettime()
  local ok, out = pcall(cl.c.batch, cl.c, b.list, b.bopts)
  local elapsed = socket.gettime() - t0
  disarm(ctx)
  self:check_batch(cl, ctx, b, ok, out, elapsed)
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
