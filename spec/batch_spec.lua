-- client:batch(): many requests at once over libcurl's multi interface, in
-- order, nothing lost; one token for the batch; 401 refresh once; retries per
-- item; HTTP/2 multiplexing against a local nginx.
local H = require("spec.helpers")
local ducky = require("ducky")
local socket = require("socket")

local function echo_items(n, extra)
  local items = {}
  for i = 1, n do items[i] = { "GET", "/echo", { query = { i = i } } } end
  for _, it in ipairs(extra or {}) do items[#items + 1] = it end
  return items
end

local function count(t)
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  return n
end

describe("client:batch", function()
  before_each(function() H.reset() end)

  it("returns one result per request, in order, exactly one of res and err each", function()
    local c = ducky.client(H.opts{})
    local out = c:batch(echo_items(30))
    assert.equals(30, #out)
    for i, r in ipairs(out) do
      assert.is_nil(r.err)
      assert.equals(200, r.res.status)
      assert.same({ tostring(i) }, r.res.json.args.i)
      assert.equals(1, r.res.attempts)
    end
    assert.equals(30, c:stats().requests)
  end)

  it("an empty batch is an empty list", function()
    assert.same({}, ducky.client(H.opts{}):batch({}))
  end)

  it("mixes successes, HTTP errors, refused URLs, faults and timeouts in one batch", function()
    local c = ducky.client(H.opts{ retries = 1 })
    H.fault{ path = "/v3/echo/retry", status = 503, headers = { ["Retry-After"] = "0" }, times = 1 }
    -- more drops than any attempt can use: libcurl itself resends a request once
    -- on a kept-alive connection that dies before any answer (more of those
    -- under load), and each resend takes a drop
    H.fault{ path = "/v3/echo/drop", drop = "before_headers", times = 50 }
    H.fault{ path = "/v3/echo/slow", delay = 3, times = 2 }
    local out = c:batch({
      { "GET", "/echo/a" },
      { "GET", "/status/404" },
      { "GET", "/echo/retry" },
      { "GET", "http://elsewhere.invalid/x" },
      { "POST", "/echo/p", { json = { n = 1 } } },
      { "GET", "/echo/drop" },
      { "GET", "/echo/slow", { timeout = 0.5 } },
      { "DELETE", "/echo/d" },
    }, { concurrency = 3 })
    assert.equals(200, out[1].res.status)
    assert.equals("http", out[2].err.kind)
    assert.equals(404, out[2].err.status)
    assert.equals(200, out[3].res.status)
    assert.equals(2, out[3].res.attempts)
    assert.equals("config", out[4].err.kind)
    assert.same({ n = 1 }, out[5].res.json.json)
    assert.equals("network", out[6].err.kind)
    assert.equals(2, out[6].err.attempts)
    assert.equals("timeout", out[7].err.kind)
    assert.equals("DELETE", out[8].res.json.method)
    for _, r in ipairs(out) do assert.is_true((r.res == nil) ~= (r.err == nil)) end
    assert.equals(1, c:stats().retries >= 1 and 1 or 0)
  end)

  it("one token serves the whole batch", function()
    local o = H.opts{}
    local c = ducky.client(o)
    local out = c:batch(echo_items(20))
    assert.equals(20, #out)
    assert.equals(1, H.exchanges(o.client_id))
    assert.equals(1, c:stats().token_fetches)
  end)

  it("a revocation mid-batch refreshes once and replays the affected requests", function()
    local o
    local revoked = false
    o = H.opts{ retries = 1, log = function(e)
      -- the first item's 503 retry is the moment: revoke the token in use
      if e.event == "retry" and not revoked then
        revoked = true
        H.revoke(o.client_id)
      end
    end }
    local c = ducky.client(o)
    H.fault{ path = "/v3/echo/first", status = 503, headers = { ["Retry-After"] = "0.3" }, times = 1 }
    H.fault{ path = "/v3/echo", delay = 0.4, times = 4 } -- still in flight when revoked
    local items = { { "GET", "/echo/first" } }
    for i = 1, 12 do items[#items + 1] = { "GET", "/echo", { query = { i = i } } } end
    local out = c:batch(items, { concurrency = 4 })
    assert.is_true(revoked)
    for i, r in ipairs(out) do
      assert.is_nil(r.err, i .. ": " .. tostring(r.err))
      assert.equals(200, r.res.status)
    end
    assert.equals(2, H.exchanges(o.client_id))
    assert.is_true(c:stats().replays_401 >= 1)
  end)

  it("a 401 with the fresh token too is an auth error for that item only", function()
    local o = H.opts{}
    local c = ducky.client(o)
    H.fault{ path = "/v3/echo/never", status = 401, times = 2 }
    local out = c:batch({ { "GET", "/echo/never" }, { "GET", "/echo/ok" } }, { concurrency = 1 })
    assert.equals("auth", out[1].err.kind)
    assert.equals(401, out[1].err.status)
    assert.equals(200, out[2].res.status)
    assert.equals(2, H.exchanges(o.client_id))
  end)

  it("a token that cannot be had fails the items that need one, not the others", function()
    local o = H.opts{}
    H.ban(o.client_id)
    local out = ducky.client(o):batch({ { "GET", "/echo" }, { "GET", "/ping", { auth = false } } })
    assert.equals("auth", out[1].err.kind)
    assert.equals("invalid_client", out[1].err.code)
    assert.equals(200, out[2].res.status)
  end)

  it("runs `concurrency` requests at once over as many connections, reused by the next batch", function()
    local c = ducky.client(H.opts{})
    assert(c:ping_protected())
    H.reset()
    H.fault{ path = "/v3/echo", delay = 0.3, times = 16 }
    local out = c:batch(echo_items(16), { concurrency = 8 })
    for _, r in ipairs(out) do assert.equals(200, r.res.status) end
    -- 8 at once need 8 connections (libcurl may open one more when a transfer
    -- starts before a finished one's connection is back in the cache)
    local after_first = H.stats().connections
    assert.is_true(after_first >= 8 and after_first <= 10, tostring(after_first))
    out = c:batch(echo_items(16), { concurrency = 8 })
    for _, r in ipairs(out) do assert.equals(200, r.res.status) end
    -- the second batch rides the first one's connections (8 new ones without reuse)
    assert.is_true(H.stats().connections - after_first <= 2)
  end)

  it("the batch timeout bounds every item", function()
    local c = ducky.client(H.opts{ timeout = 30 })
    H.fault{ path = "/v3/echo", delay = 5, times = 4 }
    local t = socket.gettime()
    local out = c:batch(echo_items(4), { timeout = 0.5 })
    for _, r in ipairs(out) do assert.equals("timeout", r.err.kind) end
    assert.is_true(socket.gettime() - t < 4.5) -- ended by the batch's timeout, not the server
  end)

  it("raises for misuse before sending anything", function()
    local c = ducky.client(H.opts{})
    local before = H.stats().requests
    assert.has_error(function() c:batch({ { "GE T", "/echo" } }) end,
      "client:batch: item 1: not an HTTP method name")
    assert.has_error(function() c:batch({ "GET /echo" }) end,
      "client:batch: item 1: not a { method, path, opts } table")
    assert.has_error(function() c:batch({ { "GET", "/echo", { bogus = 1 } } }) end,
      "client:batch: item 1: unknown option 'bogus'")
    H.raises(function() c:batch({}, { concurrency = 0 }) end,
      "client:batch: option 'concurrency' is out of range: 0")
    assert.has_error(function() c:batch({}, { parallel = 2 }) end, "client:batch: unknown option 'parallel'")
    assert.equals(before, H.stats().requests)
  end)

  it("works alongside request() and after close raises", function()
    local c = ducky.client(H.opts{})
    assert(c:batch(echo_items(3))[3].res)
    assert(c:request("GET", "/echo"))
    assert(c:batch(echo_items(2))[2].res)
    c:close()
    assert.has_error(function() c:batch({}) end, "client:batch: attempt to use a closed ducky client")
  end)

  it("http_version is checked", function()
    for _, v in ipairs({ "1.1", "2", "2-prior-knowledge" }) do
      assert.is_not_nil(ducky.client(H.opts{ http_version = v }))
    end
    assert.has_error(function() ducky.client(H.opts{ http_version = "3" }) end,
      'ducky.client: option \'http_version\' must be "2", "1.1" or "2-prior-knowledge", not "3"')
  end)
end)

-- HTTP/2 over TLS against a local nginx: the requests of a batch share one connection.
local nginx_ok = os.execute("command -v nginx >/dev/null") and true or false
local test = nginx_ok and it or pending

describe("client:batch over HTTP/2", function()
  local prefix, pid, port

  setup(function()
    if not nginx_ok then return end
    local info = H.standin()
    prefix = H.tmpdir()
    local s = assert(socket.bind("127.0.0.1", 0))
    port = select(2, s:getsockname())
    s:close()
    local f = assert(io.open(prefix .. "/nginx.conf", "w"))
    f:write(([[
daemon off;
worker_processes 1;
error_log %s/error.log warn;
pid %s/nginx.pid;
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path %s;
  server {
    listen 127.0.0.1:%d ssl http2;
    ssl_certificate %s/server.pem;
    ssl_certificate_key %s/server.key;
    default_type application/json;
    location = /oauth/token {
      return 200 '{"access_token":"tok_h2","token_type":"Bearer","expires_in":3600}';
    }
    location /v3/ {
      return 200 '{"connection":"$connection","protocol":"$server_protocol"}';
    }
  }
}
]]):format(prefix, prefix, prefix, port, info.dir, info.dir))
    f:close()
    pid = tonumber(io.popen(("%snginx -p %s -c %s/nginx.conf >%s/out.log 2>&1 & echo $!")
      :format(H.CLEAN_ENV, prefix, prefix, prefix)):read("*l"))
    for _ = 1, 100 do
      local c = socket.connect("127.0.0.1", port)
      if c then c:close() break end
      socket.sleep(0.05)
    end
  end)

  teardown(function()
    if pid then
      os.execute("kill " .. pid)
      H.wait_until(function() return not H.alive(pid) end, 10, "nginx to exit")
      os.execute("rm -rf " .. prefix)
    end
  end)

  local function client(version)
    return ducky.client(H.opts{
      base_url = ("https://localhost:%d/v3"):format(port),
      token_url = ("https://localhost:%d/oauth/token"):format(port),
      ca_file = H.ca_file(), http_version = version,
    })
  end

  test("HTTP/2 multiplexes the whole batch on one connection", function()
    local out = client("2"):batch(echo_items(24), { concurrency = 8 })
    local conns = {}
    for _, r in ipairs(out) do
      assert.equals("HTTP/2.0", r.res.json.protocol)
      conns[r.res.json.connection] = true
    end
    assert.equals(1, count(conns))
  end)

  test("HTTP/1.1 runs concurrent requests side by side, on a connection each", function()
    -- nginx answers at once, so libcurl may serve a batch on one connection in
    -- turn; the stand-in's slow answers make the requests overlap
    local c = ducky.client(H.opts{ base_url = H.base_url("https"), token_url = H.token_url("https"),
      ca_file = H.ca_file(), http_version = "1.1" })
    assert(c:token())
    H.fault{ path = "/v3/echo/h1", delay = 0.5, status = 200, body = { ok = true }, times = 4 }
    local items = {}
    for i = 1, 4 do items[i] = { "GET", "/echo/h1" } end
    local t0 = socket.gettime()
    local out = c:batch(items, { concurrency = 4 })
    local took = socket.gettime() - t0
    for _, r in ipairs(out) do assert.equals(200, r.res.status) end
    -- one after another would take 2 s: a loose bound, not a speed figure
    assert.is_true(took < 1.5, ("4 slow calls took %.2f s"):format(took))
    local protocols = {}
    for _, r in ipairs(client("1.1"):batch(echo_items(8), { concurrency = 4 })) do
      protocols[r.res.json.protocol] = true
    end
    assert.same({ ["HTTP/1.1"] = true }, protocols)
  end)
end)
