-- ducky.copas: ducky's client inside copas threads. Each call, made in a copas
-- thread (copas.addthread), yields to copas until it ends; many threads may
-- share one client. README "Event loops".
--
--   local client = require("ducky.copas").client{ … }   -- ducky.client's options
--   copas.addthread(function() local res, err = client:request("GET", "/footprints") end)
--   copas.loop()
--
-- It works with Debian's copas 1.2 (no timers, sleep or pauseforever there)
-- and with copas 4, through what both have: copas.receive() on an object that
-- LuaSocket's select() takes. A waiting thread hands copas such an object,
-- whose getfd() is the client's descriptor (readable when the client has work,
-- its own timer included, so copas.loop() needs no timeout of its own) and
-- whose dirty() says that its call has ended; when copas resumes it, it steps
-- the client.
local copas = require("copas")
local socket = require("socket")
local A = require("ducky.async")

local coroutine_running, setmetatable = coroutine.running, setmetatable

local M = {}

local host = {
  name = "ducky.copas",
  need = "inside a copas thread (copas.addthread(function() … end))",
  now = socket.gettime,
}

function host.usable()
  local co, main = coroutine_running()
  return co ~= nil and not main
end

-- What a waiting thread gives copas.receive: copas yields it to its reading set
-- until select() finds it readable or dirty, then calls receive() again.
local Waiter = {}
Waiter.__index = Waiter

function Waiter:getfd()
  local owner = self.owner
  -- once closed, the client's descriptor is gone: a spare one stands in
  -- (select() looks at dirty() only for a valid descriptor)
  if owner.closed then return owner.spare:getfd() end
  return owner.fd
end

function Waiter:dirty() return self.ready() end

-- copas 1.2 closes the object that last woke a thread when the thread ends
function Waiter.close() end

function Waiter:receive()
  if self.ready() then return "done" end
  A.dispatch(self.owner)
  if self.ready() then return "done" end
  return nil, "timeout"
end

-- Copas has no timer here (1.2), and close() wakes nobody: each waiting
-- thread steps the client when copas resumes it, and sees its call end.
local function idle(self) return self.closed or not self.client:timeout() end

function host.wait(self, ready)
  A.fd(self)
  self.nwait = self.nwait + 1
  copas.receive(setmetatable({ owner = self, ready = ready }, Waiter))
  self.nwait = self.nwait - 1
  if self.spare and self.nwait == 0 then
    self.spare:close()
    self.spare = nil
  end
  -- no call waits, and the client has work of its own (an exchange other
  -- clients of the credential wait for, its own call cancelled): a thread of
  -- its own steps it to the end
  if self.nwait == 0 and not self.draining and not idle(self) then
    self.draining = true
    copas.addthread(function()
      host.wait(self, function() return idle(self) end)
      self.draining = false
    end)
  end
end

-- Threads still in copas' reading set need a descriptor that exists.
-- (socket.tcp4(): LuaSocket 3's socket.tcp() has no descriptor before it connects)
function host.close(self)
  if self.nwait > 0 then self.spare = assert((socket.tcp4 or socket.tcp)()) end
end

-- Nobody is registered to wake: the waiting threads look for themselves.
function host.poke() end

-- A client (ducky.client's options) whose calls yield to copas.
function M.client(opts)
  local self = A.new(host, opts)
  self.nwait = 0
  return self
end

return M
