-- One short-lived process for the file-cache specs and benchmarks:
--   lua5.4 spec/support/workers/file_worker.lua BASE_URL TOKEN_URL AUDIENCE ID SECRET [CACHE [CALLS]]
-- CACHE: "default" (the per-user file cache, the default), "memory", or a file path.
-- Prints each log event as a JSON line, then "ok" or the error; exits 0 on success.
local ducky = require("ducky")
local cjson = require("cjson")
local base_url, token_url, audience, id, secret, cache, calls = (table.unpack or unpack)(arg)
local token_cache = nil
if cache == "memory" then token_cache = false
elseif cache and cache ~= "default" then token_cache = cache end

local client = ducky.client{
  base_url = base_url, token_url = token_url, audience = audience,
  client_id = id, client_secret = secret, token_cache = token_cache, timeout = 20,
  log = function(event) io.write(cjson.encode(event), "\n") end,
}
for _ = 1, tonumber(calls) or 1 do
  local res, err = client:ping_protected()
  if not res then
    print(tostring(err))
    os.exit(1)
  end
end
print("ok")
