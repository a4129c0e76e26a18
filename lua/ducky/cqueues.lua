-- ducky.cqueues: ducky's client inside a cqueues controller. Each call, made in
-- a coroutine the controller runs (cq:wrap), yields to the controller until it
-- ends; many coroutines may share one client. README "Event loops".
--
--   local client = require("ducky.cqueues").client{ … }   -- ducky.client's options
--   cq:wrap(function() local res, err = client:request("GET", "/footprints") end)
--
-- One coroutine per client (the pump) waits on the client's descriptor
-- (cqueues.poll on the client: pollfd, events, timeout) and steps it while
-- calls are under way; each waiting coroutine sleeps on its own condition
-- until its call has ended.
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
local function pump(self)
  while (#self.waiters > 0 or self.client:timeout()) and not self.closed do
    cqueues.poll(self.client, self.kick)
    if self.closed then break end
    A.raise(A.dispatch(self))
  end
  self.pumping = false
end

function host.wait(self, ready)
  local cond = condition.new()
  A.add_waiter(self, { ready = ready, wake = function() cond:signal() end })
  if not self.pumping then
    self.pumping = true
    A.fd(self)
    cqueues.running():wrap(pump, self)
  end
  while not ready() do cond:wait() end
end

-- No one waits any more: the pump ends once the client is idle.
function host.woken(self)
  if #self.waiters == 0 and self.pumping then self.kick:signal() end
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
  return self
end

return M
