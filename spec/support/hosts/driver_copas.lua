-- spec/hosts_spec.lua's scenarios in copas (spec/support/hosts/scenarios.lua),
-- Debian's copas 1.2: no sleep nor timers there, so the host's tick is its loop,
-- copas.step(0.01), and a thread waits for a condition on a select()-able
-- object that is dirty() once the condition holds.
local copas = require("copas")
local socket = require("socket")

local D = { host = "copas", adapter = require("ducky.copas"), now = socket.gettime }
local gap, ticks, last, counting = 0, 0, 0, false
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
  gap, ticks, last, counting = 0, 0, D.now(), true
  return function()
    counting = false
    return math.max(gap, D.now() - last), ticks
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
    if counting then
      local now = D.now()
      gap, ticks, last = math.max(gap, now - last), ticks + 1, now
    end
  end
end

require("spec.support.hosts.child").main(D)
