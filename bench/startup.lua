-- Module load time and cold start, over many fresh processes.
-- usage: lua5.4 startup.lua BASE_URL TOKEN_URL [RUNS]   (LUA_CPATH must find ducky.so)
-- prints Markdown rows
local gettime = require("socket").gettime

local base_url, token_url = arg[1], arg[2]
local runs = tonumber(arg[3]) or 51
local lua = os.getenv("LUA") or "lua5.4"
local here = arg[0]:match("^(.*)/") or "."
local tmp = os.getenv("BENCH_TMP") or "/tmp"

local function median(t)
  table.sort(t)
  return t[math.ceil(#t / 2)]
end

local function sh(cmd)
  local p = assert(io.popen(cmd))
  local out = p:read("*a")
  assert(p:close(), "failed: " .. cmd)
  return out
end

local function row(what, value)
  print(("| %s | %s |"):format(what, value))
end

-- 1. require "ducky": in the process, and a whole process against a bare one
local inproc = {}
local code = [[local g = require('socket.core').gettime; local t = g(); require('ducky');
  io.write(string.format('%.1f', (g() - t) * 1e6))]]
for i = 1, runs do
  inproc[i] = tonumber(sh(("%s -e %q"):format(lua, code)))
end
local function per_process(cmd)
  local t = {}
  for i = 1, runs do
    local t0 = gettime()
    assert(os.execute(cmd))
    t[i] = (gettime() - t0) * 1e6
  end
  return median(t)
end
local bare = per_process(lua .. " -e ''")
local with = per_process(lua .. " -e 'require \"ducky\"'")
row(("`require \"ducky\"` in a fresh process (wall, median of %d)"):format(runs),
  ("**%.0f µs** (libcurl, libcrypto and cjson loaded and linked)"):format(median(inproc)))
row(("a `%s` process that only requires ducky, against one that does nothing"):format(lua),
  ("%.0f µs vs %.0f µs: **+%.0f µs**"):format(with, bare, with - bare))

-- 2. cold start: one process, one protected request; file cache warm vs none
local function cold(mode, fresh_dir)
  local wall, inner, sources = {}, {}, {}
  local dir = tmp .. "/xdg-" .. mode
  for i = 1, runs do
    if fresh_dir or i == 1 then sh(("rm -rf %s && mkdir -p %s"):format(dir, dir)) end
    if i == 1 and mode == "warm" then -- prime the file cache
      sh(("XDG_CACHE_HOME=%s %s %s/one_call.lua %s %s"):format(dir, lua, here, base_url, token_url))
    end
    local cmd = ("XDG_CACHE_HOME=%s %s %s/one_call.lua %s %s %s"):format(dir, lua, here,
      base_url, token_url, mode == "memory" and "memory" or "file")
    local t0 = gettime()
    local out = sh(cmd)
    wall[i] = (gettime() - t0) * 1e6
    local src, us = out:match("^(%S+) (%S+)")
    inner[i] = tonumber(us)
    sources[src] = (sources[src] or 0) + 1
  end
  local s = {}
  for k, v in pairs(sources) do s[#s + 1] = ("%s ×%d"):format(k, v) end
  table.sort(s)
  return median(wall), median(inner), table.concat(s, ", ")
end
local ww, wi, ws = cold("warm", false)
local nw, ni, ns = cold("none", true)
local mw, mi, ms = cold("memory", false)
local fmt = "%.2f ms per process; %.0f µs from `ducky.client()` to the answer; token from: %s"
row("warm file cache (the token read from `$XDG_CACHE_HOME/ducky/`)", fmt:format(ww / 1000, wi, ws))
row("no file cache yet (empty `XDG_CACHE_HOME`: exchange, then the file written)",
  fmt:format(nw / 1000, ni, ns))
row("`token_cache = false` (exchange, nothing written)", fmt:format(mw / 1000, mi, ms))
row("saved by the warm cache against an empty one", ("**%.2f ms** per process (%.0f µs in the client)")
  :format((nw - ww) / 1000, ni - wi))
sh("rm -rf " .. tmp .. "/xdg-warm " .. tmp .. "/xdg-none " .. tmp .. "/xdg-memory")
