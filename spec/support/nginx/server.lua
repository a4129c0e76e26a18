-- Starts nginx from examples/nginx/nginx.conf for the spec/nginx_*_spec.lua
-- files, with the spec's locations (spec/support/nginx/locations.conf) and Lua
-- (spec/support/nginx/init_by_lua.lua) added, against the stand-in; and the
-- little HTTP those specs speak to it.
--
-- What nginx loads (ducky.so, ducky/ngx.lua and ducky/ngx/, the spec's files,
-- the stand-in's CA) is copied into the nginx prefix with world-readable
-- modes: nginx's workers may run as an unprivileged user (root's default is
-- nobody) that cannot enter the checkout (a 0700 home, a `mktemp -d` folder).
local H = require("spec.helpers")
local cjson = require("cjson")
local socket = require("socket")
local http = require("socket.http")
local ltn12 = require("ltn12")
local busted = require("busted") -- the hooks a spec file sees as globals

local N = {}

N.ROOT = os.getenv("PWD") or "."
-- the LuaJIT build nginx loads: make check's test build, or the one named
N.MODULE = N.ROOT .. "/" .. (os.getenv("DUCKY_LUAJIT_BUILD") or "build-luajit") .. "/ducky.so"
N.LUA_MODULE = "/usr/lib/nginx/modules/ngx_http_lua_module.so"
N.EXAMPLE = N.ROOT .. "/examples/nginx/nginx.conf"
local SUPPORT = N.ROOT .. "/spec/support/nginx"

local LUA_PID = tonumber(H.read_file("/proc/self/stat"):match("^(%d+)"))

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

function N.runnable()
  return exists(N.MODULE) and exists(N.LUA_MODULE)
    and (select(2, H.run("command -v nginx")) == 0)
end

-- Polls fn() every 20 ms until it returns a true value, which it returns;
-- raises naming `what` once `seconds` pass first.
function N.wait(what, seconds, fn)
  local deadline = socket.gettime() + seconds
  while true do
    local v = fn()
    if v then return v end
    if socket.gettime() > deadline then error(("waited %g s for %s"):format(seconds, what), 2) end
    socket.sleep(0.02)
  end
end

-- The first occurrence of `old` in s replaced by `new` (plain text); raises
-- when s does not hold it (the example changed under the spec).
function N.replace(s, old, new, all)
  assert(s:find(old, 1, true), "examples/nginx/nginx.conf no longer holds: " .. old)
  local out, at = {}, 1
  while true do
    local i, j = s:find(old, at, true)
    if not i then break end
    out[#out + 1] = s:sub(at, i - 1) .. new
    at = j + 1
    if not all then break end
  end
  out[#out + 1] = s:sub(at)
  return table.concat(out)
end
local replace = N.replace

-- A shell command without the sanitizer runtime the suite may preload into
-- Lua (cp, seq or curl under it would abort on their own leaks).
function N.run(cmd)
  return H.run("unset LD_PRELOAD; " .. cmd)
end

local function sh(cmd)
  local out, code = N.run(cmd)
  assert(code == 0, cmd .. ": " .. out)
  return out
end

-- The example's configuration made to run here: ports, paths, the stand-in.
function N.config(prefix, port, workers)
  local conf = H.read_file(N.EXAMPLE)
  local https = H.base_url("https"):match("^https://localhost:(%d+)")
  conf = replace(conf, "listen 127.0.0.1:8080 reuseport;", ("listen 127.0.0.1:%d reuseport;"):format(port))
  conf = replace(conf, 'lua_package_path "/usr/local/share/lua/5.1/?.lua;;";',
    ('lua_package_path "%s/lua/?.lua;;";'):format(prefix))
  conf = replace(conf, 'lua_package_cpath "/usr/local/lib/lua/5.1/?.so;;";',
    ('lua_package_cpath "%s/lib/?.so;;";'):format(prefix))
  conf = replace(conf, "worker_processes 4;", ("worker_processes %d;"):format(workers or 4))
  conf = replace(conf, "server api.ducky.eco:443;", ("server 127.0.0.1:%s;"):format(https))
  conf = replace(conf, "proxy_set_header Host api.ducky.eco;", "proxy_set_header Host localhost;", true)
  conf = replace(conf, "proxy_ssl_name api.ducky.eco;", "proxy_ssl_name localhost;", true)
  conf = replace(conf, "/etc/ssl/certs/ca-certificates.crt", prefix .. "/ca.pem", true)
  -- the spec's additions: small thread pools, its locations, its Lua
  conf = replace(conf, "events {", "thread_pool small threads=2;\nthread_pool abort threads=1;\n\nevents {")
  conf = replace(conf, "lua_shared_dict ducky_tokens 1m;",
    "lua_shared_dict ducky_tokens 1m;\n    lua_shared_dict spec 1m;\n    lua_shared_dict tiny 12k;\n"
    .. "    lua_shared_dict measure 1m;")
  conf = replace(conf, "init_by_lua_block {",
    'init_by_lua_block {\n        dofile(ngx.config.prefix() .. "init_by_lua.lua")')
  conf = replace(conf, "API:init_worker()", "API:init_worker()\n        SPEC.init_worker()")
  conf = replace(conf, "location = /plain {", "include locations.conf;\n\n        location = /plain {")
  return conf
end

-- A prefix folder holding what nginx loads; returns its path.
function N.install()
  local prefix = H.tmpdir()
  sh(("mkdir -p %s/logs %s/tmp %s/lib %s/lua/ducky/ngx && chmod 755 %s"):format(prefix, prefix, prefix,
    prefix, prefix))
  sh(("cp %s %s/lib/ducky.so && cp %s/lua/ducky/ngx.lua %s/lua/ducky/redis_store.lua %s/lua/ducky/"
    .. " && cp %s/lua/ducky/ngx/*.lua %s/lua/ducky/ngx/")
    :format(N.MODULE, prefix, N.ROOT, N.ROOT, prefix, N.ROOT, prefix))
  sh(("cp %s/init_by_lua.lua %s/locations.conf %s/ && cp %s %s/ca.pem")
    :format(SUPPORT, SUPPORT, prefix, H.ca_file(), prefix))
  sh(("chmod -R a+rX %s && chmod 755 %s/lib/ducky.so"):format(prefix, prefix))
  return prefix
end

local function alive(pid)
  local stat = H.read_file("/proc/" .. pid .. "/stat")
  return stat ~= nil and stat:match("^%d+ %b() (%a)") ~= "Z"
end

-- The variables nginx's master starts with: the stand-in's, the
-- credentials of `id`, and env (a table; false removes one).
local function environment(id, env)
  local vars = { DUCKY_CLIENT_ID = id, DUCKY_CLIENT_SECRET = H.secret(id),
    DUCKY_BASE_URL = H.base_url(), DUCKY_TOKEN_URL = H.token_url(), DUCKY_AUDIENCE = H.audience() }
  for k, v in pairs(env or {}) do vars[k] = v or nil end
  local out = {}
  for k, v in pairs(vars) do out[#out + 1] = ("%s=%q"):format(k, v) end
  return table.concat(out, " ")
end

-- the handles of the nginx N.start started and nobody stopped yet
local running = {}

local function handle(prefix, port, pid)
  local h = { prefix = prefix, port = port, pid = pid }
  function h.url(path) return ("http://127.0.0.1:%d%s"):format(port, path) end
  function h.log() return H.read_file(prefix .. "/logs/error.log") or "" end
  function h.stop()
    if not running[h] then return end
    running[h] = nil
    os.execute("kill " .. pid .. " 2>/dev/null")
    pcall(N.wait, "nginx to stop", 10, function() return not alive(pid) end)
    os.execute("rm -rf " .. prefix)
  end
  running[h] = true
  return h
end

-- Stops every nginx N.start started that is still running.
function N.stop_all()
  local list = {}
  for h in pairs(running) do list[#list + 1] = h end
  for _, h in ipairs(list) do h.stop() end
end

-- In a describe block: before each test the stand-in's faults and counts reset
-- and set(id), a fresh client id for the nginx the test starts; after it, every
-- nginx it started stopped.   N.each(function(i) id = i end)
function N.each(set)
  busted.before_each(function()
    H.reset()
    set(H.new_id("nginx"))
  end)
  busted.after_each(N.stop_all)
end

-- Starts nginx; returns a handle with url(), log() and stop(). opts: workers,
-- env (variables for nginx's master: init_by_lua reads them), edit (a
-- function given the configuration text, returning the one to run).
function N.start(id, opts)
  opts = opts or {}
  local prefix, port = N.install(), H.free_port()
  local conf = N.config(prefix, port, opts.workers)
  if opts.edit then conf = opts.edit(conf, prefix) end
  H.write_file(prefix .. "/nginx.conf", conf)
  -- nginx dies with this Lua process even if a test aborts
  local cmd = ("cd %s && %s %snginx -p %s/ -c %s/nginx.conf >%s/out.log 2>&1 & n=$!;"
    .. " (while kill -0 %d 2>/dev/null && kill -0 $n 2>/dev/null; do sleep 0.5; done; kill $n 2>/dev/null) &"
    .. " echo $n")
    :format(prefix, environment(id, opts.env), H.CLEAN_ENV, prefix, prefix, prefix, LUA_PID)
  local p = io.popen(cmd)
  local pid = tonumber(p:read("*l"))
  p:close()
  local h = handle(prefix, port, pid)
  local up = pcall(N.wait, "nginx to listen", 5, function()
    local c = socket.connect("127.0.0.1", port)
    if c then c:close() end
    return c ~= nil or not alive(pid)
  end)
  if up and alive(pid) then return h end
  local out = (H.read_file(prefix .. "/out.log") or "") .. h.log()
  h.stop()
  error("nginx did not start: " .. out)
end

-- Starts nginx from the example's configuration with init_by_lua's new{}
-- options replaced by `options` (Lua source), for at most 2 s; returns its
-- output and exit code (124: it was running when stopped). `nginx -t` would
-- not do: the Lua module skips init_by_lua when testing a configuration.
function N.check(options)
  local prefix = N.install()
  local conf = N.config(prefix, H.free_port(), 1)
  conf = conf:gsub('dofile%(ngx.config.prefix%(%) .. "init_by_lua.lua"%)', "")
  conf = conf:gsub("SPEC.init_worker%(%)", "")
  conf = conf:gsub("include locations.conf;", "")
  local i = conf:find("API = require(\"ducky.ngx\").new{", 1, true)
  local j = conf:find("\n        }\n", i, true)
  conf = conf:sub(1, i - 1) .. "API = require(\"ducky.ngx\").new" .. options .. conf:sub(j + 10)
  H.write_file(prefix .. "/nginx.conf", conf)
  local out, code = N.run(("timeout 2 nginx -p %s/ -c %s/nginx.conf"):format(prefix, prefix))
  os.execute("rm -rf " .. prefix)
  return out, code
end

-- ---- talking to it ----------------------------------------------------------

-- GET url: body, status, headers.
function N.get(url, headers)
  local out = {}
  local _, code, h = http.request{ url = url, headers = headers, sink = ltn12.sink.table(out) }
  return table.concat(out), code, h
end

-- { body, status } of GET url.
function N.answer(url)
  local body, code = N.get(url)
  return { body, code }
end

function N.get_json(url)
  local body, code = N.get(url)
  assert(code == 200, ("GET %s: %s %s"):format(url, tostring(code), body))
  return cjson.decode(body)
end

-- Runs `n` requests to url at once (curl processes); returns their statuses.
function N.parallel(url, n)
  local out = N.run(("seq %d | %sxargs -P %d -I{} curl -s -o /dev/null -w '%%{http_code}\\n' %q")
    :format(n, H.CLEAN_ENV, n, url))
  local codes = {}
  for code in out:gmatch("%d%d%d") do codes[#codes + 1] = code end
  return codes
end

-- Runs a shell command in the background; returns a handle: done() (has it
-- ended?) and output() (what it wrote, so far).
function N.spawn(cmd)
  local dir = H.tmpdir()
  os.execute(("( (unset LD_PRELOAD; %s) >%s/out 2>&1 </dev/null; touch %s/done ) &"):format(cmd, dir, dir))
  return {
    done = function() return exists(dir .. "/done") end,
    output = function() return H.read_file(dir .. "/out") or "" end,
    wait = function(seconds) -- its output, once it ended
      N.wait("a background command", seconds, function() return exists(dir .. "/done") end)
      local out = H.read_file(dir .. "/out") or ""
      os.execute("rm -rf " .. dir)
      return out
    end,
  }
end

-- stats() once done(stats) holds (every worker's counts reach the dict within
-- a second): polled for at most 5 s.
function N.stats_when(url, done)
  local s
  pcall(N.wait, "stats", 5, function()
    s = N.get_json(url)
    return done(s)
  end)
  return s
end

-- How many entries of list equal value.
function N.count(list, value)
  local n = 0
  for _, v in ipairs(list) do
    if v == value then n = n + 1 end
  end
  return n
end

return N
