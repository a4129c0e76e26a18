-- ducky, sequential, each call an operation: start, then wait on the client's
-- descriptor and step until done, as a host loop does (README "Operations").
-- usage: lua5.4 ducky_start_seq.lua BASE_URL TOKEN_URL N   (ducky.so through LUA_CPATH)
-- prints "<N> requests in <s> s: <r> requests/s"
local ducky = require("ducky")
local socket = require("socket")

local base_url, token_url, n = arg[1], arg[2], tonumber(arg[3])
assert(base_url and token_url and n, "usage: ducky_start_seq.lua BASE_URL TOKEN_URL N")

local client = ducky.client{
  base_url = base_url, token_url = token_url, audience = "bench",
  client_id = "bench", client_secret = "bench-secret", token_cache = false,
}
local fd = client:pollfd()
local pollable = { { getfd = function() return fd end } }
local t0 = socket.gettime()
for _ = 1, n do
  local op = client:start("GET", "/ping/protected")
  while not op:done() do
    local t = client:timeout()
    if t ~= 0 then socket.select(pollable, nil, t or 1) end
    client:step()
  end
  local res = assert(op:result())
  if res.status ~= 200 then error("status " .. res.status) end
end
local s = socket.gettime() - t0
client:close()
print(("%d requests in %.3f s: %.0f requests/s"):format(n, s, n / s))
