-- ducky.luv: ducky's client on a libuv loop (luv). Each method takes a trailing
-- callback function(res, err) (token: function(token, seconds_left, info); batch:
-- function(results)) and returns at once; called inside a coroutine without one,
-- it yields and resumes with the results. Many calls may share one client.
-- README "Event loops".
--
--   local client = require("ducky.luv").client{ … }   -- ducky.client's options
--   client:request("GET", "/footprints", function(res, err) … end)
--   uv.run()
--
-- While calls are under way the client has one uv_poll on its descriptor and one
-- timer for its timeout(); when it is idle it has none, so uv.run() can return.
-- Callbacks run from the loop, never inside the call that gave them; an error
-- in one is raised from the loop's callback once ducky's bookkeeping is done
-- (luv's own rule for callback errors then applies).
local A = require("ducky.async")

local coroutine_create, coroutine_resume, coroutine_running, coroutine_status, coroutine_yield =
  coroutine.create, coroutine.resume, coroutine.running, coroutine.status, coroutine.yield
local coroutine_isyieldable = coroutine.isyieldable
local error, select, setmetatable = error, select, setmetatable
local math_ceil, unpack = math.ceil, A.unpack

local M = {}

-- ---------------------------------------------------------------------------
-- the loop's handles

local arm

local function flush(self, errs)
  while #self.later > 0 do
    local q = self.later
    self.later = {}
    for i = 1, #q do
      local ok, e = pcall(q[i])
      if not ok then
        errs = errs or {}
        errs[#errs + 1] = e
      end
    end
  end
  return errs
end

local function on_event(self)
  self.in_event, self.poked = true, false
  local errs = flush(self, A.dispatch(self))
  self.in_event = false
  arm(self)
  A.raise(errs)
end

local function release(self)
  if self.poll then
    self.poll:close()
    self.poll = nil
  end
  if self.timer then
    self.timer:close()
    self.timer = nil
  end
end

-- After every start, step, cancel and close: the poll while calls wait, or
-- the client has work of its own (an exchange other clients of the credential
-- wait for, its own call cancelled), the timer for timeout() (0 when
-- something is due now); none when idle.
function arm(self)
  local due = #self.later > 0 or self.poked
  if #self.waiters == 0 and not due and (self.closed or not self.client:timeout()) then
    return release(self)
  end
  local uv = self.uv
  if not self.timer then
    self.timer = uv.new_timer()
    self.on_event = self.on_event or function() on_event(self) end
  end
  if not self.closed and not self.poll then
    self.poll = uv.new_poll(A.fd(self))
    self.poll:start("r", self.on_event)
  end
  local t = (due or self.closed) and 0 or self.client:timeout()
  if t then
    self.timer:start(math_ceil(t * 1000), 0, self.on_event)
  else
    self.timer:stop()
  end
end

-- ---------------------------------------------------------------------------
-- waiting: the method's body runs in a coroutine (the caller's, or one of its
-- own when a callback is given) that yields until its call has ended

local function pack(...) return { n = select("#", ...), ... } end

-- Resumes a body coroutine of the client's own; when it ends its results go to
-- its callback, from the loop.
local function resume_own(self, co)
  local ok, out = coroutine_resume(co)
  if not ok then
    self.own[co] = nil
    error(out, 0)
  end
  if coroutine_status(co) == "dead" then
    local cb = self.own[co]
    self.own[co] = nil
    self.later[#self.later + 1] = function() cb(unpack(out, 1, out.n)) end
    self.deliver(self)
  end
end

-- A caller's coroutine that is no longer suspended (closed with
-- coroutine.close, or finished by its owner meanwhile) is left alone: its
-- call's result has nobody to go to.
local function resume_theirs(co)
  if coroutine_status(co) ~= "suspended" then return end
  local ok, e = coroutine_resume(co)
  if not ok then error(e, 0) end
end

local function wait(self, ready)
  local co = coroutine_running()
  local wake
  if self.own[co] then
    wake = function() resume_own(self, co) end
  else
    wake = function()
      self.later[#self.later + 1] = function() resume_theirs(co) end
      self.deliver(self)
    end
  end
  A.add_waiter(self, { ready = ready, wake = wake })
  arm(self)
  repeat coroutine_yield() until ready()
end

local function usable()
  if coroutine_isyieldable then return coroutine_isyieldable() end
  local co, main = coroutine_running()
  return co ~= nil and not main
end

local function poke(self)
  self.poked = true
  if not self.in_event then arm(self) end
end

-- Queued callbacks run on the loop's next turn (or at the end of this one).
local function later(self)
  if not self.in_event then poke(self) end
end

-- ---------------------------------------------------------------------------
-- the methods: A.Client's, each with an optional trailing callback

local Client = setmetatable({}, { __index = A.Client })
Client.__index = Client
Client.__close = A.Client.close
Client.__tostring = A.Client.__tostring

local function with_callback(name)
  local body = A.Client[name]
  Client[name] = function(self, ...)
    local cb, args = A.split_callback(...)
    if not cb then return body(self, ...) end
    local co = coroutine_create(function() return pack(body(self, unpack(args, 1, args.n))) end)
    self.own[co] = cb
    resume_own(self, co)
  end
end
for _, name in ipairs { "ping", "ping_protected", "request", "batch", "token", "wait" } do
  with_callback(name)
end

-- A client on luv module `uv` (a luv-compatible table: vim.loop, vim.uv);
-- conf.name and conf.deliver(self) (how queued callbacks reach the host: by
-- default on the loop's next turn) let ducky.nvim reuse it.
function M.new(opts, uv, conf)
  conf = conf or {}
  local host = {
    name = conf.name or "ducky.luv",
    need = "with a callback function(res, err) as its last argument, or inside a coroutine",
    now = function() return uv.hrtime() / 1e9 end,
    usable = usable,
    wait = wait,
    poke = poke,
    close = function(self) -- never close a descriptor while it is polled
      if self.poll then
        self.poll:close()
        self.poll = nil
      end
    end,
  }
  local self = A.new(host, opts, Client)
  self.uv, self.later, self.own = uv, {}, {}
  self.deliver = conf.deliver or later
  return self
end

-- A client (ducky.client's options) on luv's default loop, or on `loop` (a
-- luv-compatible module table).
function M.client(opts, loop)
  return M.new(opts, loop or require("luv"))
end

return M
