-- One process, one protected request (for the cold-start figures).
-- usage: lua5.4 one_call.lua BASE_URL TOKEN_URL [file|memory]
-- prints "<token source> <microseconds from ducky.client() to the answer>"
local ducky = require("ducky")
local gettime = require("socket.core").gettime

local source = "?"
local token_cache -- nil: the default per-user file cache
if arg[3] == "memory" then token_cache = false end
local t0 = gettime()
local client = ducky.client{
  base_url = arg[1], token_url = arg[2], audience = "bench", client_id = "bench",
  client_secret = "bench-secret", token_cache = token_cache,
  log = function(ev) if ev.event == "token" then source = ev.source end end,
}
assert(client:ping_protected())
local us = (gettime() - t0) * 1e6
client:close()
print(("%s %.0f"):format(source, us))
