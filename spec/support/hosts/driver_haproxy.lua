-- spec/hosts_spec.lua's scenarios in HAProxy (spec/support/hosts/scenarios.lua):
-- loaded by `lua-load`; the scenarios run in a task, each spawned function in a
-- task of its own, the ticker is a task sleeping 10 ms at a time (core.msleep).
-- The process exits once the results are written.
-- luacheck: read globals core
local D = { host = "haproxy", adapter = require("ducky.haproxy") }

-- A clock of its own: HAProxy's (core.now()) stands still while its thread is
-- held, which is what the ticker must be able to see.
D.now = require("socket").gettime

function D.spawn(fn) core.register_task(fn) end

function D.wait_until(cond, seconds)
  local deadline = D.now() + seconds
  while not cond() do
    if D.now() > deadline then return false end
    core.msleep(5)
  end
  return true
end

function D.ticker()
  local stop, gap, ticks, last = false, 0, 0, D.now()
  core.register_task(function()
    while not stop do
      core.msleep(10)
      local now = D.now()
      gap, ticks, last = math.max(gap, now - last), ticks + 1, now
    end
  end)
  return function()
    stop = true
    return math.max(gap, D.now() - last), ticks
  end
end

function D.run(main) core.register_task(main) end

require("spec.support.hosts.child").main(D, function() os.exit(0) end)
