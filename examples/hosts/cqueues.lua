-- Many calls at once inside cqueues: each coroutine's call yields to the
-- controller, so the others, and anything else the controller runs, go on.
--   lua5.4 examples/hosts/cqueues.lua        (Debian: lua-cqueues; any Lua 5.1-5.4)
-- Every setting comes from DUCKY_* environment variables, as for examples/ping.lua.
local cqueues = require("cqueues")
local ducky_cqueues = require("ducky.cqueues")

local client = ducky_cqueues.client { ca_file = os.getenv("DUCKY_CA_FILE") }
local cq = cqueues.new()
local sites = { "berlin", "lyon", "oslo", "porto" }

local pending = #sites
for _, site in ipairs(sites) do
  cq:wrap(function()
    -- the stand-in's echo route; against the real API use its footprint paths
    local res, err = client:request("GET", "/echo", { query = { site = site } })
    print(("%-7s %s"):format(site, res and res.status or tostring(err)))
    pending = pending - 1
  end)
end

-- the controller keeps running other coroutines meanwhile: a 10 ms ticker
cq:wrap(function()
  local ticks = 0
  while pending > 0 do
    cqueues.sleep(0.01)
    ticks = ticks + 1
  end
  print(("the ticker ran %d times while the calls were under way"):format(ticks))
end)

assert(cq:loop())
local stats = client:stats()
print(("%d requests, %d token exchange(s)"):format(stats.requests, stats.token_fetches))
client:close()
