-- nginx with the Lua module (LuaJIT), running examples/nginx/nginx.conf against
-- the stand-in: answers, one token exchange for 4 workers, and an event loop
-- that keeps serving while Ducky calls wait on a slow API.
local H = require("spec.helpers")
local socket = require("socket")
local http = require("socket.http")

local ROOT = os.getenv("PWD") or "."
local MODULE = ROOT .. "/build-luajit/ducky.so"
local LUA_MODULE = "/usr/lib/nginx/modules/ngx_http_lua_module.so"

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

local function replace(s, old, new)
  local i, j = s:find(old, 1, true)
  assert(i, "examples/nginx/nginx.conf no longer holds: " .. old)
  return s:sub(1, i - 1) .. new .. s:sub(j + 1)
end

-- Starts nginx from the example config; returns a handle with url() and stop().
local function start_nginx(id, workers)
  local prefix = H.tmpdir()
  local port = H.free_port()
  local conf = H.read_file(ROOT .. "/examples/nginx/nginx.conf")
  conf = replace(conf, "listen 127.0.0.1:8080 reuseport;", ("listen 127.0.0.1:%d reuseport;"):format(port))
  conf = replace(conf, 'lua_package_path "/usr/share/lua/5.1/?.lua;;";',
    ('lua_package_path "%s/lua/?.lua;;";'):format(ROOT))
  conf = replace(conf, 'lua_package_cpath "/usr/lib/x86_64-linux-gnu/lua/5.1/?.so;;";',
    ('lua_package_cpath "%s/build-luajit/?.so;;";'):format(ROOT))
  if workers then
    conf = replace(conf, "worker_processes 4;", ("worker_processes %d;"):format(workers))
  end
  os.execute(("mkdir -p %s/logs %s/tmp && chmod 755 %s"):format(prefix, prefix, prefix))
  local f = assert(io.open(prefix .. "/nginx.conf", "wb"))
  f:write(conf)
  f:close()
  -- nginx dies with this Lua process even if a test aborts
  local cmd = ("cd %s && DUCKY_CLIENT_ID=%q DUCKY_CLIENT_SECRET=%q DUCKY_BASE_URL=%q DUCKY_TOKEN_URL=%q"
    .. " DUCKY_AUDIENCE=%q %snginx -p %s -c %s/nginx.conf >%s/out.log 2>&1 & n=$!;"
    .. " (while kill -0 %d 2>/dev/null && kill -0 $n 2>/dev/null; do sleep 0.5; done; kill $n 2>/dev/null) &"
    .. " echo $n")
    :format(prefix, id, H.secret(id), H.base_url(), H.token_url(), H.audience(), H.CLEAN_ENV,
      prefix, prefix, prefix, tonumber(H.read_file("/proc/self/stat"):match("^(%d+)")))
  local pid = tonumber(io.popen(cmd):read("*l"))
  local handle = {
    url = function(path) return ("http://127.0.0.1:%d%s"):format(port, path) end,
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
  handle.stop()
  error("nginx did not start: " .. (H.read_file(prefix .. "/out.log") or ""))
end

local runnable = exists(MODULE) and exists(LUA_MODULE) and os.execute("command -v nginx >/dev/null")
local test = runnable and it or pending

describe("nginx with ducky.ngx", function()
  local nginx, id

  before_each(function()
    H.reset()
    id = H.new_id("nginx")
  end)

  after_each(function()
    if nginx then nginx.stop() end
    nginx = nil
  end)

  test("answers routes with Ducky calls, a health check and a plain route", function()
    nginx = start_nginx(id)
    local body, code = http.request(nginx.url("/ducky/echo?year=2026"))
    assert.equals(200, code, body)
    local echo = require("cjson").decode(body)
    assert.equals("/v3/echo", echo.path)
    assert.same({ "2026" }, echo.args.year)
    assert.equals(id, echo.client_id)
    body, code = http.request(nginx.url("/health"))
    assert.equals(200, code)
    assert.equals("ok\n", body)
    body, code = http.request(nginx.url("/plain"))
    assert.equals(200, code)
    assert.equals("plain\n", body)
  end)

  test("reports an API failure as an error object that crossed the thread boundary", function()
    nginx = start_nginx(id)
    H.fault{ path = "/v3/echo", status = 404, times = 3 }
    local body, code = http.request(nginx.url("/ducky/echo"))
    assert.equals(502, code)
    assert.matches('"error":"http"', body)
    assert.matches("answered 404", body)
  end)

  test("4 workers x 200 requests make one token exchange (lua_shared_dict store)", function()
    nginx = start_nginx(id)
    local workers = {}
    for i = 1, 800 do -- a new connection each: reuseport spreads them over the workers
      local out = {}
      local _, code, headers = http.request{ url = nginx.url("/ducky/echo?i=" .. i),
        sink = require("ltn12").sink.table(out) }
      assert.equals(200, code, table.concat(out))
      workers[headers["x-worker"]] = true
    end
    local n = 0
    for _ in pairs(workers) do n = n + 1 end
    assert.equals(4, n)
    assert.equals(1, H.exchanges(id))
  end)

  test("while 20 calls wait 2 s on a slow API, a plain route answers within 100 ms", function()
    nginx = start_nginx(id, 1) -- one worker: the slow calls and the plain route share it
    assert(http.request(nginx.url("/health"))) -- token fetched before the clock starts
    H.fault{ path = "/v3/echo", delay = 2, times = 20 }
    local slow = H.tmpdir()
    os.execute(("for i in $(seq 20); do %scurl -s -o /dev/null -w '%%{http_code} %%{time_total}\\n'"
      .. " %q >>%s/slow.txt & done"):format(H.CLEAN_ENV, nginx.url("/ducky/echo"), slow))
    socket.sleep(0.5) -- all 20 are waiting on the API now
    for _ = 1, 5 do
      local t = socket.gettime()
      local body, code = http.request(nginx.url("/plain"))
      local elapsed = socket.gettime() - t
      assert.equals(200, code, body)
      assert.is_true(elapsed < 0.1, ("the plain route took %.3f s"):format(elapsed))
    end
    os.execute("sleep 2.5")
    local lines = 0
    for line in io.lines(slow .. "/slow.txt") do
      local status, time = line:match("^(%d+) ([%d.]+)")
      assert.equals("200", status)
      assert.is_true(tonumber(time) >= 1.9, line)
      lines = lines + 1
    end
    assert.equals(20, lines)
    os.execute("rm -rf " .. slow)
  end)
end)
