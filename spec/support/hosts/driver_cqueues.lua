-- spec/hosts_spec.lua's scenarios in cqueues (spec/support/hosts/scenarios.lua):
-- one controller runs them; the ticker is a coroutine sleeping 10 ms at a time.
local cqueues = require("cqueues")

local D = { host = "cqueues", adapter = require("ducky.cqueues"), now = cqueues.monotime }
local cq = cqueues.new()

function D.spawn(fn) cq:wrap(fn) end

function D.wait_until(cond, seconds)
  local deadline = D.now() + seconds
  while not cond() do
    if D.now() > deadline then return false end
    cqueues.sleep(0.005)
  end
  return true
end

function D.ticker()
  local stop, gap, ticks, last = false, 0, 0, D.now()
  cq:wrap(function()
    while not stop do
      cqueues.sleep(0.01)
      local now = D.now()
      gap, ticks, last = math.max(gap, now - last), ticks + 1, now
    end
  end)
  return function()
    stop = true
    return math.max(gap, D.now() - last), ticks
  end
end

function D.run(main)
  cq:wrap(main)
  assert(cq:loop())
end

require("spec.support.hosts.child").main(D)
