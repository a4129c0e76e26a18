-- ducky.cqueues: ducky's client inside a cqueues controller. Each call, made in
-- a coroutine the controller runs (cq:wrap), yields to the controller until it
-- ends; many coroutines may share one client. README "Event loops".
--
--   local client = require("ducky.cqueues").client{ … }   -- ducky.client's options
--   cq:wrap(function() local res, err = client:request("GET", "/footprints") end)
--
-- One coroutine per client and controller (the pump) waits on the client's
-- descriptor (cqueues.poll on the client: pollfd, events, timeout) and steps
-- it while calls are under way; each waiting coroutine sleeps on its own
-- condition until its call has ended.
local cqueues = require("cqueues")
local condition = require("cqueues.condition")
local A = require("ducky.async")

local M = {}

local host = {
  name = "ducky.cqueues",
  need = "inside a coroutine run by a cqueues controller (cq:wrap(function() … end))",
  now = cqueues.monotime,
}

function host.usable() return cqueues.running() ~= nil end

-- It steps the client while calls wait, and after: an exchange it leads for
-- other clients of the credential (its own call cancelled) goes on to its end.
local function pump(self, cq)
  while (#self.waiters > 0 or self.client:timeout()) and not self.closed do
    cqueues.poll(self.client, self.kick)
    if self.closed then break end
    A.raise(A.dispatch(self))
  end
  self.pumps[cq] = nil
end

-- A pump per controller that has a call waiting: a controller nobody runs any
-- more (its loop ended on an error, the program went on with another) keeps
-- its pump, and the calls made in the next controller get one of their own.
function host.wait(self, ready)
  local cond = condition.new()
  A.add_waiter(self, { ready = ready, wake = function() cond:signal() end })
  local cq = cqueues.running()
  if not self.pumps[cq] then
    self.pumps[cq] = true
    A.fd(self)
    cq:wrap(pump, self, cq)
  end
  while not ready() do cond:wait() end
end

-- No one waits any more: the pumps end once the client is idle.
function host.woken(self)
  if #self.waiters == 0 and next(self.pumps) then self.kick:signal() end
end

-- The descriptor leaves every controller before it closes.
function host.close(self)
  if self.fd then cqueues.cancel(self.fd) end
  self.kick:signal()
end

-- A client (ducky.client's options) whose calls yield to the running controller.
function M.client(opts)
  local self = A.new(host, opts)
  self.kick = condition.new()
  self.pumps = setmetatable({}, { __mode = "k" })
  return self
end

return M
