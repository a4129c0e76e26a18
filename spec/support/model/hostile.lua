-- The random model's hostile callbacks (spec/support/model/model.lua): option
-- tables whose metamethods run code, finalizers.
local U = require("spec.support.model.util")
local World = require("spec.support.model.world")
local ducky = require("ducky")

local show, matches_any, finalizable, HOSTILE_RAISE = U.show, U.matches_any, U.finalizable, U.HOSTILE_RAISE

local Ho = {}

Ho.HOSTILE_ACTIONS = {
  { "close", 40 }, { "close_other", 5 }, { "request", 10 }, { "ping", 5 }, { "batch", 10 },
  { "batch_empty", 8 }, { "invalidate", 5 }, { "stats", 4 }, { "token", 4 }, { "gc", 5 },
  { "error", 4 },
}

-- The hostile actions: name -> function(a), a = { w, cl, c, tag, conc, other,
-- nested } as World:hostile_action prepared it.
local ACTIONS = {}

function ACTIONS.close(a) pcall(a.c.close, a.c) end
function ACTIONS.close_other(a) pcall(a.other.c.close, a.other.c) end

function ACTIONS.request(a)
  local ok, res, err = pcall(a.c.request, a.c, "GET", "/echo/" .. a.tag, { query = { n = a.tag } })
  a.nested("request", ok, res, err)
  if ok and res and res.json and res.json.path ~= "/v3/echo/" .. a.tag then
    a.w:violation("nested request got the answer of %s", tostring(res.json.path))
  end
end

function ACTIONS.ping(a) a.nested("ping", pcall(a.c.ping, a.c)) end

function ACTIONS.batch(a)
  local ok, out = pcall(a.c.batch, a.c, { { "GET", "/echo/" .. a.tag }, { "GET", "/echo/" .. a.tag .. "b" } },
    { concurrency = a.conc })
  if not ok then a.nested("batch", ok, out) elseif type(out) ~= "table" or #out ~= 2 then
    a.w:violation("nested batch returned %s", show(out))
  else
    for _, r in ipairs(out) do a.nested("batch item", true, r.res, r.err) end
  end
end

function ACTIONS.batch_empty(a)
  local ok, out = pcall(a.c.batch, a.c, {})
  if not ok then a.nested("batch", ok, out) end
end

function ACTIONS.invalidate(a)
  local ok, err = pcall(a.c.invalidate, a.c)
  if not ok then a.nested("invalidate", ok, err) end
end

function ACTIONS.stats(a)
  local ok, err = pcall(a.c.stats, a.c)
  if not ok then a.nested("stats", ok, err) end
end

function ACTIONS.token(a) a.nested("token", pcall(a.c.token, a.c)) end
function ACTIONS.gc() collectgarbage() end
function ACTIONS.error() error("hostile boom") end

-- A function doing one hostile thing to cl (or another client); what it may
-- have done is recorded in ctx (may_close: clients that may be closed now).
function World:hostile_action(cl, ctx, name, in_finalizer)
  local w = self
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
  local a = { w = w, cl = cl, c = cl.c, tag = tag, conc = conc, other = other, nested = nested }
  local action = ACTIONS[name] or error("no hostile action " .. tostring(name))
  return function() action(a) end
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

Ho.hostile_table, Ho.REQUEST_KEYS, Ho.new_ctx, Ho.disarm = hostile_table, REQUEST_KEYS, new_ctx, disarm

return Ho
