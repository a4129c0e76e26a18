-- Many calls at once: one footprint lookup per site, concurrently, in order.
--   lua5.4 examples/batch.lua [CONCURRENCY]
local ducky = require("ducky")

local client = ducky.client{ ca_file = os.getenv("DUCKY_CA_FILE") }
local sites = { "berlin", "lyon", "oslo", "porto", "turin", "ghent", "graz", "bergen" }

local requests = {}
for i, site in ipairs(sites) do
  requests[i] = { "GET", "/footprints", { query = { site = site, year = 2026 } } }
end

local results = client:batch(requests, { concurrency = tonumber(arg[1]) or 8, timeout = 30 })
for i, r in ipairs(results) do
  if r.res then
    local found = r.res.json and r.res.json.footprints or {}
    local kg = 0
    for _, fp in ipairs(found) do kg = kg + (tonumber(fp.co2e_kg) or 0) end
    print(("%-7s %d %.0f kg CO2e in 2026 (%d footprint(s), %d attempt(s))"):format(sites[i], r.res.status,
      kg, #found, r.res.attempts))
  else
    print(("%-7s failed: %s"):format(sites[i], tostring(r.err)))
  end
end
local stats = client:stats()
print(("%d requests, %d token exchange(s), %d retries"):format(stats.requests,
  stats.token_fetches, stats.retries))
client:close()
