-- The event-loop adapters (ducky.cqueues, ducky.copas, ducky.luv, ducky.nvim,
-- ducky.haproxy) in their real hosts, against the stand-in, over plain HTTP and
-- TLS: each host runs spec/support/hosts/scenarios.lua as a child process
-- (spec/support/hosts/run.lua: lua5.x + cqueues/copas/luv, Neovim headless,
-- HAProxy with a temporary configuration), and the figures it reports are
-- judged here. Timings are asserted loosely (machines are noisy); the measured
-- figures are bench/README.md's.
local H = require("spec.helpers")
local R = require("spec.support.hosts.run")

-- What each scenario must have seen.
local CHECKS = {}

function CHECKS.outside(v, host)
  for _, m in ipairs { "ping", "request", "token", "batch" } do
    assert.matches(("^ducky%%.%s: client:%s must be called "):format(host, m), v[m])
  end
end

function CHECKS.ping(v)
  assert.same({ status = 200, exchanges = 0 }, v)
end

function CHECKS.first_token(v)
  assert.equals(200, v.status)
  assert.equals(v.id, v.bearer_of) -- the API saw this client's token
  assert.same({ "exchange", "memory" }, v.sources)
  assert.equals(1, v.exchanges)
  assert.equals("string", v.token)
  assert.is_true(v.left > 86000)
end

function CHECKS.concurrent(v)
  assert.is_true(v.all, "not all 20 calls ended")
  for i = 1, 20 do assert.equals(200, v.statuses[i], "call " .. i) end
  assert.equals(1, v.exchanges)
  -- 20 answers of 0.3 s: 6 s one after the other
  assert.is_true(v.elapsed >= 0.29 and v.elapsed < 3, "took " .. v.elapsed .. " s")
end

function CHECKS.replay_401(v)
  assert.same({ first = 200, second = 200, replays = 1, exchanges = 2 }, v)
end

function CHECKS.timeout(v)
  assert.equals("timeout", v.kind)
  assert.is_true(v.elapsed >= 0.25 and v.elapsed < 2.5, "took " .. v.elapsed .. " s") -- the answer: 3 s
end

function CHECKS.cancel(v)
  assert.equals("cancelled", v.kind)
  assert.is_true(v.elapsed < 2.5, "took " .. v.elapsed .. " s")
end

function CHECKS.close(v)
  assert.is_true(v.all, "not all 3 calls ended")
  assert.same({ "cancelled", "cancelled", "cancelled" }, v.kinds)
  assert.is_true(v.elapsed < 2.5, "took " .. v.elapsed .. " s")
  assert.equals("client:request: attempt to use a closed ducky client", v.after)
end

function CHECKS.callback_error(v)
  assert.equals(200, v.status)
  assert.is_true(v.logged >= 1)
  assert.equals(200, v.store_status)
end

function CHECKS.ticks(v)
  assert.equals(200, v.status)
  assert.is_true(v.took >= 0.45, "took " .. v.took .. " s")
  assert.is_true(v.gap < 0.2, ("the host's timer stopped for %.3f s"):format(v.gap))
  assert.is_true(v.ticks >= 10, v.ticks .. " ticks")
end

function CHECKS.batch(v)
  assert.same({ 200, 200, 200, 200, "config" }, v.results)
  assert.is_true(v.elapsed < 1.5, "took " .. v.elapsed .. " s") -- 4 answers of 0.5 s: 2 s in turn
  assert.equals("client:batch: item 1: not a { method, path, opts } table", v.misuse)
end

function CHECKS.cancel_leader(v)
  assert.same({ all = true, led = "cancelled", got = "token", exchanges = 1 }, v)
end

function CHECKS.batch_close(v)
  assert.same({ "cancelled", "cancelled", "cancelled", "cancelled" }, v.kinds)
  assert.is_true(v.elapsed < 2.5, "took " .. v.elapsed .. " s")
end

function CHECKS.callbacks(v, host)
  assert.is_true(v.all, "not all 13 callbacks came")
  assert.equals(0, v.early) -- no callback ran inside the call that gave it
  for i = 1, 10 do assert.equals(200, v.got[tostring(i)], "call " .. i) end
  assert.equals("string", v.got.token)
  assert.equals(200, v.got.batch)
  assert.equals("config", v.got.refused)
  assert.equals(host == "nvim" and "works" or "no editor", v.got.api)
end

function CHECKS.callback_raises(v, host, output)
  if host ~= "nvim" then return assert.same({ skipped = true }, v) end
  assert.same({ all = true, second = 200, after = 200 }, v)
  assert.matches("the callback fails on purpose", output, 1, true) -- Neovim's error message
end

local TITLES = {
  outside = "a call outside the host's context raises, saying what it needs",
  ping = "a call",
  first_token = "a call that must exchange a token first",
  concurrent = "20 concurrent calls on one client",
  replay_401 = "a 401 replay",
  timeout = "a timeout",
  cancel = "a cancel",
  close = "a close with calls in flight",
  callback_error = "an error from a log function or a store table called inside step()",
  ticks = "the host's 10 ms timer keeps ticking during a 0.5 s call",
  batch = "batch: four slow calls at once, a refused one in its place",
  cancel_leader = "a cancelled operation's exchange goes on for another client of the credential",
  batch_close = "batch: the client closed with items not yet started: every item cancelled",
  callbacks = "trailing callbacks: each call returns at once, its callback comes from the loop",
  callback_raises = "a callback that raises is the editor's error message; the client goes on",
}
local ORDER = { "outside", "ping", "first_token", "concurrent", "replay_401", "timeout", "cancel", "close",
  "callback_error", "ticks", "batch", "cancel_leader", "batch_close", "callbacks", "callback_raises" }

for _, host in ipairs(R.NAMES) do
  describe("ducky." .. host .. " in its host", function()
    local runnable, why = R.host(host)
    for _, kind in ipairs { "http", "https" } do
      local results, output
      local function result(name)
        if not results then results, output = R.run(host, kind) end
        local r = results[name]
        assert(r, ("no result for %s (%s)"):format(name, output))
        assert(r.ok, ("%s raised: %s"):format(name, tostring(r.error)))
        return r.value, output
      end
      for _, name in ipairs(ORDER) do
        local title = ("%s, %s: %s"):format(host, kind, TITLES[name])
        -- trailing callbacks are ducky.luv's and ducky.nvim's (luv ends the
        -- process on a callback's error: below)
        -- ducky.haproxy steps a client only while one of its calls waits
        local applies = (name ~= "callbacks" or host == "luv" or host == "nvim")
          and (name ~= "callback_raises" or host == "nvim")
          and (name ~= "cancel_leader" or host ~= "haproxy")
        if applies and runnable then
          it(title, function()
            local v, out = result(name)
            CHECKS[name](v, host, out)
          end)
        elseif applies then
          pending(title .. " (" .. why .. ")")
        end
      end
    end
  end)
end

-- A test running a script of its own in host `name`'s Lua against the stand-in:
-- fn(run) with run(body) -> its output and exit code; pending where that host
-- cannot run here.
local function script_test(name, title, fn)
  local host, why = R.host(name)
  ;(host and it or pending)(title .. (host and "" or " (" .. tostring(why) .. ")"), function()
    fn(function(body) return H.run(host.script(H.standin().dir, body)) end)
  end)
end

describe("ducky.luv: a callback that raises", function()
  script_test("luv", "meets luv's rule for callback errors: the message, and the process ends", function(run)
    local out, code = run([[
      local uv = require("luv")
      local c = require("ducky.luv").client(OPTS)
      c:ping(function() error("the callback fails on purpose") end)
      uv.run()
      print("the loop went on")
    ]])
    assert.matches("Uncaught Error: .*the callback fails on purpose", out)
    assert.not_matches("the loop went on", out, 1, true)
    assert.not_equals(0, code)
  end)
end)

describe("ducky.luv: a waiting coroutine closed (coroutine.close, Lua 5.4)", function()
  -- found by review: the abandoned call's end resumed the dead coroutine, and
  -- "cannot resume dead coroutine" ended the process
  script_test("luv", "is left alone when its call ends; the client goes on", function(run)
    -- queued only where the script makes the call (a fault left queued would
    -- slow another file's request on this stand-in)
    if coroutine.close then H.fault{ path = "/v3/echo", delay = 0.5 } end
    local out, code = run([[
      local uv = require("luv")
      if not coroutine.close then return print("no coroutine.close") end
      local c = require("ducky.luv").client(OPTS)
      local co = coroutine.create(function() c:request("GET", "/echo") end)
      assert(coroutine.resume(co))
      local t = uv.new_timer()
      t:start(100, 0, function()
        t:close()
        assert(coroutine.close(co))
        c:ping(function(res, err) print("ping after", res and res.status or tostring(err)) end)
      end)
      uv.run()
      local t2 = uv.new_timer() -- the abandoned call's end (0.5 s) comes and goes
      t2:start(700, 0, function() t2:close() end)
      uv.run()
      c:close()
      print("the loop went on")
    ]])
    assert.equals(0, code, out)
    if out:find("no coroutine.close", 1, true) then return end
    assert.matches("ping after\t200", out, 1, true)
    assert.matches("the loop went on", out, 1, true)
  end)
end)

describe("ducky.cqueues: a controller nobody runs any more", function()
  -- found by review: the client's one pump stayed in the first controller, so
  -- calls made in the next never got a step and hung
  script_test("cqueues", "calls made in the next controller still end", function(run)
    H.fault{ path = "/v3/echo", delay = 1 }
    local out, code = run([[
      local cqueues = require("cqueues")
      local client = require("ducky.cqueues").client(OPTS)
      local cq = cqueues.new()
      cq:wrap(function() client:request("GET", "/echo") end)
      cq:wrap(function() cqueues.sleep(0.2); error("the loop ends on purpose") end)
      print("first loop", cq:loop())
      local cq2 = cqueues.new()
      cq2:wrap(function()
        local res, err = client:ping()
        print("ping in the next controller", res and res.status or tostring(err))
      end)
      print("second loop", cq2:loop(8))
      client:close()
    ]])
    assert.equals(0, code, out)
    assert.matches("ping in the next controller\t200", out, 1, true)
    assert.matches("second loop\ttrue", out, 1, true)
  end)
end)
