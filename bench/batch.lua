-- client:batch throughput: N requests to a route that answers after 50 ms.
-- usage: lua5.4 bench/batch.lua BASE_URL TOKEN_URL CA_FILE HTTP_VERSION CONCURRENCY N
-- prints "<N> requests in <s> s: <r> requests/s"
local ducky = require("ducky")
local socket = require("socket")

local base_url, token_url, ca_file, version, concurrency, n = table.unpack(arg)
concurrency, n = tonumber(concurrency), tonumber(n)
local client = ducky.client{
  base_url = base_url, token_url = token_url, audience = "bench", ca_file = ca_file,
  client_id = "bench", client_secret = "bench-secret", token_cache = false,
  http_version = version, timeout = 120,
}
assert(client:token())
local requests = {}
for i = 1, n do requests[i] = { "GET", "/slow", { query = { i = i } } } end
local t0 = socket.gettime()
local out = client:batch(requests, { concurrency = concurrency, timeout = 120 })
local s = socket.gettime() - t0
for i, r in ipairs(out) do
  if not r.res then error(("request %d: %s"):format(i, tostring(r.err))) end
end
client:close()
print(("%d requests in %.3f s: %.1f requests/s"):format(n, s, n / s))
