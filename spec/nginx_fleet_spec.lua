-- A fleet of nginx machines on one token through Redis (issue 21 §1): three
-- nginx instances of two workers each (spec/support/nginx/server.lua, SPEC.FLEET:
-- ducky.ngx.new{ redis = … } behind each one's dict) and a real redis-server
-- on a free port. One exchange for the fleet; with Redis down, slow,
-- restarted mid-refresh or answering garbage, every request is served, at
-- most one exchange per machine, a store_error line at most once per worker,
-- and the machines come back onto one token once Redis answers.
local H = require("spec.helpers")
local N = require("spec.support.nginx.server")
local R = require("spec.support.redis_server")
local cjson = require("cjson")
local socket = require("socket")

local test = (N.runnable() and R.runnable) and it or pending
local get = N.get

describe("a fleet of nginx machines on one token through Redis", function()
  local redis, machines, fleet

  before_each(function()
    H.reset()
    fleet = H.new_id("fleet")
    machines = {}
  end)

  after_each(function()
    N.stop_all()
    R.stop(redis)
    redis = nil
  end)

  -- Starts n machines on Redis at port.
  local function start_fleet(n, port)
    for i = 1, n do
      machines[i] = N.start(H.new_id("nginx"), { workers = 2,
        env = { DUCKY_SPEC_FLEET = fleet, DUCKY_SPEC_REDIS_PORT = tostring(port) } })
    end
  end

  -- 100 calls through each machine (a new connection each: both workers);
  -- every one must be answered by the stand-in for the fleet's credential.
  local function serve_all()
    for _, m in ipairs(machines) do
      local codes = N.parallel(m.url("/spec/echo?api=FLEET"), 100)
      assert.equals(100, N.count(codes, "200"), table.concat(codes, " "))
    end
  end

  -- The tokens the machines' workers hand out now (a set).
  local function tokens()
    local seen, n = {}, 0
    for _, m in ipairs(machines) do
      for _ = 1, 6 do
        local body = get(m.url("/spec/authorization?api=FLEET"))
        assert.matches("^Bearer ", body)
        if not seen[body] then seen[body], n = true, n + 1 end
      end
    end
    return seen, n
  end

  -- (a machine in its back-off after failed exchanges answers with the error meanwhile)
  local function converged(seconds)
    N.wait("the machines on one token", seconds, function()
      local ok, _, n = pcall(tokens)
      return ok and n == 1
    end)
  end

  -- store_error lines about Redis in a machine's error_log
  local function redis_errors(m) return H.occurrences(m.log(), "ducky: token store error (redis): ") end

  -- Redis's entry for the fleet: its key and decoded value
  local function redis_entry(c)
    for _, k in ipairs(c:keys("ducky:*")) do
      local v = c:get(k)
      if type(v) == "string" and v:find('"access_token"', 1, true) then
        return k, cjson.decode(v)
      end
    end
  end

  test("3 machines x 2 workers x 100 requests: one exchange; only the token in Redis, PX its life", function()
    redis = R.start()
    start_fleet(3, redis.port)
    serve_all()
    assert.equals(1, H.exchanges(fleet))
    converged(5)
    local c = R.client(redis.port)
    local key, entry = redis_entry(c)
    assert.is_string(key, "no token in Redis")
    local pttl = c:pttl(key)
    assert.is_true(pttl > 0 and pttl <= (entry.expires_at - os.time() + 1) * 1000, "PX " .. pttl)
    for _, k in ipairs(c:keys("*")) do -- nothing secret, whatever the key
      local v = c:type(k) == "string" and c:get(k) or ""
      assert.is_nil(v:find(H.secret(fleet), 1, true), k)
      assert.is_nil(k:find(H.secret(fleet), 1, true), k)
    end
    c:quit()
    for _, m in ipairs(machines) do assert.equals(0, redis_errors(m)) end
  end)

  test("Redis down: every request served, one exchange per machine at most; then back: one token", function()
    local port = H.free_port() -- nothing there yet
    start_fleet(3, port)
    serve_all()
    local exchanges = H.exchanges(fleet)
    assert.is_true(exchanges >= 1 and exchanges <= 3, "exchanges: " .. exchanges)
    for _, m in ipairs(machines) do
      local n = redis_errors(m)
      assert.is_true(n >= 1 and n <= 2, "store_error lines: " .. n .. "\n" .. m.log())
    end
    redis = R.start(port)
    converged(20)
    assert.equals(exchanges, H.exchanges(fleet))
  end)

  test("Redis slow (DEBUG SLEEP): requests served, the machine that needs a token makes one", function()
    redis = R.start()
    start_fleet(3, redis.port)
    serve_all()
    assert.equals(1, H.exchanges(fleet))
    local sleeper = N.spawn(("redis-cli -p %d DEBUG SLEEP 3"):format(redis.port))
    N.wait("Redis asleep", 5, function() return not R.answers_ping(redis.port) end)
    assert.equals("true\n", get(machines[1].url("/spec/invalidate?api=FLEET")))
    serve_all()
    assert.equals(2, H.exchanges(fleet))
    sleeper.wait(10)
    converged(20)
    assert.equals(2, H.exchanges(fleet))
  end)

  test("Redis restarted mid-refresh: requests served, one exchange, then one token again", function()
    redis = R.start()
    start_fleet(3, redis.port)
    serve_all()
    assert.equals(1, H.exchanges(fleet))
    H.fault{ path = "/oauth/token", client_id = fleet, delay = 1.5 } -- the refresh takes a while
    local before = H.stats().requests_by_path["/oauth/token"]
    local refresh = N.spawn(("curl -s %q; curl -s %q")
      :format(machines[1].url("/spec/invalidate?api=FLEET"),
        machines[1].url("/spec/authorization?api=FLEET")))
    N.wait("the exchange under way", 5, function()
      return H.stats().requests_by_path["/oauth/token"] > before
    end)
    R.stop(redis)
    redis = R.start(redis.port) -- empty
    assert.matches("^true\nBearer ", refresh.wait(10))
    serve_all()
    assert.equals(2, H.exchanges(fleet))
    converged(20)
    assert.equals(2, H.exchanges(fleet))
  end)

  -- A machine's sync writes its token to an empty Redis (a restart): never
  -- one that another machine dropped, which would come back to the machine
  -- that dropped it (seen in CI: an invalidation undone within a second).
  test("a token one machine dropped is never written back by another's sync", function()
    redis = R.start()
    start_fleet(3, redis.port)
    serve_all()
    converged(5)
    local old = get(machines[1].url("/spec/authorization?api=FLEET"))
    H.outage{ path = "/oauth/token", client_id = fleet, status = 503, seconds = 60 }
    assert.equals("true\n", get(machines[1].url("/spec/invalidate?api=FLEET")))
    socket.sleep(3) -- three rounds of every machine's sync (SYNC_TICKS x refresh_interval: 1 s)
    local c = R.client(redis.port)
    local _, entry = redis_entry(c)
    assert.is_nil(entry, "Redis holds a token")
    for _ = 1, 6 do -- either worker
      assert.not_equals(old, get(machines[1].url("/spec/authorization?api=FLEET")))
    end
    H.outage{ path = "/oauth/token", client_id = fleet, status = 503, seconds = 0 }
    converged(20)
    assert.is_nil(tokens()[old])
    assert.equals(2, H.exchanges(fleet))
    c:quit()
  end)

  test("Redis holding garbage under the key: served, one exchange where met, then replaced", function()
    redis = R.start()
    start_fleet(1, redis.port)
    serve_all()
    local c = R.client(redis.port)
    local key = redis_entry(c)
    machines[2] = N.start(H.new_id("nginx"), { workers = 2, -- a machine that starts on garbage
      env = { DUCKY_SPEC_FLEET = fleet, DUCKY_SPEC_REDIS_PORT = tostring(redis.port) },
      edit = function(conf)
        c:set(key, "not a token")
        return conf
      end })
    serve_all()
    -- one exchange where the garbage was met; none if machine 1's background
    -- refresh wrote the token back over it before machine 2 read it
    local n = H.exchanges(fleet)
    assert.is_true(n == 1 or n == 2, "exchanges: " .. n)
    assert.is_true(redis_errors(machines[2]) <= 2)
    converged(20)
    assert.equals(n, H.exchanges(fleet))
    assert.truthy(select(2, redis_entry(c)))
    c:quit()
  end)

  test("a Redis answering garbage: served, one exchange per machine at most, one line per worker", function()
    redis = R.garbage()
    start_fleet(2, redis.port)
    serve_all()
    local exchanges = H.exchanges(fleet)
    assert.is_true(exchanges >= 1 and exchanges <= 2, "exchanges: " .. exchanges)
    for _, m in ipairs(machines) do
      local n = redis_errors(m)
      assert.is_true(n >= 1 and n <= 2, "store_error lines: " .. n .. "\n" .. m.log())
    end
  end)
end)
