-- Run by spec/redis_spec.lua as a separate process:
--   lua5.4 spec/support/workers/redis_worker.lua BASE_URL TOKEN_URL AUDIENCE ID SECRET REDIS_PORT
--     CLIENTS CALLS [START]
-- CLIENTS clients with the same credentials share a Redis token_cache; each
-- makes CALLS protected calls. Waits until wall-clock START (if given) so that
-- sibling processes begin together. Exits non-zero on any failed call.
local ducky = require("ducky")
local socket = require("socket")
local redis_store = require("ducky.redis_store")

local unpack = table.unpack or unpack
local base_url, token_url, audience, id, secret, port, nclients, calls, start = unpack(arg, 1, 9)

local store = redis_store.new{ host = "127.0.0.1", port = tonumber(port) }
local store_errors = {}
local function log(ev)
  if ev.event == "store_error" then store_errors[#store_errors + 1] = ev.reason end
end

local clients = {}
for i = 1, tonumber(nclients) do
  clients[i] = ducky.client{
    base_url = base_url, token_url = token_url, audience = audience,
    client_id = id, client_secret = secret, token_cache = store, timeout = 10, retries = 0, log = log,
  }
end

local wait = tonumber(start) and tonumber(start) - socket.gettime()
if wait and wait > 0 then socket.sleep(wait) end

local fetches, store_hits = 0, 0
for round = 1, tonumber(calls) do
  for i, c in ipairs(clients) do
    local res, err = c:ping_protected()
    if not res then
      io.stderr:write(("client %d call %d: %s\n"):format(i, round, tostring(err)))
      os.exit(1)
    end
  end
end
for _, c in ipairs(clients) do
  local st = c:stats()
  fetches, store_hits = fetches + st.token_fetches, store_hits + st.token_store_hits
  c:close()
end
print(("ok token_fetches=%d token_store_hits=%d store_errors=%d%s"):format(fetches, store_hits,
  #store_errors, #store_errors > 0 and (" (" .. store_errors[1] .. ")") or ""))
