-- Figures for the shared file token cache (issue 3), against the local stand-in:
--   1. exchanges made by 16 processes started together with an empty cache;
--   2. exchanges made by N sequential short-lived processes (default 1000);
--   3. a process's wall time for one protected call: warm file cache vs none;
--   4. the in-process cost of reading the file cache (first token() of a client).
-- Run from the repository root:  make bench-cache   (or lua5.4 bench/token_cache.lua [N])
package.path = "./?.lua;" .. package.path
local H = require("spec.helpers")
local socket = require("socket")

local build = os.getenv("DUCKY_BUILD") or "build"
local N = tonumber(arg[1]) or 1000
local home = H.tmpdir()
local env = ("XDG_CACHE_HOME=%s LUA_CPATH='./%s/?.so;;'"):format(home, build)

local function worker_cmd(id, cache)
  return ("%s lua5.4 spec/support/workers/file_worker.lua %q %q %q %q %q %s >/dev/null")
    :format(env, H.base_url(), H.token_url(), H.audience(), id, H.secret(id), cache or "default")
end

local function median(t)
  table.sort(t)
  return t[math.ceil(#t / 2)]
end

H.standin()
print(("machine: %s, %s cores"):format(io.popen("uname -srm"):read("*l"),
  io.popen("nproc"):read("*l")))

-- 1. 16 processes at once
local id = H.new_id("bench-par")
os.execute(("for i in $(seq 16); do %s & done; wait"):format(worker_cmd(id)))
print(("16 processes started together:        %d exchange(s)"):format(H.exchanges(id)))

-- 2. N sequential processes
id = H.new_id("bench-seq")
local t0 = socket.gettime()
os.execute(("for i in $(seq %d); do %s || exit 1; done"):format(N, worker_cmd(id)))
local elapsed = socket.gettime() - t0
print(("%d sequential processes:             %d exchange(s), %.1f ms per process")
  :format(N, H.exchanges(id), elapsed * 1000 / N))

-- 3. one process, one protected call: warm file cache vs no cache (an exchange each)
local function per_process(cmd, runs)
  local times = {}
  for i = 1, runs do
    local t = socket.gettime()
    assert(os.execute(cmd(i)))
    times[#times + 1] = (socket.gettime() - t) * 1000
  end
  return median(times)
end
local warm_id = H.new_id("bench-warm")
assert(os.execute(worker_cmd(warm_id)))
local warm = per_process(function() return worker_cmd(warm_id) end, 51)
local cold = per_process(function() return worker_cmd(H.new_id("bench-cold"), "memory") end, 51)
print(("process, one protected call, median:  %.2f ms with a warm file cache, %.2f ms with none")
  :format(warm, cold))

-- 4. in-process: first token() of a client reading the file vs from memory
package.cpath = "./" .. build .. "/?.so;" .. package.cpath
local ducky = require("ducky")
local opts = { base_url = H.base_url(), token_url = H.token_url(), audience = H.audience(),
  client_id = warm_id, client_secret = H.secret(warm_id), token_cache = home .. "/bench-token" }
local client = ducky.client(opts)
assert(client:token()) -- one exchange; writes the named file
local reads = {}
local t1 = socket.gettime()
for _ = 1, 100000 do assert(client:token()) end -- memory hits
local hit = (socket.gettime() - t1) * 1e6 / 100000
-- a file read: a fresh process-wide cache is needed, so measure it in child processes
local script = home .. "/read.lua"
local f = assert(io.open(script, "w"))
f:write(([[
local ducky = require("ducky")
local socket = require("socket")
local c = ducky.client{ base_url = %q, token_url = %q, audience = %q, client_id = %q,
  client_secret = %q, token_cache = %q }
local t = socket.gettime()
assert(c:token())
io.write(string.format("%%.1f\n", (socket.gettime() - t) * 1e6))
]]):format(opts.base_url, opts.token_url, opts.audience, opts.client_id, opts.client_secret,
  opts.token_cache))
f:close()
for _ = 1, 51 do
  reads[#reads + 1] = tonumber(io.popen(env .. " lua5.4 " .. script):read("*l"))
end
print(("first token() from the file cache:    %.1f us (median of 51 processes); from memory %.2f us")
  :format(median(reads), hit))
os.execute("rm -rf " .. home)
