-- spec/hosts_spec.lua's scenarios in cqueues (spec/support/hosts/scenarios.lua):
-- one controller runs them; the ticker is a coroutine sleeping 10 ms at a time.
local cqueues = require("cqueues")

local D = { host = "cqueues", adapter = require("ducky.cqueues"), now = cqueues.monotime,
  sleep = cqueues.sleep }
local cq = cqueues.new()

function D.spawn(fn) cq:wrap(fn) end

function D.run(main)
  cq:wrap(main)
  assert(cq:loop())
end

require("spec.support.hosts.ways").sleeping(D)
require("spec.support.hosts.child").main(D)
