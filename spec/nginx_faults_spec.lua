-- ducky.ngx when things go wrong (issue 19), in real nginx against the
-- stand-in: a token endpoint that fails while the dict's token is still
-- valid, a dict too small for the token, an API answering 401 to everything
-- behind the README's @ducky_401 pattern, set_by_lua before the first token,
-- and shared_dict = false.
local H = require("spec.helpers")
local N = require("spec.support.nginx.server")
local socket = require("socket")

local test = N.runnable() and it or pending
local get = N.get

-- How many of the n uses of the one fault queued (times = n) were taken.
local function used(n)
  return n - H.stats().faults_pending
end

-- The README's set_by_lua snippet (the ```nginx block that has one), as the
-- body of a location proxying /spec/readme-set/ to the API.
local function readme_set_location(prefix)
  local readme = assert(H.read_file("README.md"))
  local snippet
  for block in readme:gmatch("```nginx\n(.-)```") do
    if block:find("set_by_lua_block $ducky_bearer", 1, true) then snippet = block end
  end
  assert(snippet, "README.md has no set_by_lua snippet")
  return ([[
        location /spec/readme-set/ {
%s
            proxy_pass https://ducky_api/v3/;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host localhost;
            proxy_ssl_server_name on;
            proxy_ssl_name localhost;
            proxy_ssl_verify on;
            proxy_ssl_trusted_certificate %s/ca.pem;
        }
]]):format(snippet, prefix)
end

describe("nginx with ducky.ngx, when things go wrong", function()
  local nginx, id
  N.each(function(i) id = i end)

  test("a failing token endpoint: the dict's token served until it expires, refreshes paced", function()
    local flaky = H.new_id("nginx-flaky")
    H.config(flaky, 8) -- 8 s tokens; refresh_margin 2: refreshes start at 4 s left
    nginx = N.start(id, { workers = 2, env = { DUCKY_SPEC_FLAKY = flaky } })
    local url = nginx.url("/spec/authorization?api=FLAKY")
    local bearer = get(url)
    local t0 = socket.gettime()
    assert.matches("^Bearer ", bearer)
    H.fault{ path = "/oauth/token", client_id = flaky, status = 503, times = 1000 }
    -- both workers (a new connection each), until the token is gone
    local last = N.wait("the token to expire", 12, function()
      local body = get(url)
      return body ~= bearer and body
    end)
    local served = socket.gettime() - t0
    assert.is_true(served > 6.5, ("served for %.1f s of its 8"):format(served))
    assert.matches("503", last)
    local attempts = used(1000)
    assert.is_true(attempts >= 1 and attempts <= 6, "token requests while it failed: " .. attempts)
    assert.equals(1, H.exchanges(flaky))
    -- the endpoint back: a token within a back-off step
    H.reset()
    N.wait("a new token", 12, function()
      local body = get(url)
      return body ~= bearer and body:match("^Bearer ")
    end)
    assert.equals(1, H.exchanges(flaky))
  end)

  test("a token the dict cannot hold stays in each worker: one exchange per worker, one warning", function()
    local tiny = H.new_id("nginx-tiny")
    nginx = N.start(id, { workers = 2, env = { DUCKY_SPEC_TINY = tiny } }) -- lua_shared_dict tiny 12k
    for _ = 1, 40 do assert.matches("^Bearer %S+\n$", (get(nginx.url("/spec/authorization?api=TINY")))) end
    assert.is_true(H.exchanges(tiny) >= 1 and H.exchanges(tiny) <= 2, "exchanges: " .. H.exchanges(tiny))
    local log = nginx.log()
    local warned = H.occurrences(log,
      "ducky: token store error (dict): lua_shared_dict cannot hold the token")
    assert.is_true(warned >= 1 and warned <= 2, "warnings: " .. warned .. "\n" .. log)
    assert.matches("%[warn%][^\n]*ducky: token store error %(dict%): lua_shared_dict cannot hold the token"
      .. " %(%d+ bytes%): no memory; it stays in this process's memory", log)
  end)

  test("an API answering 401 to everything behind @ducky_401: a token or two, not one per request", function()
    nginx = N.start(id, { workers = 1 })
    assert.equals(200, select(2, get(nginx.url("/api/echo"))))
    H.fault{ path = "/v3/echo", status = 401, times = 40 } -- 20 requests, each replayed once
    for _ = 1, 20 do assert.equals(401, select(2, get(nginx.url("/api/echo")))) end
    local burst = H.exchanges(id) - 1
    assert.is_true(burst >= 1 and burst <= 3, "exchanges in the burst: " .. burst)
    assert.equals(200, select(2, get(nginx.url("/api/echo")))) -- the burst is over: served at once
    -- a token really revoked now: replaced within a back-off step
    H.revoke(id)
    N.wait("a new token", 12, function() return select(2, get(nginx.url("/api/echo"))) == 200 end)
    assert.equals(burst + 2, H.exchanges(id))
  end)

  test("the README's set_by_lua snippet sends nothing upstream before the first token", function()
    H.fault{ path = "/oauth/token", client_id = id, delay = 1.5 } -- the first token comes late
    nginx = N.start(id, { workers = 1, edit = function(conf, prefix)
      return N.replace(conf, "location = /plain {",
        readme_set_location(prefix) .. "\n        location = /plain {")
    end })
    local _, code = get(nginx.url("/spec/readme-set/echo"))
    assert.equals(503, code)
    assert.equals(0, H.stats().requests_by_path["/v3/echo"] or 0)
    N.wait("the token", 5, function() return select(2, get(nginx.url("/spec/readme-set/echo"))) == 200 end)
  end)

  test("shared_dict = false: set_by_lua serves the worker's own token, after starting its fetch", function()
    local nodict = H.new_id("nginx-nodict")
    nginx = N.start(id, { workers = 1, env = { DUCKY_SPEC_NODICT = nodict } })
    local url = nginx.url("/spec/phase/set?api=NODICT")
    assert.equals("ducky auth error: no token in this worker (shared_dict = false) yet, and the set phase"
      .. " cannot wait for one: a fetch has started\n", (get(url)))
    local body = N.wait("the fetch it started", 5, function()
      local b = get(url)
      return b:match("^Bearer ") and b
    end)
    assert.matches("^Bearer %S+\n$", body)
    for _ = 1, 10 do assert.equals(body, (get(url))) end
    assert.equals(1, H.exchanges(nodict))
  end)
end)
