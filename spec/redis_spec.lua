-- ducky.redis_store against a real redis-server started on a free loopback
-- port: the store on its own, then as the token_cache shared by several
-- processes (one exchange between them), across a Redis restart, and with no
-- Redis at all.
local H = require("spec.helpers")
local R = require("spec.support.redis_server")
local socket = require("socket")
local ducky = require("ducky")

package.path = "./lua/?.lua;" .. package.path
local redis_store = require("ducky.redis_store")

local build = H.BUILD

local function new_key()
  local t = {}
  for i = 1, 8 do t[i] = ("%08x"):format(math.random(0, 0x7fffffff)) end
  return table.concat(t)
end

local function entry(lifetime)
  return { access_token = "tok-" .. new_key():sub(1, 12), token_type = "Bearer",
    expires_at = socket.gettime() + lifetime, expires_in = lifetime }
end

-- JSON keeps 14 significant digits: expires_at comes back within a millisecond
local function assert_entry(e, got)
  assert.is_table(got)
  assert.equals(e.access_token, got.access_token)
  assert.equals(e.token_type, got.token_type)
  assert.near(e.expires_at, got.expires_at, 0.001)
  assert.equals(e.expires_in, got.expires_in)
end

local function client_with(store, id, events)
  return ducky.client(H.opts{
    client_id = id, client_secret = H.secret(id), token_cache = store,
    log = events and function(ev) events[#events + 1] = ev end,
  })
end

local function store_errors(events)
  local out = {}
  for _, ev in ipairs(events) do
    if ev.event == "store_error" then out[#out + 1] = ev end
  end
  return out
end

-- Runs one worker process per entry of `specs` ({clients, calls}), all started
-- together; returns the exit statuses and the combined output.
local function run_workers(port, id, specs)
  local start = socket.gettime() + 0.5
  local parts = {}
  for i, s in ipairs(specs) do
    parts[#parts + 1] = ([[LUA_CPATH='./%s/?.so;;' LUA_PATH='./lua/?.lua;./?.lua;;' ]]
      .. H.LUA .. [[ spec/support/workers/redis_worker.lua %q %q %q %q %q %d %d %d %.3f & p%d=$!;]])
      :format(build, H.base_url(), H.token_url(), H.audience(), id, H.secret(id), port,
        s[1], s[2], start, i)
  end
  local waits = {}
  for i = 1, #specs do waits[#waits + 1] = ("wait $p%d; echo \"rc=$?\""):format(i) end
  local cmd = "( " .. table.concat(parts, " ") .. " " .. table.concat(waits, "; ") .. " ) 2>&1"
  local p = assert(io.popen(cmd))
  local out = p:read("*a")
  p:close()
  local rcs = {}
  for rc in out:gmatch("rc=(%d+)") do rcs[#rcs + 1] = tonumber(rc) end
  return rcs, out
end

describe("redis_store", function()
  local port, server

  setup(function()
    server = R.start()
    port = server.port
  end)

  teardown(function()
    R.stop(server)
  end)

  describe("on its own", function()
    local store, raw
    before_each(function()
      store = redis_store.new{ port = port }
      raw = R.client(port)
    end)
    after_each(function()
      raw:quit()
      store.close()
    end)

    it("stores and loads an entry as JSON", function()
      local key, e = new_key(), entry(100)
      assert.is_nil(store.load(key))
      store.store(key, e)
      assert_entry(e, store.load(key))
      assert.is_string(raw:get("ducky:" .. key))
      -- another store (another process) sees it too
      assert_entry(e, redis_store.new{ port = port }.load(key))
    end)

    it("sets the key to expire with the token", function()
      local key = new_key()
      store.store(key, entry(100))
      local pttl = raw:pttl("ducky:" .. key)
      assert.is_true(pttl > 0 and pttl <= 100000, tostring(pttl))
    end)

    -- issue 19 item 13: ducky reports the raise as a store_error (below)
    it("raises on garbage under its key, naming the key and what is wrong", function()
      local key = new_key()
      for v, why in pairs {
        ["not json"] = "not JSON", ["{"] = "not JSON", ["[1,2]"] = "no access_token",
        ['"x"'] = "entry is a string, not a table", ['{"access_token":"x"}'] = "expires_at is not a number",
        ['{"expires_at":1e12}'] = "no access_token",
        ['{"access_token":5,"expires_at":1e12}'] = "no access_token",
        ['{"access_token":"","expires_at":1e12}'] = "no access_token",
        ['{"access_token":"a b","expires_at":1e12}'] = "outside visible ASCII",
        ['{"access_token":"x","token_type":"mac","expires_at":1e12}'] = 'token_type is "mac"',
        ['{"access_token":"x","expires_at":"soon"}'] = "expires_at is not a number",
        ['{"access_token":"x","expires_at":1e12,"expires_in":-5}'] = "expires_in is not a positive number",
      } do
        raw:set("ducky:" .. key, v)
        local ok, e = pcall(store.load, key)
        assert.is_false(ok, v)
        assert.matches("redis ducky:" .. key .. " holds no token entry %(.*" .. why:gsub("%p", "%%%0"), e)
      end
    end)

    it("store(key, nil) deletes", function()
      local key = new_key()
      store.store(key, entry(100))
      store.store(key, nil)
      assert.is_nil(raw:get("ducky:" .. key))
      assert.is_nil(store.load(key))
    end)

    it("drop(key, token, ttl) deletes that token, keeping its SHA-1 (not the token) for ttl", function()
      local key, e = new_key(), entry(100)
      store.store(key, e)
      store.drop(key, e.access_token, 50)
      assert.is_nil(store.load(key))
      local marks = raw:keys("ducky:" .. key .. ":dropped:*")
      assert.equals(1, #marks)
      assert.matches(":dropped:" .. ("%x"):rep(40) .. "$", marks[1])
      assert.is_nil(marks[1]:find(e.access_token, 1, true))
      assert.is_nil(raw:get(marks[1]):find(e.access_token, 1, true))
      local pttl = raw:pttl(marks[1])
      assert.is_true(pttl > 45000 and pttl <= 50000, tostring(pttl))
    end)

    it("drop() leaves another (newer) token in place", function()
      local key, old, new = new_key(), entry(100), entry(200)
      store.store(key, new)
      store.drop(key, old.access_token, 50)
      assert_entry(new, store.load(key))
    end)

    it("offer() writes an entry unless its token was dropped there", function()
      local key, old, new = new_key(), entry(100), entry(200)
      assert.is_true(store.offer(key, old))
      assert_entry(old, store.load(key))
      store.drop(key, old.access_token, 50)
      assert.is_false(store.offer(key, old))
      assert.is_nil(store.load(key))
      assert.is_true(store.offer(key, new))
      assert_entry(new, store.load(key))
      assert.is_false(store.offer(key, entry(-5))) -- expired: nothing to write
      assert_entry(new, store.load(key))
      store.drop(key, new.access_token, 50) -- a second drop: both stay refused
      assert.is_false(store.offer(key, new))
      assert.is_false(store.offer(key, old))
      assert.is_nil(store.load(key))
    end)

    it("uses the prefix", function()
      local key, e = new_key(), entry(100)
      redis_store.new{ port = port, prefix = "other:" }.store(key, e)
      assert.is_nil(store.load(key))
      assert.is_string(raw:get("other:" .. key))
    end)

    it("lock is exclusive and unlock releases it", function()
      local key, other = new_key(), redis_store.new{ port = port }
      assert.is_true(store.lock(key, 0))
      local t0 = socket.gettime()
      assert.is_false(other.lock(key, 0.1))
      assert.is_true(socket.gettime() - t0 >= 0.09)
      other.unlock(key) -- not its lock: no effect
      assert.is_false(other.lock(key, 0))
      store.unlock(key)
      assert.is_nil(raw:get("ducky:" .. key .. ":lock"))
      assert.is_true(other.lock(key, 0))
      other.unlock(key)
    end)

    it("unlock leaves a lock that is no longer ours", function()
      local key = new_key()
      assert.is_true(store.lock(key, 0))
      raw:set("ducky:" .. key .. ":lock", "someone-else") -- ours expired, another caller took it
      store.unlock(key)
      assert.equals("someone-else", raw:get("ducky:" .. key .. ":lock"))
    end)

    it("lock waits for an expiring lock, polling", function()
      local key = new_key()
      assert.is_true(redis_store.new{ port = port, lock_ttl = 200 }.lock(key, 0))
      local t0 = socket.gettime()
      assert.is_true(store.lock(key, 2))
      local waited = socket.gettime() - t0
      assert.is_true(waited > 0.1 and waited < 1, tostring(waited))
      local pttl = raw:pttl("ducky:" .. key .. ":lock")
      assert.is_true(pttl > 20000 and pttl <= 30000, tostring(pttl))
      store.unlock(key)
    end)

    it("uses a given client object", function()
      local key, e = new_key(), entry(100)
      local s = redis_store.new{ redis = raw }
      s.store(key, e)
      assert_entry(e, s.load(key))
      assert.is_true(s.lock(key, 0))
      s.unlock(key)
      assert.is_nil(raw:get("ducky:" .. key .. ":lock"))
    end)

    it("needs no LuaSocket with a given client (issue 22 §1)", function()
      local required, real_require = {}, require
      package.loaded["ducky.redis_store"] = nil
      _G.require = function(name) required[#required + 1] = name return real_require(name) end
      local ok, mod = pcall(real_require, "ducky.redis_store")
      _G.require = real_require
      package.loaded["ducky.redis_store"] = redis_store
      assert(ok, mod)
      local key, e = new_key(), entry(100)
      -- on a whole second: os.time() (a coarse clock, a few ms behind
      -- gettime's) is then at most one second behind it, never more
      e.expires_at = math.floor(e.expires_at)
      local s = mod.new{ redis = raw, prefix = "nosocket:" }
      s.store(key, e)
      assert_entry(e, s.load(key))
      local pttl = raw:pttl("nosocket:" .. key)
      assert.is_true(pttl > 98000 and pttl <= 101000, tostring(pttl)) -- a clock of whole seconds here
      assert.is_true(s.lock(key, 0))
      -- outside OpenResty a given client has no way to sleep: a held lock is tried once
      local t0 = socket.gettime()
      assert.is_false(mod.new{ redis = raw, prefix = "nosocket:" }.lock(key, 5))
      assert.is_true(socket.gettime() - t0 < 2)
      s.unlock(key)
      assert.is_nil(raw:get("nosocket:" .. key .. ":lock"))
      for _, name in ipairs(required) do assert.not_equals("socket", name) end
    end)

    it("refuses an unknown option or a wrong type, naming it", function()
      assert.error_matches(function() redis_store.new{ port = port, hots = "127.0.0.1" } end,
        "ducky.redis_store.new: unknown option 'hots'", nil, true)
      assert.error_matches(function() redis_store.new{ lock_tll = 100 } end, "unknown option 'lock_tll'", nil,
        true)
      assert.error_matches(function() redis_store.new{ timeout = "2" } end,
        "option 'timeout' must not be a string", nil, true)
      assert.error_matches(function() redis_store.new("127.0.0.1") end, "options must be a table", nil, true)
    end)

    -- found by review: lock_ttl 5e3 went to Redis as "5000.0" (and 0 or -5 as
    -- they are): every lock raised, and each machine exchanged on its own;
    -- port "abc" quietly became 6379
    it("refuses a value Redis would refuse on every call; 5e3 is 5000 ms", function()
      for _, bad in ipairs { { lock_ttl = 0 }, { lock_ttl = -5 }, { lock_ttl = 1.5 }, { port = "abc" },
                             { port = 0 }, { port = 70000 }, { timeout = 0 }, { timeout = -1 } } do
        local name = next(bad)
        assert.error_matches(function() redis_store.new(bad) end,
          "ducky.redis_store.new: option '" .. name .. "' must be", nil, true)
      end
      local s = redis_store.new{ port = tostring(port), lock_ttl = 5e3 }
      local key = new_key()
      assert.is_true(s.lock(key, 0))
      local ttl = raw:pttl("ducky:" .. key .. ":lock")
      assert.is_true(ttl > 4000 and ttl <= 5000, tostring(ttl))
      s.unlock(key)
    end)

    it("raises on a Redis error and reconnects on the next call", function()
      local key = new_key()
      raw:set("ducky:" .. key, "v")
      raw:rpush("ducky:" .. key .. "x", "a") -- a list: GET on it is a Redis error
      H.raises(store.load, "WRONGTYPE", key .. "x")
      store.store(key, entry(100))
      assert.is_table(store.load(key))
    end)
  end)

  it("2 processes x 2 clients with the same credentials make ONE exchange", function()
    local id = H.new_id("redis")
    -- a slow token endpoint widens the window in which the processes race
    H.fault{ path = "/oauth/token", client_id = id, delay = 0.3, times = 2 }
    local rcs, out = run_workers(port, id, { { 2, 3 }, { 2, 3 } })
    assert.same({ 0, 0 }, rcs, out)
    assert.equals(1, H.exchanges(id), out)
  end)

  it("a Redis restart: memory carries on, a store_error is reported, then Redis is used again", function()
    local id, events = H.new_id("redis-restart"), {}
    local store = redis_store.new{ port = port }
    local c1 = client_with(store, id, events)
    assert(c1:ping_protected())
    assert.equals(1, H.exchanges(id))

    R.stop(server)
    assert(c1:ping_protected()) -- from process memory
    server = R.start(port) -- empty: --save ""
    assert.equals(1, H.exchanges(id))

    -- a new process with a fresh client: exactly one more exchange
    local rcs, out = run_workers(port, id, { { 1, 2 } })
    assert.same({ 0 }, rcs, out)
    assert.equals(2, H.exchanges(id), out)

    -- the process that ran across the restart keeps working
    assert(c1:ping_protected())
    assert.same({}, store_errors(events))
    -- its store still holds the dead connection: the next use fails, is
    -- reported, and the client does not fail
    c1:invalidate()
    local errs = store_errors(events)
    assert.equals(1, #errs)
    assert.equals("store", errs[1].source)
    assert.matches("token_cache%.store", errs[1].reason)
    -- reconnected: the token the other process stored is used, no exchange
    assert(c1:ping_protected())
    assert.equals(2, H.exchanges(id))
    assert.equals(1, c1:stats().token_store_hits)
    assert.equals(1, #store_errors(events))
    c1:close()
  end)

  it("a lock left by a dead process: exchanges without it, within timeout (issue 13 item 9)", function()
    local id, events = H.new_id("redis-stale-lock"), {}
    local c = ducky.client(H.opts{
      client_id = id, client_secret = H.secret(id), token_cache = redis_store.new{ port = port }, timeout = 3,
      log = function(ev) events[#events + 1] = ev end,
    })
    local tok = assert(c:token())
    local raw = R.client(port)
    local key
    for _, k in ipairs(raw:keys("ducky:*")) do
      local v = raw:get(k)
      if type(v) == "string" and v:find(tok, 1, true) then key = k end
    end
    assert.is_string(key, "the token is not in Redis")
    c:invalidate() -- from memory and Redis: the next call exchanges
    raw:set(key .. ":lock", "a-dead-process")
    raw:pexpire(key .. ":lock", 30000)
    local t0 = socket.gettime()
    local res, err = c:ping_protected()
    local elapsed = socket.gettime() - t0
    local lock = raw:get(key .. ":lock")
    raw:del(key .. ":lock")
    raw:quit()
    c:close()
    assert.is_nil(err, err and tostring(err))
    assert.equals(200, res.status)
    -- the bound is the contract (no call outlives its timeout), not a speed figure
    assert.is_true(elapsed < 3, "took " .. elapsed)
    assert.equals(2, H.exchanges(id))
    assert.equals("a-dead-process", lock) -- not ours to remove
  end)

  it("garbage under a client's key: one store_error, an exchange, and a good entry in its place", function()
    local id, events = H.new_id("redis-garbage"), {}
    local store = redis_store.new{ port = port }
    local c = client_with(store, id, events)
    local raw = R.client(port)
    local name = "ducky:" .. c:cache_key()
    raw:set(name, '{"access_token":"left by something else"}')
    local tok = assert(c:token())
    assert.equals(1, H.exchanges(id))
    -- reported by each load of the exchange (before the lock and under it), the same each time
    local errs = store_errors(events)
    assert.is_true(#errs >= 1)
    for _, ev in ipairs(errs) do
      assert.equals("store", ev.source)
      assert.equals("token_cache.load: redis " .. name .. " holds no token entry (entry's access_token "
        .. "holds a byte outside visible ASCII (at 4))", ev.reason)
    end
    local stored = require("cjson").decode(raw:get(name))
    assert.equals(tok, stored.access_token)
    assert.is_true(ducky.check_entry(stored) > 0)
    -- another client of the same credentials now loads it: no exchange, no error
    local c2 = client_with(redis_store.new{ port = port }, id, events)
    assert(c2:token())
    assert.equals(1, H.exchanges(id))
    assert.equals(#errs, #store_errors(events))
    raw:quit()
    c:close()
    c2:close()
  end)

  it("no Redis at all: requests succeed, store_error events are logged", function()
    local id, events = H.new_id("redis-down"), {}
    local c = client_with(redis_store.new{ port = H.free_port(), timeout = 1 }, id, events)
    assert(c:ping_protected())
    assert(c:ping_protected())
    assert.equals(1, H.exchanges(id))
    local errs = store_errors(events)
    assert.is_true(#errs >= 1)
    for _, ev in ipairs(errs) do
      assert.equals("store", ev.source)
      assert.matches("redis", ev.reason)
    end
    c:close()
  end)
end)

-- Issue 13 item 9: a Redis that accepts connections and never answers (a
-- listening socket nobody accepts from: the kernel completes the handshake and
-- queues what is sent). No redis-server needed, lua-redis is.
describe("redis_store and a Redis that never answers (issue 13 item 9)", function()
  -- Store calls get a share of the call's remaining time and the store honours
  -- it, so the call ends by its deadline; SLACK covers luasocket ending a wait a
  -- little after its timeout and a busy host scheduling the process late.
  local SLACK = 0.25

  it("a call with timeout = 3 ends within it: an exchange without the store, store_error events", function()
    local mute = assert(socket.bind("127.0.0.1", 0))
    local _, mute_port = mute:getsockname()
    local id, events = H.new_id("redis-mute"), {}
    local c = ducky.client(H.opts{
      client_id = id, client_secret = H.secret(id), timeout = 3,
      token_cache = redis_store.new{ port = tonumber(mute_port) },
      log = function(ev) events[#events + 1] = ev end,
    })
    local t0 = socket.gettime()
    local res, err = c:ping_protected()
    local elapsed = socket.gettime() - t0
    c:close()
    mute:close()
    assert.is_nil(err, err and tostring(err))
    assert.equals(200, res.status)
    assert.is_true(elapsed < 3 + SLACK, "took " .. elapsed)
    assert.equals(1, H.exchanges(id))
    local errs = store_errors(events)
    assert.is_true(#errs >= 1, "no store_error event")
    for _, ev in ipairs(errs) do
      assert.equals("store", ev.source)
      assert.matches("^token_cache%.%a+: ", ev.reason)
    end
    assert.matches("^token_cache%.load: ", errs[1].reason)
  end)
end)
