-- luacheck: read globals ARGS THREAD
-- One side of a token refresh (spec/refresh_spec.lua), as a thread of
-- spec/support/hosts/threads.c (ARGS; role "THREAD": thread 1 leads) or a process
-- (arg): role ("leader" or "other"), client id, cache ("memory" or "file"). The leader takes a
-- token, and once it is inside its refresh margin (the stand-in issues 4 s tokens: margin 2 s;
-- counted from when the token came, as a slow start under ASan or load must not leave it
-- fresh) refreshes it through a token endpoint that now takes 2 s; the other asks for a token
-- once that refresh has reached the token endpoint (the stand-in counts it).
-- Each prints "<role> <source> <time done>".
local socket = require("socket")
local H = require("spec.helpers")
local ducky = require("ducky")

local role, id, cache = (table.unpack or unpack)(ARGS or arg)
if role == "THREAD" then role = THREAD == 1 and "leader" or "other" end -- threads.c's thread 1 leads

local c = ducky.client(H.opts{ client_id = id, client_secret = H.secret(id), timeout = 20,
  refresh_margin = 100, token_cache = cache == "file" and H.NIL or false })
if role == "leader" then
  assert(c:token())
  socket.sleep(2.3) -- the token is now inside its margin, and still valid for over a second
  H.fault{ path = "/oauth/token", client_id = id, delay = 2 }
else -- the first token and the leader's refresh: two token requests
  H.wait_until(function() return H.token_requests(id).received >= 2 end, 10, "the leader's refresh")
end
local tok, left, info = c:token()
assert(tok, tostring(left))
print(("%s %s %.3f"):format(role, info.source, socket.gettime()))
c:close()
