-- The non-blocking engine (issue 20 §1): pollable operations on one descriptor,
-- driven here by LuaSocket's select as any host loop would, and its traps.
local H = require("spec.helpers")
local ducky = require("ducky")
local socket = require("socket")

local PING = "/v3/ping/protected"

-- Waits on the client's descriptor as a host would (select, bounded by
-- timeout()) and steps until done() or the deadline; returns the steps taken.
local function drive(c, done, limit)
  local fd = c:pollfd()
  local pollable = { getfd = function() return fd end }
  local deadline, steps = socket.gettime() + (limit or 10), 0
  while not done() do
    assert(socket.gettime() < deadline, "not done within " .. (limit or 10) .. " s")
    local t = c:timeout()
    socket.select({ pollable }, nil, t and math.min(t, 1) or 1)
    c:step()
    steps = steps + 1
  end
  return steps
end

local function all_done(ops)
  return function()
    for _, op in ipairs(ops) do
      if not op:done() then return false end
    end
    return true
  end
end

describe("the engine's pollable protocol", function()
  before_each(function() H.reset() end)
  after_each(function() H.reset_clock() end)

  it("start never blocks; the descriptor tells when step has work; result is request()'s", function()
    local o = H.opts{}
    local c = ducky.client(o)
    H.fault{ path = PING, delay = 0.3, status = 200, body = { message = "slow" } }
    local op = assert(c:start("GET", "/ping/protected"))
    assert.is_false(op:done())
    assert.equals("r", c:events())
    assert.is_number(c:pollfd())
    assert.equals(c:pollfd(), op:pollfd()) -- one descriptor, forwarded
    assert.has_error(function() op:result() end,
      "op:result: the operation is under way: wait until op:done()")
    drive(c, function() return op:done() end)
    local res = assert(op:result())
    assert.equals(200, res.status)
    assert.equals("slow", res.json.message)
    assert.equals(1, res.attempts)
    local again = assert(op:result()) -- as often as asked
    assert.equals(200, again.status)
    assert.is_nil(c:timeout()) -- idle
    assert.equals(1, H.exchanges(o.client_id))
  end)

  it("many operations at once on one client, with one token exchange", function()
    local o = H.opts{}
    local c = ducky.client(o)
    H.fault{ path = "/v3/echo/many", delay = 0.5, status = 200, body = { ok = true }, times = 20 }
    local ops = {}
    for i = 1, 20 do ops[i] = assert(c:start("GET", "/echo/many")) end
    local t0 = socket.gettime()
    drive(c, all_done(ops))
    -- 20 calls of 0.5 s each: together, not one after another (a loose bound)
    assert.is_true(socket.gettime() - t0 < 5, "took " .. (socket.gettime() - t0))
    for _, op in ipairs(ops) do assert.equals(200, assert(op:result()).status) end
    assert.equals(1, H.exchanges(o.client_id))
  end)

  it("start_token is token() as an operation", function()
    local o = H.opts{}
    local c = ducky.client(o)
    local op = c:start_token()
    drive(c, function() return op:done() end)
    local tok, left, info = op:result()
    assert.matches("^tok_", tok)
    assert.is_true(left > 0)
    assert.equals("exchange", info.source)
    assert.equals(tok, (c:token()))
  end)

  it("timeout() is nil when idle, and what a retry's back-off leaves otherwise", function()
    local c = ducky.client(H.opts{ retries = 1 })
    assert.is_nil(c:timeout())
    assert(c:token())
    H.fault{ path = "/v3/echo/later", status = 503, headers = { ["Retry-After"] = "1" } }
    local op = c:start("GET", "/echo/later")
    drive(c, function() return c:timeout() and c:timeout() > 0.5 end) -- waiting out Retry-After
    assert.is_false(op:done())
    -- nothing on the sockets: the timer alone makes the descriptor readable
    local t0 = socket.gettime()
    drive(c, function() return op:done() end)
    assert.is_true(socket.gettime() - t0 >= 0.5)
    assert.equals(2, assert(op:result()).attempts)
  end)

  it("a step with nothing to do is harmless, however often", function()
    local c = ducky.client(H.opts{})
    for _ = 1, 1000 do assert.equals(0, c:step()) end
    assert.is_nil(c:timeout())
    assert(c:ping())
  end)

  it("step(seconds) blocks until an operation ends or the seconds pass, whichever is first", function()
    local c = ducky.client(H.opts{})
    assert.equals(0, c:step(5)) -- nothing under way: nothing to wait for
    assert(c:token())
    H.fault{ path = "/v3/echo/slow", delay = 1.5, status = 200, body = {} }
    local slow = assert(c:start("GET", "/echo/slow"))
    local fast = assert(c:start("GET", "/echo/fast"))
    local ended = 0
    while not fast:done() do ended = ended + c:step(5) end -- returns as the fast one ends
    assert.equals(1, ended)
    assert.is_false(slow:done())
    assert.equals(0, c:step(0.05)) -- the seconds pass first
    assert.is_false(slow:done())
    while not slow:done() do ended = ended + c:step(5) end
    assert.equals(2, ended)
    assert.equals(200, assert(slow:result()).status)
    assert.equals(200, assert(fast:result()).status)
  end)

  it("step(seconds) refuses what is not a number of seconds", function()
    local c = ducky.client(H.opts{})
    assert.has_error(function() c:step(-1) end, "client:step: seconds is out of range (0 to 1e6): -1")
    assert.has_error(function() c:step(0 / 0) end)
    assert.has_error(function() c:step(math.huge) end)
    assert.has_error(function() c:step("1") end, "client:step: seconds must be a number, not string")
    assert.equals(0, c:step(0))
  end)

  it("a blocking call and started operations share the engine", function()
    local c = ducky.client(H.opts{})
    H.fault{ path = "/v3/echo/bg", delay = 0.3, status = 200, body = {} }
    local op = assert(c:start("GET", "/echo/bg"))
    assert(c:request("GET", "/echo/fg")) -- drives the started one too
    drive(c, function() return op:done() end)
    assert.equals(200, assert(op:result()).status)
  end)
end)

describe("the engine's traps", function()
  before_each(function() H.reset() end)

  it("cancel ends an operation at once with kind cancelled", function()
    local c = ducky.client(H.opts{})
    H.fault{ path = "/v3/echo/hang", delay = 3, status = 200, body = {} }
    local op = assert(c:start("GET", "/echo/hang"))
    c:step()
    op:cancel()
    assert.is_true(op:done())
    local res, err = op:result()
    assert.is_nil(res)
    assert.equals("cancelled", err.kind)
    assert.matches("cancelled", tostring(err))
    op:cancel() -- again: nothing
    assert(c:ping()) -- the client goes on
  end)

  it("a cancel wakes a host that waits on the descriptor", function()
    local c = ducky.client(H.opts{})
    assert(c:token())
    H.fault{ path = "/v3/echo/waited", delay = 5, status = 200, body = {} }
    local op = assert(c:start("GET", "/echo/waited"))
    c:step()
    local fd = c:pollfd()
    local pollable = { getfd = function() return fd end }
    op:cancel() -- as another coroutine of the host would
    local t0 = socket.gettime()
    local ready = socket.select({ pollable }, nil, 3)
    assert.equals(1, #ready, "the descriptor stayed quiet")
    assert.is_true(socket.gettime() - t0 < 1)
    c:step()
  end)

  it("cancelling the operation that leads an exchange leaves it to the others", function()
    local o = H.opts{}
    local c = ducky.client(o)
    H.fault{ path = "/oauth/token", client_id = o.client_id, delay = 0.4 } -- a slow exchange
    local leader = c:start_token()
    local other = assert(c:start("GET", "/ping/protected"))
    c:step()
    leader:cancel()
    assert.equals("cancelled", select(2, leader:result()).kind)
    drive(c, function() return other:done() end)
    local res = assert(other:result())
    assert.equals(200, res.status)
    assert.equals(1, res.attempts)
    assert(c:token())
    assert.equals(1, H.stats().requests_by_path["/oauth/token"]) -- the one exchange served both
    assert.equals(1, H.exchanges(o.client_id))
  end)

  -- found by review: the exchange took the deadline of the call that led it,
  -- so a short call failed every waiter with its timeout, and the back-off it
  -- left failed later calls too, while the endpoint was only slower than it
  it("a short call that leads an exchange times out alone; the exchange serves the others", function()
    local o = H.opts{ timeout = 5, retries = 0 }
    local c = ducky.client(o)
    H.fault{ path = "/oauth/token", client_id = o.client_id, delay = 0.6 } -- a slow exchange
    local short = assert(c:start("GET", "/ping/protected", { timeout = 0.2 }))
    local long = assert(c:start("GET", "/ping/protected"))
    drive(c, all_done { short, long })
    local _, err = short:result()
    assert.equals("timeout", err.kind)
    local res = assert(long:result())
    assert.equals(200, res.status)
    local fresh = ducky.client(o) -- no back-off left behind
    assert(fresh:ping_protected())
    assert.equals(1, H.exchanges(o.client_id))
    fresh:close()
    c:close()
  end)

  -- ...and when nobody steps the client until after the exchange's own
  -- deadline, the next call leads a fresh one: it does not get the stale
  -- exchange's timeout (an answer that sat unread) as its error and back-off
  it("an exchange its short call left behind, outlived unstepped, does not fail the next call", function()
    local o = H.opts{ timeout = 1, retries = 0 }
    local c = ducky.client(o)
    H.fault{ path = "/oauth/token", client_id = o.client_id, delay = 0.4 }
    local _, err = c:request("GET", "/ping/protected", { timeout = 0.1 })
    assert.equals("timeout", err.kind)
    socket.sleep(1.2) -- past the exchange's deadline (the client's timeout), nobody stepping
    local res = assert(c:ping_protected())
    assert.equals(200, res.status)
    c:close()
  end)

  it("an operation collected in flight is cancelled, inside a step or out", function()
    local c = ducky.client(H.opts{})
    H.fault{ path = "/v3/echo/lost", delay = 3, status = 200, body = {}, times = 2 }
    do local op = assert(c:start("GET", "/echo/lost")) c:step() end -- luacheck: ignore op
    collectgarbage()
    collectgarbage()
    -- its finalizer inside a step (a log callback that collects) only marks it
    local d = ducky.client(H.opts{ log = function() collectgarbage() collectgarbage() end })
    do local op = assert(d:start("GET", "/echo/lost")) end -- luacheck: ignore op
    d:step()
    d:step()
    for _, x in ipairs{ c, d } do
      local t0 = socket.gettime()
      assert(x:ping()) -- not behind a 3 s call: it was let go
      assert.is_true(socket.gettime() - t0 < 2.5)
    end
  end)

  it("close() with operations in flight ends them as cancelled; they stay readable", function()
    local c = ducky.client(H.opts{})
    H.fault{ path = "/v3/echo/closing", delay = 3, status = 200, body = {}, times = 3 }
    local ops = {}
    for i = 1, 3 do ops[i] = assert(c:start("GET", "/echo/closing")) end
    c:step()
    c:close()
    for _, op in ipairs(ops) do
      assert.is_true(op:done())
      assert.equals("cancelled", select(2, op:result()).kind)
    end
    assert.has_error(function() c:start("GET", "/ping") end,
      "client:start: attempt to use a closed ducky client")
    assert.has_error(function() ops[1]:pollfd() end,
      "client:pollfd: attempt to use a closed ducky client")
  end)

  it("a callback inside step cannot call its client, cancel, or break the step", function()
    local c
    local seen = {}
    c = ducky.client(H.opts{ log = function(ev)
      if ev.event == "token" then
        seen[#seen + 1] = select(2, pcall(c.step, c))
        seen[#seen + 1] = select(2, pcall(c.request, c, "GET", "/ping"))
        error("a log function that raises")
      end
    end })
    local op = assert(c:start("GET", "/ping/protected"))
    drive(c, function() return op:done() end)
    assert.equals(200, assert(op:result()).status)
    assert.matches("cannot be used while one of its calls is under way", seen[1])
    assert.matches("cannot be used while one of its calls is under way", seen[2])
  end)

  it("a client waiting in a blocking call on a leader nobody steps takes the lead over", function()
    local o = H.opts{}
    local a, b = ducky.client(o), ducky.client(o)
    local op = a:start_token() -- leads, and a is never stepped again
    local tok = assert(b:token()) -- would wait forever for a
    assert.matches("^tok_", tok)
    assert.is_false(op:done())
    a:close()
  end)

  it("op methods refuse what is not an op", function()
    local c = ducky.client(H.opts{})
    local op = assert(c:start("GET", "/ping"))
    assert.has_error(function() op.done({}) end,
      "op:done: call it on a ducky operation, as op:done(…), not on a table")
    c:close()
  end)
end)

-- fork(): the child must not touch the parent's epoll set, eventfd or
-- connections (LuaJIT's FFI calls fork; the suite's LuaJIT build is used)
local luajit = os.getenv("DUCKY_LUAJIT_BUILD")
local fork_it = (luajit and os.execute("command -v luajit >/dev/null")) and it or pending

-- Runs a script that forks (LuaJIT's FFI) against the stand-in; it prints
-- "fork ok" at the end.
local function run_forking(script)
  local dir = H.tmpdir()
  H.write_file(dir .. "/fork.lua", script)
  local out, code = H.run(("%sLUA_CPATH='./%s/?.so;;' LUA_PATH='./lua/?.lua;./?.lua;;' "
    .. "DUCKY_STANDIN_DIR='%s' luajit %s/fork.lua"):format(H.CLEAN_ENV, luajit, H.standin().dir, dir))
  os.execute("rm -rf '" .. dir .. "'")
  assert.equals(0, code, out)
  assert.matches("fork ok", out)
end

describe("after fork", function()
  fork_it("the child starts over with its own descriptor; the parent's call goes on", function()
    local script = [[
      local ffi = require("ffi")
      ffi.cdef("int fork(void); int waitpid(int pid, int *status, int options); void _exit(int);")
      local H = require("spec.helpers")
      local socket = require("socket")
      local ducky = require("ducky")
      local c = ducky.client(H.opts{})
      assert(c:token())
      H.fault{ path = "/v3/echo/parent", delay = 0.5, status = 200, body = { who = "parent" } }
      local op = assert(c:start("GET", "/echo/parent"))
      c:step()
      local fd = c:pollfd()
      local pid = ffi.C.fork()
      if pid == 0 then
        local ok, why = pcall(function()
          c:step() -- the child's copy of the call ends: its transfer is the parent's
          assert(op:done(), "the child's copy of the call ends")
          assert(select(2, op:result()).kind == "cancelled")
          local res = assert(c:request("GET", "/echo/child"))
          assert(res.json.path == "/v3/echo/child")
        end)
        if not ok then io.stderr:write("child: ", tostring(why), "\n") io.stderr:flush() end
        ffi.C._exit(ok and 0 or 3)
      end
      local status = ffi.new("int[1]")
      ffi.C.waitpid(pid, status, 0)
      assert(status[0] == 0, "child failed: " .. status[0])
      local pollable = { getfd = function() return fd end }
      while not op:done() do socket.select({ pollable }, nil, c:timeout() or 1); c:step() end
      local res = assert(op:result())
      assert(res.json.who == "parent")
      print("fork ok")
    ]]
    run_forking(script)
  end)

  -- found by review: the child's registry still named the parent's engines as
  -- the exchange's leader and waiters: the child waited out the stall on a
  -- leader nobody steps there, then woke the waiters through the parent's
  -- eventfds (or whatever files took their numbers)
  fork_it("the child leads its own exchange at once; the parent's leader and waiters are not its", function()
    local script = [[
      local ffi = require("ffi")
      ffi.cdef("int fork(void); int waitpid(int pid, int *status, int options); void _exit(int);")
      local H = require("spec.helpers")
      local socket = require("socket")
      local ducky = require("ducky")
      local o = H.opts{ token_cache = false }
      H.fault{ path = "/oauth/token", client_id = o.client_id, delay = 2, times = 1 } -- the parent's
      local leader, waiter = ducky.client(o), ducky.client(o)
      local a = leader:start_token()
      while (H.stats().requests_by_path["/oauth/token"] or 0) < 1 do leader:step(0.05) end
      H.reset() -- the delay is the parent's exchange's alone
      local w = waiter:start_token()
      waiter:step()
      local pid = ffi.C.fork()
      if pid == 0 then
        local t0 = socket.gettime()
        local tok = ducky.client(o):token()
        local took = socket.gettime() - t0
        if not tok or took > 1.2 then
          io.stderr:write(("child: token %s after %.2f s\n"):format(tostring(tok), took))
          io.stderr:flush()
          ffi.C._exit(3)
        end
        ffi.C._exit(0)
      end
      local status = ffi.new("int[1]")
      ffi.C.waitpid(pid, status, 0)
      assert(status[0] == 0, "child failed: " .. status[0])
      while not (a:done() and w:done()) do leader:step(0.1); waiter:step(0.1) end
      assert(a:result())
      assert(w:result())
      print("fork ok")
    ]]
    run_forking(script)
  end)
end)
