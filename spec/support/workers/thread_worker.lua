-- luacheck: read globals ARGS THREAD
-- Run by spec/support/hosts/threads.c in each thread: ARGS = { base_url, token_url,
-- audience, client_id, secret, calls [, "file"] }. Raises on any failed call.
-- With "file" the client uses the default file token cache, else memory only.
local ducky = require("ducky")
local base_url, token_url, audience, id, secret, calls, cache = (table.unpack or unpack)(ARGS)
local client = ducky.client{
  base_url = base_url, token_url = token_url, audience = audience,
  client_id = id, client_secret = secret, timeout = 30,
  token_cache = cache == "file" and nil or false,
}
for i = 1, tonumber(calls) do
  local res, err = client:ping_protected()
  if not res then error(("thread %d call %d: %s"):format(THREAD, i, tostring(err))) end
end
client:close()
