-- HAProxy in front of the API as examples/hosts/haproxy.cfg sets it up (with
-- examples/hosts/haproxy.lua), against the stand-in over TLS: the
-- authorization action puts the token on proxied requests (one exchange for
-- many), its background task refreshes it, HAProxy's own answers go on while a
-- Lua service waits for a slow call, a missing token is a 503 with its reason,
-- and with nbthread 2 and lua-load-per-thread the threads' Lua states share
-- one exchange. The suite's common host scenarios for HAProxy are in
-- spec/hosts_spec.lua.
local H = require("spec.helpers")
local R = require("spec.support.hosts.run")
local socket = require("socket")
local http = require("socket.http")
local ltn12 = require("ltn12")
local cjson = require("cjson")

local available, why = R.haproxy_available()
local test = available and it or function(name) pending(name .. " (" .. tostring(why) .. ")") end

local function get(port, path)
  local out = {}
  local t0 = socket.gettime()
  local _, code = http.request {
    url = ("http://127.0.0.1:%d%s"):format(port, path), sink = ltn12.sink.table(out),
  }
  return table.concat(out), code, socket.gettime() - t0
end

-- HAProxy on the example's configuration (edit(text) changes it) for a fresh
-- client id (t.id: this one; t.secret: another secret); returns { port, id, stop = fn }.
local function start(t)
  t = t or {}
  local dir = H.tmpdir()
  local port = H.free_port()
  local cfg = H.read_file("examples/hosts/haproxy.cfg")
  H.write_file(dir .. "/haproxy.cfg", t.edit and t.edit(cfg) or cfg)
  local id = t.id or H.new_id("haproxy")
  local env = {
    DUCKY_LUA_PATH = R.ROOT .. "/lua/?.lua", DUCKY_LUA_CPATH = R.ROOT .. "/build-lua5.3/?.so",
    DUCKY_EXAMPLES = R.ROOT .. "/examples", DUCKY_HAPROXY_BIND = "127.0.0.1:" .. port,
    DUCKY_API = "localhost:" .. H.standin().https_port, DUCKY_API_HOST = "localhost",
    DUCKY_CA_FILE = H.ca_file(), DUCKY_CLIENT_ID = id, DUCKY_CLIENT_SECRET = t.secret or H.secret(id),
    DUCKY_BASE_URL = H.base_url("https"), DUCKY_TOKEN_URL = H.token_url("https"),
    DUCKY_AUDIENCE = H.audience(), XDG_CACHE_HOME = dir .. "/cache",
  }
  local vars = {}
  for k, v in pairs(env) do vars[#vars + 1] = ("%s='%s'"):format(k, v) end
  local out, code = H.run(("%s%s haproxy -db -f '%s/haproxy.cfg' >'%s/log' 2>&1 & echo $! >'%s/pid'")
    :format(H.CLEAN_ENV, table.concat(vars, " "), dir, dir, dir))
  assert(code == 0, out)
  local pid = assert(tonumber(H.read_file(dir .. "/pid")))
  local up = pcall(H.wait_until, function()
    local s = socket.connect("127.0.0.1", port)
    if s then s:close() end
    return s ~= nil
  end, 10)
  local function stop()
    os.execute("kill " .. pid .. " 2>/dev/null")
    os.execute("rm -rf '" .. dir .. "'")
  end
  if not up then
    local log = H.read_file(dir .. "/log") or ""
    stop()
    error("haproxy did not listen within 10 s:\n" .. log)
  end
  return { port = port, id = id, stop = stop, dir = dir }
end

describe("ducky.haproxy, examples/hosts/haproxy.cfg", function()
  test("proxied requests carry the client's token: 20 requests, one exchange", function()
    local hp = start()
    finally(hp.stop)
    for i = 1, 20 do
      local body, code = get(hp.port, "/v3/echo?i=" .. i)
      assert.equals(200, code, body)
      local echo = cjson.decode(body)
      assert.equals(hp.id, echo.client_id)
      assert.matches("^Bearer tok_", echo.headers.authorization)
    end
    assert.equals(1, H.exchanges(hp.id))
  end)

  test("the background task refreshes the token before it runs out, with no request waiting", function()
    local id = H.new_id("haproxy")
    H.config(id, 3) -- tokens of this client live 3 s: refreshed inside the last 1.5 s
    local hp = start { id = id }
    finally(hp.stop)
    local body, code = get(hp.port, "/v3/echo")
    assert.equals(200, code, body)
    H.wait_until(function() return H.exchanges(hp.id) >= 2 end, 10, "a second exchange")
    local later, code2 = get(hp.port, "/v3/echo")
    assert.equals(200, code2, later)
    assert.is_true(H.exchanges(hp.id) <= 3)
  end)

  test("HAProxy's own answers go on while a Lua service waits 2 s for the API", function()
    -- one thread: a call that blocked it would hold up every connection
    local hp = start { edit = function(cfg)
      return (cfg:gsub("\nglobal\n", "\nglobal\n    nbthread 1\n", 1))
    end }
    finally(hp.stop)
    assert.equals(200, select(2, get(hp.port, "/ducky/ping"))) -- the token is in
    H.fault { path = "/v3/ping/protected", delay = 2, client_id = hp.id }
    local function arrived() return H.requests_to("/v3/ping/protected") end
    local before = arrived()
    local out = hp.dir .. "/slow"
    os.execute(("%scurl -s -o '%s' -w '%%{time_total}' http://127.0.0.1:%d/ducky/ping >'%s.time' &")
      :format(H.CLEAN_ENV, out, hp.port, out))
    H.wait_until(function() return arrived() > before end, 10, "the slow call to reach the stand-in")
    local body, code, took = get(hp.port, "/health")
    assert.equals(200, code)
    assert.equals("ok", body)
    assert.is_true(took < 0.5, ("/health took %.3f s"):format(took))
    H.wait_until(function() return (H.read_file(out .. ".time") or "") ~= "" end, 10,
      "the slow call's answer")
    assert.matches('"ready": true', H.read_file(out))
    assert.is_true(tonumber(H.read_file(out .. ".time")) >= 1.9)
  end)

  test("no token to give: a 503 naming the reason, and nothing reaches the API", function()
    local hp = start { secret = "not-the-secret" }
    finally(hp.stop)
    local before = H.stats().requests_by_path["/v3/echo"] or 0
    local body, code = get(hp.port, "/v3/echo")
    assert.equals(503, code)
    assert.matches("^no token: ducky auth error", body)
    assert.equals(before, H.stats().requests_by_path["/v3/echo"] or 0)
  end)

  test("nbthread 2 and lua-load-per-thread: a Lua state per thread, one exchange", function()
    local hp = start { edit = function(cfg)
      local text = cfg:gsub("\n    lua%-load ", "\n    nbthread 2\n    lua-load-per-thread ", 1)
      return text
    end }
    finally(hp.stop)
    for i = 1, 40 do
      local body, code = get(hp.port, "/v3/echo?i=" .. i)
      assert.equals(200, code, body)
    end
    assert.equals(1, H.exchanges(hp.id))
  end)
end)
