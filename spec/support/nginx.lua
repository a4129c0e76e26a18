-- Starts nginx from examples/nginx/nginx.conf for spec/nginx_spec.lua, with the
-- spec's locations (spec/support/nginx_locations.conf) and Lua
-- (spec/support/nginx_init.lua) added, against the stand-in.
--
-- What nginx loads (ducky.so, ducky/ngx.lua, the spec's files, the stand-in's
-- CA) is copied into the nginx prefix with world-readable modes: nginx's
-- workers may run as an unprivileged user (root's default is nobody) that
-- cannot enter the checkout (a 0700 home, a `mktemp -d` folder).
local H = require("spec.helpers")
local socket = require("socket")

local N = {}

N.ROOT = os.getenv("PWD") or "."
-- the LuaJIT build nginx loads: make check's test build, or the one named
N.MODULE = N.ROOT .. "/" .. (os.getenv("DUCKY_LUAJIT_BUILD") or "build-luajit") .. "/ducky.so"
N.LUA_MODULE = "/usr/lib/nginx/modules/ngx_http_lua_module.so"

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

function N.runnable()
  return exists(N.MODULE) and exists(N.LUA_MODULE)
    and (select(2, H.run("command -v nginx")) == 0)
end

local function replace(s, old, new)
  local i, j = s:find(old, 1, true)
  assert(i, "examples/nginx/nginx.conf no longer holds: " .. old)
  return s:sub(1, i - 1) .. new .. s:sub(j + 1)
end

local function replace_all(s, old, new)
  assert(s:find(old, 1, true), "examples/nginx/nginx.conf no longer holds: " .. old)
  local out, at = {}, 1
  while true do
    local i, j = s:find(old, at, true)
    if not i then break end
    out[#out + 1] = s:sub(at, i - 1) .. new
    at = j + 1
  end
  out[#out + 1] = s:sub(at)
  return table.concat(out)
end

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
  local conf = H.read_file(N.ROOT .. "/examples/nginx/nginx.conf")
  local https = H.base_url("https"):match("^https://localhost:(%d+)")
  conf = replace(conf, "listen 127.0.0.1:8080 reuseport;", ("listen 127.0.0.1:%d reuseport;"):format(port))
  conf = replace(conf, 'lua_package_path "/usr/share/lua/5.1/?.lua;;";',
    ('lua_package_path "%s/lua/?.lua;;";'):format(prefix))
  conf = replace(conf, 'lua_package_cpath "/usr/lib/x86_64-linux-gnu/lua/5.1/?.so;;";',
    ('lua_package_cpath "%s/lib/?.so;;";'):format(prefix))
  conf = replace(conf, "worker_processes 4;", ("worker_processes %d;"):format(workers or 4))
  conf = replace(conf, "server api.ducky.eco:443;", ("server 127.0.0.1:%s;"):format(https))
  conf = replace_all(conf, "proxy_set_header Host api.ducky.eco;", "proxy_set_header Host localhost;")
  conf = replace_all(conf, "proxy_ssl_name api.ducky.eco;", "proxy_ssl_name localhost;")
  conf = replace_all(conf, "/etc/ssl/certs/ca-certificates.crt", prefix .. "/ca.pem")
  -- the spec's additions: a small thread pool, its locations, its Lua
  conf = replace(conf, "events {", "thread_pool small threads=2;\nthread_pool abort threads=1;\n\nevents {")
  conf = replace(conf, "lua_shared_dict ducky_tokens 1m;",
    "lua_shared_dict ducky_tokens 1m;\n    lua_shared_dict spec 1m;")
  conf = replace(conf, "init_by_lua_block {",
    'init_by_lua_block {\n        dofile(ngx.config.prefix() .. "nginx_init.lua")')
  conf = replace(conf, "API:init_worker()", "API:init_worker()\n        SPEC.init_worker()")
  conf = replace(conf, "location = /plain {", "include nginx_locations.conf;\n\n        location = /plain {")
  return conf
end

-- Starts nginx; returns a handle with url(), log() and stop(). env: extra
-- variables for nginx's environment (the master's: init_by_lua reads them).
function N.start(id, opts)
  opts = opts or {}
  local prefix = H.tmpdir()
  local port = H.free_port()
  sh(("mkdir -p %s/logs %s/tmp %s/lib %s/lua/ducky && chmod 755 %s"):format(prefix, prefix, prefix,
    prefix, prefix))
  sh(("cp %s %s/lib/ducky.so && cp %s/lua/ducky/ngx.lua %s/lua/ducky/")
    :format(N.MODULE, prefix, N.ROOT, prefix))
  sh(("cp %s/spec/support/nginx_init.lua %s/spec/support/nginx_locations.conf %s/ && cp %s %s/ca.pem")
    :format(N.ROOT, N.ROOT, prefix, H.ca_file(), prefix))
  sh(("chmod -R a+rX %s && chmod 755 %s/lib/ducky.so"):format(prefix, prefix))
  H.write_file(prefix .. "/nginx.conf", N.config(prefix, port, opts.workers))
  local env = { DUCKY_CLIENT_ID = id, DUCKY_CLIENT_SECRET = H.secret(id),
    DUCKY_BASE_URL = H.base_url(), DUCKY_TOKEN_URL = H.token_url(), DUCKY_AUDIENCE = H.audience() }
  for k, v in pairs(opts.env or {}) do env[k] = v end
  local vars = {}
  for k, v in pairs(env) do vars[#vars + 1] = ("%s=%q"):format(k, v) end
  -- nginx dies with this Lua process even if a test aborts
  local cmd = ("cd %s && %s %snginx -p %s/ -c %s/nginx.conf >%s/out.log 2>&1 & n=$!;"
    .. " (while kill -0 %d 2>/dev/null && kill -0 $n 2>/dev/null; do sleep 0.5; done; kill $n 2>/dev/null) &"
    .. " echo $n")
    :format(prefix, table.concat(vars, " "), H.CLEAN_ENV, prefix, prefix, prefix,
      tonumber(H.read_file("/proc/self/stat"):match("^(%d+)")))
  local pid = tonumber(io.popen(cmd):read("*l"))
  local handle = {
    prefix = prefix,
    url = function(path) return ("http://127.0.0.1:%d%s"):format(port, path) end,
    log = function() return H.read_file(prefix .. "/logs/error.log") or "" end,
    stop = function()
      os.execute("kill " .. pid .. " 2>/dev/null")
      os.execute("sleep 0.2; rm -rf " .. prefix)
    end,
  }
  for _ = 1, 100 do
    local c = socket.connect("127.0.0.1", port)
    if c then
      c:close()
      return handle
    end
    socket.sleep(0.05)
  end
  local out = (H.read_file(prefix .. "/out.log") or "") .. handle.log()
  handle.stop()
  error("nginx did not start: " .. out)
end

-- Starts nginx from the example's configuration with init_by_lua's new{}
-- options replaced by `options` (Lua source), for at most 2 s; returns its
-- output and exit code (124: it was running when stopped). `nginx -t` would
-- not do: the Lua module skips init_by_lua when testing a configuration.
function N.check(options)
  local prefix = H.tmpdir()
  sh(("mkdir -p %s/logs %s/tmp %s/lib %s/lua/ducky && chmod 755 %s"):format(prefix, prefix, prefix,
    prefix, prefix))
  sh(("cp %s %s/lib/ducky.so && cp %s/lua/ducky/ngx.lua %s/lua/ducky/ && cp %s %s/ca.pem")
    :format(N.MODULE, prefix, N.ROOT, prefix, H.ca_file(), prefix))
  sh(("chmod -R a+rX %s"):format(prefix))
  local conf = N.config(prefix, H.free_port(), 1)
  conf = conf:gsub('dofile%(ngx.config.prefix%(%) .. "nginx_init.lua"%)', "")
  conf = conf:gsub("SPEC.init_worker%(%)", "")
  conf = conf:gsub("include nginx_locations.conf;", "")
  local i = conf:find("API = require(\"ducky.ngx\").new{", 1, true)
  local j = conf:find("\n        }\n", i, true)
  conf = conf:sub(1, i - 1) .. "API = require(\"ducky.ngx\").new" .. options .. conf:sub(j + 10)
  H.write_file(prefix .. "/nginx.conf", conf)
  local out, code = N.run(("timeout 2 nginx -p %s/ -c %s/nginx.conf"):format(prefix, prefix))
  os.execute("rm -rf " .. prefix)
  return out, code
end

return N
