-- Many calls at once: one footprint lookup per site, concurrently, in order.
--   lua5.4 examples/batch.lua [CONCURRENCY]
local ducky = require("ducky")

local client = ducky.client{ ca_file = os.getenv("DUCKY_CA_FILE") }
local sites = { "berlin", "lyon", "oslo", "porto", "turin", "ghent", "graz", "bergen" }

local requests = {}
for i, site in ipairs(sites) do
  -- the stand-in's echo route; against the real API use its footprint paths
  requests[i] = { "GET", "/echo", { query = { site = site, year = 2026 } } }
end

local results = client:batch(requests, { concurrency = tonumber(arg[1]) or 8, timeout = 30 })
for i, r in ipairs(results) do
  if r.res then
    print(("%-7s %d after %d attempt(s)"):format(sites[i], r.res.status, r.res.attempts))
  else
    print(("%-7s failed: %s"):format(sites[i], tostring(r.err)))
  end
end
local stats = client:stats()
print(("%d requests, %d token exchange(s), %d retries"):format(stats.requests,
  stats.token_fetches, stats.retries))
client:close()
