-- A real redis-server for specs, on a free loopback port, dying with the Lua
-- process that started it; and lua-redis to look inside it.
--   local R = require("spec.support.redis_server")
--   local server = R.start()          -- { port, pid }
--   R.client(server.port):get("k")    -- lua-redis
--   R.stop(server)
local H = require("spec.helpers")
local socket = require("socket")

local R = {}

R.runnable = select(2, H.run("command -v redis-server")) == 0

local LUA_PID = tonumber(H.read_file("/proc/self/stat"):match("^(%d+)"))

-- lua-redis, which Debian ships for Lua 5.1-5.3 (its 5.3 copy runs on 5.4).
function R.client(port)
  local saved = package.path
  package.path = saved .. ";/usr/share/lua/5.3/?.lua"
  local ok, redis = pcall(require, "redis")
  package.path = saved
  assert(ok, redis)
  return redis.connect("127.0.0.1", port, 2)
end

function R.answers_ping(port)
  local c = socket.tcp()
  c:settimeout(0.5)
  local ok = c:connect("127.0.0.1", port)
  local line = ok and c:send("PING\r\n") and c:receive("*l")
  c:close()
  return line == "+PONG"
end

-- Runs `cmd` (a server on port) in the background, killed with this Lua
-- process; returns its pid once ready() holds.
local function background(cmd, what, ready)
  local dir = H.tmpdir()
  H.write_file(dir .. "/run.sh", ([[
%s >%s/log 2>&1 &
r=$!
echo $r >%s/pid
( while kill -0 %d 2>/dev/null; do sleep 0.5; done; kill $r 2>/dev/null ) &
w=$!
wait $r
kill $w 2>/dev/null
rm -rf %s
]]):format(cmd, dir, dir, LUA_PID, dir))
  os.execute(("%ssh %s/run.sh >/dev/null 2>&1 </dev/null &"):format(H.CLEAN_ENV, dir))
  local pid
  local ok, e = pcall(H.wait_until, function()
    pid = tonumber(H.read_file(dir .. "/pid") or "")
    return pid and ready()
  end, 10, what)
  if not ok then error(e .. "; its output:\n" .. (H.read_file(dir .. "/log") or "(none)"), 3) end
  return pid
end

-- Starts redis-server (on port, or a free one); returns { port, pid }.
function R.start(port)
  port = port or H.free_port()
  local cmd = ("redis-server --port %d --bind 127.0.0.1 --save '' --appendonly no --daemonize no"
    .. " --dir /tmp --enable-debug-command local"):format(port) -- DEBUG SLEEP: a slow Redis
  local pid = background(cmd, "redis-server on port " .. port, function() return R.answers_ping(port) end)
  return { port = port, pid = pid }
end

-- Stops it; returns once the port no longer answers.
function R.stop(server)
  if not server or not server.pid then return end
  os.execute(("%skill %d 2>/dev/null"):format(H.CLEAN_ENV, server.pid))
  H.wait_until(function()
    return not H.alive(server.pid) and not R.answers_ping(server.port)
  end, 10, "redis-server to stop")
  server.pid = nil
end

-- A server that takes connections and answers every line with garbage.
function R.garbage()
  local port = H.free_port()
  local script = ([[
import socket, threading
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", %d)); s.listen(64)
def serve(c):
    f = c.makefile("rb")
    for _ in f:
        c.sendall(b"?garbage\r\n")
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
]]):format(port)
  local dir = H.tmpdir()
  H.write_file(dir .. "/garbage.py", script)
  local pid = background("/usr/bin/python3 " .. dir .. "/garbage.py", "the garbage server", function()
    local c = socket.connect("127.0.0.1", port)
    if c then c:close() end
    return c ~= nil
  end)
  return { port = port, pid = pid }
end

return R
