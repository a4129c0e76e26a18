-- Many calls at once inside copas: each thread's call yields to copas, so the
-- others, and anything else copas runs, go on.
--   lua5.1 examples/hosts/copas.lua      (Debian: lua-copas, for Lua 5.1 and 5.2;
--                                         ducky built for that Lua: make LUA=lua5.1)
-- Every setting comes from DUCKY_* environment variables, as for examples/ping.lua.
local copas = require("copas")
local ducky_copas = require("ducky.copas")

local client = ducky_copas.client { ca_file = os.getenv("DUCKY_CA_FILE") }
local sites = { "berlin", "lyon", "oslo", "porto" }

local pending = #sites
for _, site in ipairs(sites) do
  copas.addthread(function()
    -- the stand-in's echo route; against the real API use its footprint paths
    local res, err = client:request("GET", "/echo", { query = { site = site } })
    print(("%-7s %s"):format(site, res and res.status or tostring(err)))
    pending = pending - 1
  end)
end

-- copas 1.2's loop never returns: step it until the work is done (copas 4's
-- copas.loop() returns by itself once every thread has ended)
local steps = 0
while pending > 0 do
  copas.step(0.01)
  steps = steps + 1
end
print(("copas stepped %d times while the calls were under way"):format(steps))
local stats = client:stats()
print(("%d requests, %d token exchange(s)"):format(stats.requests, stats.token_fetches))
client:close()
