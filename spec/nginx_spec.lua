-- nginx with the Lua module (LuaJIT) running examples/nginx/nginx.conf against
-- the stand-in (spec/support/nginx.lua starts it with the spec's locations):
-- answers, phases, admission control, authorization() and proxy_pass, the
-- background refresh, stats, logging, and new{} failing at start.
local H = require("spec.helpers")
local N = require("spec.support.nginx")
local cjson = require("cjson")
local socket = require("socket")
local http = require("socket.http")
local ltn12 = require("ltn12")

local test = N.runnable() and it or pending

local function get(url, headers)
  local out = {}
  local _, code, h = http.request{ url = url, headers = headers, sink = ltn12.sink.table(out) }
  return table.concat(out), code, h
end

-- The body and status only.
local function answer(url)
  local body, code = get(url)
  return { body, code }
end

local function get_json(url)
  local body, code = get(url)
  assert.equals(200, code, body)
  return cjson.decode(body)
end

-- Runs `n` requests to url at once (curl processes); returns their statuses.
local function parallel(url, n)
  local out = N.run(("seq %d | %sxargs -P %d -I{} curl -s -o /dev/null -w '%%{http_code}\\n' %q")
    :format(n, H.CLEAN_ENV, n, url))
  local codes = {}
  for code in out:gmatch("%d%d%d") do codes[#codes + 1] = code end
  return codes
end

-- stats() once every worker's counts reached the dict (within a second):
-- polls until done(stats) holds, for at most 4 s.
local function stats_when(url, done)
  local s
  for _ = 1, 40 do
    s = get_json(url)
    if done(s) then break end
    socket.sleep(0.1)
  end
  return s
end

local function count(list, value)
  local n = 0
  for _, v in ipairs(list) do
    if v == value then n = n + 1 end
  end
  return n
end

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

  describe("the example's routes", function()
    test("answer with Ducky calls, a health check and a plain route", function()
      nginx = N.start(id)
      local body, code = get(nginx.url("/ducky/echo?year=2026"))
      assert.equals(200, code, body)
      local echo = cjson.decode(body)
      assert.equals("/v3/echo", echo.path)
      assert.same({ "2026" }, echo.args.year)
      assert.equals(id, echo.client_id)
      assert.same({ "ok\n", 200 }, answer(nginx.url("/health")))
      assert.same({ "plain\n", 200 }, answer(nginx.url("/plain")))
    end)

    test("proxy /api/ with the token set in access_by_lua, TLS verified", function()
      nginx = N.start(id)
      local echo = get_json(nginx.url("/api/echo?x=1"))
      assert.equals("/v3/echo", echo.path)
      assert.equals(id, echo.client_id) -- the stand-in took the token
      assert.matches("^Bearer ", echo.headers.authorization)
      assert.equals(1, H.exchanges(id))
    end)

    test("replay a request once after an upstream 401, with a new token", function()
      nginx = N.start(id)
      get_json(nginx.url("/api/echo"))
      H.revoke(id) -- the API no longer takes the token
      local echo = get_json(nginx.url("/api/echo"))
      assert.equals(id, echo.client_id)
      assert.equals(2, H.exchanges(id))
    end)

    test("pass a second 401 on to the client", function()
      nginx = N.start(id)
      get_json(nginx.url("/api/echo"))
      H.fault{ path = "/v3/echo", status = 401, times = 2 }
      local _, code = get(nginx.url("/api/echo"))
      assert.equals(401, code)
    end)

    test("report an API failure as an error object that crossed the thread boundary", function()
      nginx = N.start(id)
      H.fault{ path = "/v3/echo", status = 404, times = 3 }
      local body, code = get(nginx.url("/ducky/echo"))
      assert.equals(502, code)
      assert.matches('"error":"http"', body)
      assert.matches("answered 404", body)
    end)
  end)

  describe("phases", function()
    for _, phase in ipairs{ "rewrite", "access", "content", "timer" } do
      test("authorization(), request() and token() work in the " .. phase .. " phase", function()
        nginx = N.start(id, { workers = 1 })
        local r = get_json(nginx.url("/spec/phase/" .. phase))
        assert.equals(phase, r.phase)
        assert.equals("Bearer " .. r.token, r.authorization)
        assert.equals(id, r.request)
      end)
    end

    test("authorization() answers from the dict in set_by_lua, and says so on a miss", function()
      local id3 = H.new_id("nginx-lazy")
      nginx = N.start(id, { workers = 1, env = { DUCKY_SPEC_ID3 = id3, DUCKY_SPEC_SECRET3 = H.secret(id3) } })
      local body = get(nginx.url("/spec/phase/set?api=LAZY"))
      assert.equals("ducky auth error: no token in lua_shared_dict 'ducky_tokens' yet, and the set phase"
        .. " cannot wait for one: a fetch has started\n", body)
      for _ = 1, 50 do -- the fetch it started
        body = get(nginx.url("/spec/phase/set?api=LAZY"))
        if body:match("^Bearer ") then break end
        socket.sleep(0.1)
      end
      assert.matches("^Bearer %S+\n$", body)
      assert.equals(1, H.exchanges(id3))
      assert.matches("^Bearer ", (get(nginx.url("/spec/phase/set"))))
    end)

    for _, phase in ipairs{ "init_worker", "header_filter", "log" } do
      test("every call raises a clear error in the " .. phase .. " phase", function()
        nginx = N.start(id, { workers = 1 })
        get(nginx.url("/spec/phase/filters"))
        socket.sleep(0.2) -- the log phase runs after the answer went out
        local r = get_json(nginx.url("/spec/recorded?phase=" .. phase))
        for _, method in ipairs{ "authorization", "request", "ping", "ping_protected", "batch",
          "token", "invalidate" } do
          assert.is_table(r[method], method)
          assert.matches("api:" .. method .. "%(%) is not allowed in the " .. phase
            .. " phase: nginx lets Lua wait on its thread pool in rewrite, access, content and"
            .. " timer phases only", r[method].raised, 1, false)
        end
      end)
    end
  end)

  describe("authorization()", function()
    test("answers from the shared dict in the event loop: one pool call per worker at most", function()
      nginx = N.start(id, { workers = 2 })
      assert.equals(200, select(2, get(nginx.url("/health"))))
      local first = get(nginx.url("/spec/authorization"))
      for _ = 1, 50 do
        assert.equals(first, get(nginx.url("/spec/authorization")))
      end
      local s = stats_when(nginx.url("/spec/stats"), function(t)
        return t.all.authorization_hits + t.all.authorization_misses == 51
      end).all
      assert.equals(51, s.authorization_hits + s.authorization_misses)
      assert.is_true(s.authorization_misses <= 2, "misses: " .. s.authorization_misses)
      assert.equals(1, H.exchanges(id))
    end)

    test("follows a token another worker refreshed, and an invalidate()", function()
      nginx = N.start(id, { workers = 2 })
      local first = get(nginx.url("/spec/authorization"))
      assert.equals("true\n", get(nginx.url("/spec/invalidate")))
      local second = get(nginx.url("/spec/authorization"))
      assert.are_not.equals(first, second)
      for _ = 1, 20 do -- both workers
        assert.equals(second, get(nginx.url("/spec/authorization")))
      end
      assert.equals(2, H.exchanges(id))
    end)

    test("invalidate(token) leaves a newer token alone", function()
      nginx = N.start(id, { workers = 1 })
      local first = get(nginx.url("/spec/authorization")):gsub("\n", "")
      get(nginx.url("/spec/invalidate"))
      local second = get(nginx.url("/spec/authorization")):gsub("\n", "")
      get(nginx.url("/spec/invalidate?token=" .. first:gsub(" ", "%%20"))) -- a late 401's token
      assert.equals(second, get(nginx.url("/spec/authorization")):gsub("\n", ""))
      assert.equals(2, H.exchanges(id))
    end)
  end)

  describe("the token", function()
    test("is fetched once for 4 workers x 200 requests (lua_shared_dict store)", function()
      nginx = N.start(id)
      local workers = {}
      for i = 1, 800 do -- a new connection each: reuseport spreads them over the workers
        local body, code, headers = get(nginx.url("/ducky/echo?i=" .. i))
        assert.equals(200, code, body)
        workers[headers["x-worker"]] = true
      end
      local n = 0
      for _ in pairs(workers) do n = n + 1 end
      assert.equals(4, n)
      assert.equals(1, H.exchanges(id))
      local all = stats_when(nginx.url("/spec/stats"), function(t) return t.all.requests == 800 end).all
      assert.equals(800, all.requests)
      assert.equals(1, all.token_fetches)
    end)

    test("is refreshed in the background before its margin: requests never miss", function()
      local id2 = H.new_id("nginx-short")
      H.config(id2, 10) -- 10 s tokens; refresh_margin 2, the timer refreshes at 5 s left
      nginx = N.start(id, { env = { DUCKY_SPEC_ID2 = id2, DUCKY_SPEC_SECRET2 = H.secret(id2) } })
      for _ = 1, 100 do -- the timer's first exchange, at start
        if H.exchanges(id2) == 1 then break end
        socket.sleep(0.05)
      end
      assert.equals(1, H.exchanges(id2))
      local seen = {}
      for _ = 1, 70 do -- 7 s: the token passes 5 s left once
        local body = get(nginx.url("/spec/authorization?api=SHORT"))
        assert.matches("^Bearer ", body)
        seen[body] = true
        socket.sleep(0.1)
      end
      local s = stats_when(nginx.url("/spec/stats?api=SHORT"), function(t)
        return t.all.background_refreshes == 2
      end).all
      assert.equals(2, H.exchanges(id2))
      assert.equals(0, s.authorization_misses)
      assert.equals(2, s.background_refreshes)
      assert.is_table(next(seen) and seen)
      assert.matches("ducky: token from exchange", nginx.log())
    end)
  end)

  describe("admission control", function()
    test("queues calls past the pool's threads instead of refusing them", function()
      nginx = N.start(id, { workers = 1 })
      H.fault{ path = "/v3/echo", delay = 0.3, times = 2 } -- the first two hold both threads
      local out = N.run(("seq 12 | %sxargs -P 12 -I{} curl -s %q")
        :format(H.CLEAN_ENV, nginx.url("/spec/small?i={}")))
      local got = {}
      for line in out:gmatch("[^\n]+") do got[#got + 1] = tonumber(line) or line end
      table.sort(got, function(a, b) return tostring(a) < tostring(b) end)
      assert.same({ 1, 10, 11, 12, 2, 3, 4, 5, 6, 7, 8, 9 }, got) -- each its own answer
      local s = get_json(nginx.url("/spec/stats?api=SMALL"))
      assert.is_true(s.queued >= 10, "queued: " .. s.queued)
      assert.is_true(s.batched >= 2, "batched: " .. s.batched) -- queued calls went together
      assert.equals(0, s.queue_timeouts)
    end)

    test("a call that fails a batch of queued calls fails alone", function()
      nginx = N.start(id, { workers = 1 })
      H.fault{ path = "/v3/echo", delay = 0.3, times = 2 }
      local out = N.run(("(seq 8 | %sxargs -P 8 -I{} curl -s %q) & sleep 0.1; %scurl -s %q; wait")
        :format(H.CLEAN_ENV, nginx.url("/spec/small?i={}"), H.CLEAN_ENV, nginx.url("/spec/small?bad=1")))
      assert.matches("ducky config error: ducky.ngx: thread pool 'small': [^\n]*unknown option 'tiemout'",
        out)
      for i = 1, 8 do assert.matches("\n" .. i .. "\n", "\n" .. out .. "\n") end
    end)

    test("times out a call that waited its whole timeout in the queue, and says so", function()
      nginx = N.start(id, { workers = 1, env = { DUCKY_SPEC_TIMEOUT = "1" } })
      H.fault{ path = "/v3/echo", delay = 2, times = 2 } -- both threads busy for 2 s (timeout 3 s)
      local out = N.run(("(seq 2 | %sxargs -P 2 -I{} curl -s %q) & sleep 0.3; %scurl -s %q; wait")
        :format(H.CLEAN_ENV, nginx.url("/spec/small?t=3&i={}"), H.CLEAN_ENV, nginx.url("/spec/small")))
      assert.matches("ducky timeout error: api:request%(%) timed out after 1 s waiting in the queue for"
        .. " a thread of pool 'small' %(at most 2 calls in flight per worker: the threads option%)", out)
      assert.matches("\n1\n", "\n" .. out .. "\n") -- the two that held the threads answered
      assert.matches("\n2\n", "\n" .. out .. "\n")
      assert.equals(1, get_json(nginx.url("/spec/stats?api=SMALL")).queue_timeouts)
    end)

    test("holds 300 connections at once with the example's configuration", function()
      nginx = N.start(id, { workers = 1 })
      H.fault{ path = "/v3/echo", delay = 0.2, times = 300 }
      local codes = parallel(nginx.url("/ducky/echo"), 300)
      assert.equals(300, count(codes, "200"))
    end)

    test("gives back the slot of a call whose request went away, once past its deadline", function()
      nginx = N.start(id, { workers = 1 }) -- pool 'abort': 1 thread, timeout 1 s
      H.fault{ path = "/v3/echo", delay = 1.5, times = 1 }
      N.run(("%scurl -s --max-time 0.3 %q"):format(H.CLEAN_ENV, nginx.url("/spec/abort"))) -- goes away
      assert.matches("timed out after 1 s waiting in the queue", (get(nginx.url("/spec/abort"))))
      socket.sleep(2.5) -- the lost slot's deadline: its timeout (1 s) and the grace (2 s)
      assert.equals("200\n", get(nginx.url("/spec/abort")))
      assert.matches("1 call%(s%) of pool 'abort' outlived their requests; their thread slots are free again",
        nginx.log())
    end)

    test("names a thread pool nginx does not have", function()
      nginx = N.start(id, { workers = 1 })
      local r = get_json(nginx.url("/spec/nopool"))
      assert.equals("config", r.kind)
      assert.equals("ducky.ngx: thread pool 'nope': thread pool nope not found", r.message)
    end)

    test("keeps the event loop serving while 20 calls wait on a slow API", function()
      nginx = N.start(id, { workers = 1 }) -- one worker: the slow calls and the plain route share it
      assert(get(nginx.url("/health"))) -- token fetched first
      H.fault{ path = "/v3/echo", delay = 3, times = 20 }
      local slow = H.tmpdir()
      os.execute(("unset LD_PRELOAD; for i in $(seq 20); do %scurl -s -o /dev/null -w '%%{http_code}\\n'"
        .. " %q >>%s/slow.txt & done"):format(H.CLEAN_ENV, nginx.url("/ducky/echo"), slow))
      for _ = 1, 50 do -- until the 20 are waiting on the API
        if H.stats().requests_by_path["/v3/echo"] == 20 then break end
        socket.sleep(0.05)
      end
      for _ = 1, 5 do -- answered while none of the slow calls has
        assert.same({ "plain\n", 200 }, answer(nginx.url("/plain")))
        assert.equals("", H.read_file(slow .. "/slow.txt") or "")
      end
      for _ = 1, 100 do
        local text = H.read_file(slow .. "/slow.txt") or ""
        if select(2, text:gsub("\n", "")) == 20 then break end
        socket.sleep(0.1)
      end
      assert.equals(("200\n"):rep(20), H.read_file(slow .. "/slow.txt"))
      os.execute("rm -rf " .. slow)
    end)
  end)

  describe("the whole client surface", function()
    test("batch() answers in order, errors as error objects", function()
      nginx = N.start(id, { workers = 1 })
      local r = get_json(nginx.url("/spec/batch"))
      assert.same({ 2, "1", "application/json", 404, true }, r)
    end)

    test("token() gives the token, its seconds left and its source", function()
      nginx = N.start(id, { workers = 1 })
      local r = get_json(nginx.url("/spec/token"))
      assert.is_string(r.token)
      assert.is_true(r.left > 80000)
      assert.is_truthy(({ memory = true, store = true, exchange = true })[r.info.source])
      assert.equals(12, #r.info.fingerprint)
    end)

    test("stats() counts this worker's calls, and all workers' in `all`", function()
      nginx = N.start(id, { workers = 2 })
      for _ = 1, 40 do assert.equals(200, select(2, get(nginx.url("/ducky/echo")))) end
      local s = stats_when(nginx.url("/spec/stats"), function(t) return t.all.requests == 40 end)
      assert.equals(40, s.all.requests)
      assert.is_true(s.requests <= 40)
      assert.equals(1, s.all.token_fetches)
      assert.equals(0, s.all.errors)
      for _, k in ipairs{ "retries", "replays_401", "stale_tokens", "token_cache_hits", "token_store_hits",
        "queued", "queue_timeouts", "authorization_hits", "authorization_misses", "background_refreshes" } do
        assert.is_number(s[k], k)
        assert.is_number(s.all[k], k)
      end
    end)

    test("events go to nginx's error log at log_level, never the secret", function()
      nginx = N.start(id, { workers = 1 })
      H.fault{ path = "/v3/echo", status = 503, times = 1 }
      assert.equals(200, select(2, get(nginx.url("/ducky/echo"))))
      H.revoke(id)
      assert.equals(200, select(2, get(nginx.url("/ducky/echo"))))
      local log = nginx.log()
      assert.matches("%[notice%] [^\n]*ducky: token from exchange, %d+ s left, fingerprint %x+", log)
      assert.matches("%[notice%] [^\n]*ducky: retry: attempt 2 after 503", log)
      assert.matches("%[notice%] [^\n]*ducky: the API answered 401: token dropped, request replayed", log)
      assert.is_nil(log:find(H.secret(id), 1, true))
    end)

    test("err.headers and res.headers are case-insensitive on lookup, lower-case for pairs", function()
      nginx = N.start(id, { workers = 1 })
      local r = get_json(nginx.url("/spec/headers"))
      assert.equals("application/json", r.upper)
      assert.equals(r.lower, r.upper)
      for _, k in ipairs(r.keys) do assert.equals(k:lower(), k) end
      local e = get_json(nginx.url("/spec/error"))
      assert.same({ true, "http", 404, "application/json" }, { e.is_error, e.kind, e.status, e.ctype })
      assert.matches("^ducky http error: ", e.text)
    end)

    -- needs the C error object's __concat (planned in the C core)
    local loaded, ducky = pcall(require, "ducky")
    local concat = loaded and getmetatable(ducky.error{ kind = "http", message = "x" }).__concat
    ;(concat and test or pending)("ngx.say(\"failed: \" .. err) works", function()
      nginx = N.start(id, { workers = 1 })
      local body, code = get(nginx.url("/spec/concat"))
      assert.equals(200, code, body)
      assert.matches("^failed: ducky http error: GET .* answered 404", body)
    end)

    test("the dict lock's unlock deletes only a lock it still owns", function()
      nginx = N.start(id, { workers = 1 })
      assert.same({ first = true, second = false, released = true, again = true, kept_other = true,
        third = true, kept_expiring = true }, get_json(nginx.url("/spec/lock")))
    end)
  end)

  describe("new{} fails at start, not per request", function()
    local cases = {
      { "{ tiemout = 10 }", "ducky.client: unknown option 'tiemout'" },
      { "{ timeout = 'ten' }", "ducky.client: option 'timeout' must be a number, not string" },
      { "{ base_url = 'ftp://x' }", "ducky.client: base_url is not an http(s) URL: ftp://x" },
      { "{ token_auth = 'x' }", "ducky.client: option 'token_auth' must be" },
      { "{ log = print }", "ducky.ngx: option 'log' must be plain data, not a function: options cross"
        .. " into the thread pool's Lua VMs, which only take strings, numbers, booleans and tables of"
        .. " them (events go to nginx's error log: set log_level)" },
      { "{ headers = { ['X-A'] = ngx.null } }", "ducky.ngx: option 'headers.X-A' must be plain data,"
        .. " not a userdata" },
      { "{ token_cache = false }", "ducky.ngx: option 'token_cache' is not for nginx: tokens live in the"
        .. " lua_shared_dict named by shared_dict" },
      { "{ shared_dict = 'nope' }", "ducky.ngx: lua_shared_dict 'nope' is not configured: add"
        .. " `lua_shared_dict nope 1m;` to the http block, or set shared_dict = false" },
      { "{ shared_dict = 5 }", "ducky.ngx: option 'shared_dict' must be a lua_shared_dict name or false" },
      { "{ pool = '' }", "ducky.ngx: option 'pool' must be a thread_pool name" },
      { "{ threads = 0 }", "ducky.ngx: option 'threads' must be a whole number from 1 to 65536" },
      { "{ log_level = 'loud' }", "ducky.ngx: option 'log_level' must be one of debug, info, notice, warn,"
        .. " error, crit, alert, emerg, or false" },
      { "{ refresh_interval = 0 }", "ducky.ngx: option 'refresh_interval' must be a number of seconds"
        .. " (0.01 to 3600) or false" },
      { "{ threads = 4 } API2 = require('ducky.ngx').new{ threads = 5 }", "ducky.ngx: pool 'ducky' was"
        .. " given threads = 4 by an earlier new{}, not 5: the pool's calls share one limit per worker" },
      { "'not a table'", "ducky.ngx: options must be a table" },
    }
    for _, case in ipairs(cases) do
      test("new" .. case[1] .. " stops nginx at start", function()
        local out, code = N.check(case[1])
        assert.equals(1, code, out)
        assert.matches("init_by_lua", out, 1, true)
        assert.matches(case[2], out, 1, true)
      end)
    end

    test("the example's own options start", function()
      local out, code = N.check("{ timeout = 10, threads = 32, log_level = 'notice' }")
      assert.equals(124, code, out)
    end)
  end)
end)
