-- spec/hosts_spec.lua's scenarios in copas (spec/support/hosts/scenarios.lua),
-- Debian's copas 1.2: no sleep nor timers there, so the host's tick is its loop,
-- copas.step(0.01), and a thread waits for a condition on a select()-able
-- object that is dirty() once the condition holds.
local copas = require("copas")
local socket = require("socket")
local W = require("spec.support.hosts.ways")

local D = { host = "copas", adapter = require("ducky.copas"), now = socket.gettime }
local meter -- the running ticker's (spec/support/hosts/ways.lua), or nil
-- a descriptor select() never finds readable (nothing is sent to it)
local quiet = assert((socket.udp4 or socket.udp)())

function D.spawn(fn) copas.addthread(fn) end

function D.wait_until(cond, seconds)
  local deadline = D.now() + seconds
  local function due() return cond() or D.now() > deadline end
  if not due() then
    copas.receive {
      getfd = function() return quiet:getfd() end,
      dirty = due,
      receive = function() if due() then return "due" end return nil, "timeout" end,
      close = function() end,
    }
  end
  return cond()
end

function D.ticker()
  local m = W.meter(D.now)
  meter = m
  return function()
    meter = nil
    return m.result()
  end
end

function D.run(main)
  local finished = false
  copas.addthread(function()
    main()
    finished = true
  end)
  while not finished do
    copas.step(0.01)
    if meter then meter.tick() end
  end
end

require("spec.support.hosts.child").main(D)
