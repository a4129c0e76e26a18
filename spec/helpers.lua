-- Helpers for the busted specs: start/find the local stand-in
-- (spec/support/standin.py) and talk to its /_control endpoints.
--   local H = require("spec.helpers")      -- run from the repository root
local http = require("socket.http")
local ltn12 = require("ltn12")
local socket = require("socket")
local cjson = require("cjson")

local H = {}

-- sentinel for H.opts: an override set to H.NIL removes the key
H.NIL = setmetatable({}, { __tostring = function() return "H.NIL" end })

local PYTHON = "/usr/bin/python3"
local STANDIN = "spec/support/standin.py"

local info -- decoded standin.json, once per Lua process
local id_counter = 0
local pid -- of this Lua process

-- works on Lua 5.1 (Debian's default `busted`) and 5.4
local tointeger = math.tointeger or function(v)
  if type(v) == "number" and v % 1 == 0 then return v end
  return nil
end

-- The whole content of a file, or nil.
function H.read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end
local read_file = H.read_file

function H.write_file(path, s)
  local f = assert(io.open(path, "wb"))
  f:write(s)
  f:close()
end

-- A TCP port on 127.0.0.1 that nothing listens on (free to take).
function H.free_port()
  local s = assert(socket.bind("127.0.0.1", 0))
  local _, port = s:getsockname()
  s:close()
  return tonumber(port)
end

-- A client made from H.opts(overrides), and the list its `log` fills.
function H.client_with_log(overrides)
  local events = {}
  local o = H.opts(overrides)
  o.log = function(ev) events[#events + 1] = ev end
  return require("ducky").client(o), events, o
end

local function my_pid()
  -- /proc/self is the process that opens it: this Lua interpreter
  pid = pid or tointeger(tonumber(read_file("/proc/self/stat"):match("^(%d+)")))
  return pid
end

local function alive(p)
  -- a zombie (state Z) has exited already
  local stat = tointeger(p) and read_file("/proc/" .. tointeger(p) .. "/stat")
  return stat ~= nil and stat:match("^%d+ %b() (%a)") ~= "Z"
end

-- lua-cjson decodes every number as a float: turn integral ones into integers
local function ints(v)
  if type(v) == "number" then return tointeger(v) or v end
  if type(v) == "table" then
    for k, x in pairs(v) do v[k] = ints(x) end
  end
  return v
end

local function load_info(dir)
  local s = read_file(dir .. "/standin.json")
  if not s then return nil end
  local ok, t = pcall(cjson.decode, s)
  if ok and type(t) == "table" and alive(t.pid) then return ints(t) end
  return nil
end

-- Helper processes run without the sanitizer runtime the suite may preload into Lua.
H.CLEAN_ENV = "env -u LD_PRELOAD "

-- The interpreter and build under test (tools/test.sh sets both), and the
-- environment a child Lua process needs to load that build.
H.LUA = os.getenv("DUCKY_LUA") or "lua5.4"
H.BUILD = os.getenv("DUCKY_BUILD") or "build"
H.CHILD_ENV = ("LUA_CPATH='./%s/?.so;;' LUA_PATH='./lua/?.lua;./?.lua;;'"):format(H.BUILD)

-- Runs a shell command; returns its output (stdout and stderr) and exit code.
-- (popen's close() tells no exit status on Lua 5.1, so the shell reports it.)
function H.run(cmd)
  local p = assert(io.popen("{ " .. cmd .. "\n} 2>&1; echo \"__exit=$?\""))
  local out = p:read("*a")
  p:close()
  local code = tonumber(out:match("__exit=(%d+)%s*$"))
  return (out:gsub("__exit=%d+%s*$", "")), code
end

-- Runs a Lua script in a child process of the interpreter and build under test
-- (a crash there fails the spec, not the suite), with the stand-in this process
-- uses and env (a table name -> value) added. Returns its output and exit code.
function H.run_lua(script, env)
  local dir = H.tmpdir()
  H.write_file(dir .. "/child.lua", script)
  local vars = { H.CHILD_ENV, ("DUCKY_STANDIN_DIR='%s'"):format(H.standin().dir) }
  for k, v in pairs(env or {}) do vars[#vars + 1] = ("%s='%s'"):format(k, v) end
  local out, code = H.run(("%s %s '%s/child.lua'"):format(table.concat(vars, " "), H.LUA, dir))
  os.execute("rm -rf '" .. dir .. "'")
  return out, code
end

function H.tmpdir()
  local p = assert(io.popen(H.CLEAN_ENV .. "mktemp -d"))
  local dir = p:read("*l")
  p:close()
  assert(dir and dir ~= "", "mktemp -d failed")
  return dir
end

function H.standin()
  if info then return info end
  local env_dir = os.getenv("DUCKY_STANDIN_DIR")
  if env_dir and env_dir ~= "" then
    info = load_info(env_dir)
    if info then return info end
  end
  local dir = H.tmpdir()
  local cmd = string.format("%s%s %s --dir '%s' --exit-with %d --remove-dir >'%s/log' 2>&1 &",
    H.CLEAN_ENV, PYTHON, STANDIN, dir, my_pid(), dir)
  os.execute(cmd)
  local deadline = socket.gettime() + 10
  while socket.gettime() < deadline do
    info = load_info(dir)
    if info then return info end
    socket.sleep(0.05)
  end
  error("stand-in did not start within 10 s (" .. cmd .. "); log:\n"
    .. (read_file(dir .. "/log") or "(no log)"))
end

local HOSTS = {
  http = { "http", "127.0.0.1", "http_port" },
  https = { "https", "localhost", "https_port" },
  wrong_host = { "https", "localhost", "wrong_host_port" },
  expired = { "https", "localhost", "expired_port" },
  ipv6 = { "http", "[::1]", "ipv6_port" },
}

local function root_url(kind)
  local h = HOSTS[kind or "http"] or error("unknown stand-in kind: " .. tostring(kind), 3)
  local port = H.standin()[h[3]]
  if type(port) ~= "number" then error("stand-in has no " .. h[3] .. " (IPv6 unavailable?)", 3) end
  return string.format("%s://%s:%d", h[1], h[2], port)
end

function H.base_url(kind) return root_url(kind) .. "/v3" end
function H.token_url(kind) return root_url(kind) .. "/oauth/token" end
function H.has_ipv6() return type(H.standin().ipv6_port) == "number" end
function H.ca_file() return H.standin().ca_file end
function H.other_ca_file() return H.standin().other_ca_file end
function H.audience() return H.standin().audience end

-- POST (GET for "stats") /_control/<name> with a JSON body; returns the decoded answer
function H.control(name, body)
  local url = root_url("http") .. "/_control/" .. name
  local out = {}
  local req = { url = url, sink = ltn12.sink.table(out), method = "GET" }
  if name ~= "stats" then
    local data = cjson.encode(body or {})
    req.method = "POST"
    req.source = ltn12.source.string(data)
    req.headers = { ["content-type"] = "application/json", ["content-length"] = #data }
  end
  local ok, code = http.request(req)
  local text = table.concat(out)
  if not ok or code ~= 200 then
    error(string.format("stand-in control %s failed: %s %s", name, tostring(code), text), 2)
  end
  return ints(cjson.decode(text))
end

function H.stats() return H.control("stats") end
function H.reset() return H.control("reset") end
function H.fault(t) return H.control("fault", t) end
function H.revoke(id) return H.control("revoke", { client_id = id }) end
function H.ban(id) return H.control("ban", { client_id = id }) end
function H.unban(id) return H.control("unban", { client_id = id }) end
function H.config(id, expires_in) return H.control("config", { client_id = id, expires_in = expires_in }) end

function H.exchanges(id)
  return H.stats().exchanges_by_client[id] or 0
end

function H.new_id(prefix)
  id_counter = id_counter + 1
  return string.format("%s-%d-%x-%x%04x", prefix or "client", id_counter, my_pid(), os.time(),
    math.random(0, 0xffff))
end

function H.secret(id) return "secret-" .. id end

function H.opts(overrides)
  local id = H.new_id()
  local o = {
    client_id = id, client_secret = H.secret(id),
    base_url = H.base_url(), token_url = H.token_url(), audience = H.audience(),
    token_cache = false, retries = 0, timeout = 5,
  }
  for k, v in pairs(overrides or {}) do
    if v == H.NIL then o[k] = nil else o[k] = v end
  end
  return o
end

return H
