-- The spec's side of the event-loop hosts (spec/hosts_spec.lua): which hosts
-- can run here, and running the scenarios (spec/support/hosts/scenarios.lua) in
-- one of them, as a child process with the build for the host's Lua:
--   cqueues, luv   the suite's Lua and build (both are packaged for 5.1-5.4)
--   copas          the suite's if it is 5.1 or 5.2, else lua5.1 and build-lua5.1
--                  (Debian packages copas for those two only)
--   nvim           $DUCKY_LUAJIT_BUILD or build-luajit (Neovim runs LuaJIT)
--   haproxy        build-lua5.3 (Debian's HAProxy embeds Lua 5.3)
local H = require("spec.helpers")
local cjson = require("cjson")

local R = {}

R.ROOT = os.getenv("PWD") or "."

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

local function succeeds(cmd)
  return select(2, H.run(H.CLEAN_ENV .. cmd .. " >/dev/null 2>&1")) == 0
end

-- The Lua interpreter and build a Lua host runs: the suite's own when the host's
-- package exists for it, else `fallback` with its build.
local function lua_of(module, fallback)
  local ours = ("%s -e 'require(\"%s\")'"):format(H.LUA, module)
  if not fallback and succeeds(ours) then return H.LUA, H.BUILD, true end
  if fallback and (H.LUA == "lua5.1" or H.LUA == "lua5.2") and succeeds(ours) then
    return H.LUA, H.BUILD, true
  end
  return fallback, fallback and "build-" .. fallback, false
end

local SCRIPT_PREAMBLE = [==[
local cjson = require("cjson")
local f = assert(io.open("%s/standin.json"))
local info = cjson.decode(f:read("*a"))
f:close()
local id = "hosts-script-" .. os.time() .. "-" .. math.random(0, 9999)
OPTS = { client_id = id, client_secret = "secret-" .. id, audience = info.audience,
  base_url = ("http://127.0.0.1:%%d/v3"):format(info.http_port),
  token_url = ("http://127.0.0.1:%%d/oauth/token"):format(info.http_port),
  token_cache = false, retries = 0, timeout = 5 }
]==]

-- host -> how to run it: { cmd = function(env_prefix) -> shell command } or
-- nil, why it cannot run here.
local function lua_host(name, module, fallback)
  local lua, build, ours = lua_of(module, fallback)
  if not lua then return nil, ("%s is not installed for %s"):format(module, H.LUA) end
  if not exists(build .. "/ducky.so") or not succeeds(lua .. (" -e 'require(\"%s\")'"):format(module)) then
    return nil, ("needs %s with %s and %s/ducky.so (make LUA=%s)"):format(lua, module, build, lua)
  end
  -- the suite's own interpreter keeps the sanitizer runtime it may preload
  local preload = ours and (os.getenv("LD_PRELOAD") or "") or ""
  local function command(env, file)
    return ("%s%s timeout 120 env LD_PRELOAD='%s' LUA_CPATH='./%s/?.so;;' "
      .. "LUA_PATH='./lua/?.lua;./?.lua;;' %s %s"):format(H.CLEAN_ENV, env, preload, build, lua, file)
  end
  return {
    lua = lua, build = build,
    cmd = function(env) return command(env, ("spec/support/hosts/driver_%s.lua"):format(name)) end,
    -- A shell command running `body` in this host's Lua, after a preamble that
    -- sets the global OPTS: a client's options for a fresh id on the stand-in
    -- in folder `dir` (plain HTTP).
    script = function(dir, body)
      local tmp = H.tmpdir()
      H.write_file(tmp .. "/script.lua", SCRIPT_PREAMBLE:format(dir) .. body)
      return ("%s; s=$?; rm -rf '%s'; (exit $s)"):format(command("", "'" .. tmp .. "/script.lua'"), tmp)
    end,
  }
end

local LUAJIT_BUILD = os.getenv("DUCKY_LUAJIT_BUILD") or "build-luajit"

local function nvim_host()
  if not succeeds("nvim --version") or not exists(LUAJIT_BUILD .. "/ducky.so") then
    return nil, ("needs nvim and %s/ducky.so (make LUA=luajit)"):format(LUAJIT_BUILD)
  end
  return {
    cmd = function(env)
      return ("%s%s DUCKY_HOSTS_PATH='./lua/?.lua;./?.lua;' DUCKY_HOSTS_CPATH='./%s/?.so;' "
        .. "timeout 120 nvim --headless -u NONE -i NONE -n -c 'luafile spec/support/hosts/driver_nvim.lua'")
        :format(H.CLEAN_ENV, env, LUAJIT_BUILD)
    end,
  }
end

-- HAProxy with a temporary configuration that lua-loads `lua_file` (paths from
-- the checkout's root), the module from build-lua5.3, on a free port; `extra`:
-- more configuration. Returns the configuration's path and the port.
function R.haproxy_config(dir, lua_file, extra)
  local port = H.free_port()
  local cfg = table.concat({
    "global",
    ("  lua-prepend-path %s/lua/?.lua"):format(R.ROOT),
    ("  lua-prepend-path %s/?.lua"):format(R.ROOT),
    ("  lua-prepend-path %s/build-lua5.3/?.so cpath"):format(R.ROOT),
    ("  lua-load %s/%s"):format(R.ROOT, lua_file),
    "defaults",
    "  mode http",
    "  timeout connect 5s",
    "  timeout client 30s",
    "  timeout server 30s",
    "frontend fe",
    ("  bind 127.0.0.1:%d"):format(port),
    extra or "  http-request return status 200",
    "",
  }, "\n")
  H.write_file(dir .. "/haproxy.cfg", cfg)
  return dir .. "/haproxy.cfg", port
end

function R.haproxy_available()
  local out = H.run(H.CLEAN_ENV .. "haproxy -vv 2>/dev/null")
  if not out:find("Built with Lua version : Lua 5.3", 1, true) or not exists("build-lua5.3/ducky.so") then
    return nil, "needs haproxy built with Lua 5.3 and build-lua5.3/ducky.so (make LUA=lua5.3)"
  end
  return true
end

local function haproxy_host()
  local ok, why = R.haproxy_available()
  if not ok then return nil, why end
  return {
    cmd = function(env, dir)
      local cfg = R.haproxy_config(dir, "spec/support/hosts/driver_haproxy.lua")
      return ("%s%s timeout 120 haproxy -db -f '%s'"):format(H.CLEAN_ENV, env, cfg)
    end,
  }
end

local HOSTS = {
  cqueues = function() return lua_host("cqueues", "cqueues") end,
  luv = function() return lua_host("luv", "luv") end,
  copas = function() return lua_host("copas", "copas", "lua5.1") end,
  nvim = nvim_host,
  haproxy = haproxy_host,
}
R.NAMES = { "cqueues", "copas", "luv", "nvim", "haproxy" }

local found = {}
-- The host's runner, or nil and why it cannot run here (asked once).
function R.host(name)
  if found[name] == nil then
    local h, why = HOSTS[name]()
    found[name] = h or why
  end
  local h = found[name]
  if type(h) == "string" then return nil, h end
  return h
end

-- Runs the scenarios in host `name` over `kind` ("http" or "https"); `only`: a
-- list of scenario names. Returns name -> { ok, value, error }, and the
-- child's output.
function R.run(name, kind, only)
  local h = assert(R.host(name))
  local dir = H.tmpdir()
  local out_file = dir .. "/results"
  local env = ("DUCKY_STANDIN_DIR='%s' DUCKY_HOSTS_KIND=%s DUCKY_HOSTS_OUT='%s' DUCKY_HOSTS_ONLY='%s'")
    :format(H.standin().dir, kind, out_file, table.concat(only or {}, ","))
  local output, code = H.run(h.cmd(env, dir))
  local results = {}
  for line in (H.read_file(out_file) or ""):gmatch("[^\n]+") do
    local r = cjson.decode(line)
    results[r.name] = r
  end
  os.execute("rm -rf '" .. dir .. "'")
  return results, ("exit %s, output:\n%s"):format(tostring(code), output)
end

return R
