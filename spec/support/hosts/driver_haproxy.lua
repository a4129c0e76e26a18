-- spec/hosts_spec.lua's scenarios in HAProxy (spec/support/hosts/scenarios.lua):
-- loaded by `lua-load`; the scenarios run in a task, each spawned function in a
-- task of its own, the ticker is a task sleeping 10 ms at a time (core.msleep).
-- The process exits once the results are written.
-- luacheck: read globals core
local D = { host = "haproxy", adapter = require("ducky.haproxy") }

-- A clock of its own: HAProxy's (core.now()) stands still while its thread is
-- held, which is what the ticker must be able to see.
D.now = require("socket").gettime

function D.sleep(seconds) core.msleep(math.floor(seconds * 1000 + 0.5)) end

function D.spawn(fn) core.register_task(fn) end

function D.run(main) core.register_task(main) end

require("spec.support.hosts.ways").sleeping(D)
require("spec.support.hosts.child").main(D, function() os.exit(0) end)
