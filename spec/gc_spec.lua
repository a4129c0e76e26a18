-- Lifetimes under an aggressive garbage collector: many clients made and dropped
-- (closed or not, mid-use, captured in closures and coroutines), and log callbacks
-- that raise, collect garbage or re-enter. Nothing may crash; answers stay right.
local H = require("spec.helpers")
local ducky = require("ducky")

local BUILD = os.getenv("DUCKY_BUILD") or "build"

-- Lua 5.4's generational mode (5.2 had an experimental one that answers 0:
-- put 5.2 back to incremental and call it unsupported).
local function has_generational()
  local ok, prev = pcall(collectgarbage, "generational")
  if ok and type(prev) == "string" then
    collectgarbage(prev)
    return true
  end
  pcall(collectgarbage, "incremental")
  return false
end

-- Runs f with the most aggressive collector settings, restored afterwards.
local function with_aggressive_gc(f, generational)
  local old_pause = collectgarbage("setpause", 0)
  local old_mul = collectgarbage("setstepmul", 1000)
  local old_mode
  if generational and has_generational() then
    old_mode = collectgarbage("generational")
  end
  local ok, err = pcall(f)
  if old_mode then collectgarbage(old_mode) end
  collectgarbage("setpause", old_pause)
  collectgarbage("setstepmul", old_mul)
  collectgarbage()
  if not ok then error(err, 0) end
end


local function echo_check(res, err, tag)
  assert.is_nil(err, tag)
  assert.equals(200, res.status, tag)
  assert.equals("/v3/echo", res.json.path, tag)
  assert.equals(tag, res.json.args.tag[1])
end

-- runs a Lua script in a child process (a crash there fails the test, not the suite)
local function run_child(script)
  local dir = H.tmpdir()
  H.write_file(dir .. "/child.lua", script)
  local p = assert(io.popen(string.format(
    "DUCKY_STANDIN_DIR='%s' LUA_CPATH='./%s/?.so;;' " .. H.LUA .. " %s/child.lua 2>&1; echo \"exit=$?\"",
    H.standin().dir, BUILD, dir)))
  local out = p:read("*a")
  p:close()
  os.execute("rm -rf '" .. dir .. "'")
  return out
end

local modes = { { "incremental", false } }
if has_generational() then modes[#modes + 1] = { "generational", true } end

for _, mode in ipairs(modes) do
  local name, generational = mode[1], mode[2]

  describe("gc (" .. name .. ", pause 0)", function()
    it("hundreds of clients made and dropped, some closed, some not", function()
      local before = H.stats().requests_by_path["/v3/ping"] or 0
      local pings = 0
      with_aggressive_gc(function()
        for i = 1, 300 do
          local c = ducky.client(H.opts())
          if i % 3 == 0 then
            c:close()
          elseif i % 3 == 1 then
            local res = assert(c:ping())
            assert.equals("pong", res.json.message)
            pings = pings + 1
            if i % 2 == 0 then c:close() end
          end
          -- else dropped unused, left to __gc
        end
        collectgarbage()
        collectgarbage()
      end, generational)
      assert.equals(before + pings, H.stats().requests_by_path["/v3/ping"])
    end)

    it("requests in loops on shared clients with garbage in between", function()
      with_aggressive_gc(function()
        local o = H.opts()
        local clients = {}
        for i = 1, 4 do
          clients[i] = ducky.client(H.opts{ client_id = o.client_id, client_secret = o.client_secret })
        end
        for i = 1, 40 do
          local c = clients[i % 4 + 1]
          local tag = "loop-" .. i
          local junk = {}
          for j = 1, 20 do junk[j] = { tostring(j) .. tag } end
          local res, err = c:request("POST", "/echo", { query = { tag = tag }, json = junk,
                                                        headers = { ["X-Tag"] = tag } })
          echo_check(res, err, tag)
          assert.equals(tag, res.json.headers["x-tag"])
          assert.equals(20, #res.json.json)
        end
        for _, c in ipairs(clients) do c:close() end
        -- one credential, one exchange, whatever the collector did
        assert.equals(1, H.exchanges(o.client_id))
      end, generational)
    end)

    it("clients captured in closures and coroutines, dropped mid-use", function()
      with_aggressive_gc(function()
        local cos = {}
        for i = 1, 24 do
          local c = ducky.client(H.opts())
          local tag = "co-" .. i
          local function call() return c:request("GET", "/echo", { query = { tag = tag } }) end
          cos[i] = coroutine.create(function()
            local res, err = call()
            coroutine.yield(res, err)
            res, err = c:ping()
            coroutine.yield(res, err)
            if i % 2 == 0 then c:close() end
            return "done"
          end)
        end
        for i, co in ipairs(cos) do
          local ok, res, err = coroutine.resume(co)
          assert.is_true(ok, tostring(res))
          echo_check(res, err, "co-" .. i)
        end
        collectgarbage()
        -- resume half of them once more, finish a third; drop everything else mid-use
        for i = 1, #cos, 2 do
          local ok, res = coroutine.resume(cos[i])
          assert.is_true(ok, tostring(res))
          assert.equals("pong", res.json.message)
        end
        for i = 1, #cos, 3 do
          if coroutine.status(cos[i]) == "suspended" then
            local ok, r = coroutine.resume(cos[i])
            assert.is_true(ok, tostring(r))
            if coroutine.status(cos[i]) == "suspended" then
              ok, r = coroutine.resume(cos[i])
              assert.is_true(ok, tostring(r))
            end
            assert.equals("done", r)
          end
        end
        cos = nil -- luacheck: ignore
        collectgarbage()
        collectgarbage()
      end, generational)
      -- and a new client after all that works
      local c = ducky.client(H.opts())
      assert.equals("pong", assert(c:ping()).json.message)
      c:close()
    end)

    it("a closure keeps its client alive after the creating scope is gone", function()
      with_aggressive_gc(function()
        local fns = {}
        for i = 1, 20 do
          fns[i] = (function()
            local c = ducky.client(H.opts())
            return function(tag) return c:request("GET", "/echo", { query = { tag = tag } }) end
          end)()
        end
        collectgarbage()
        collectgarbage()
        for i, f in ipairs(fns) do
          local tag = "closure-" .. i
          local res, err = f(tag)
          echo_check(res, err, tag)
        end
      end, generational)
    end)

    it("clients and their errors survive in tables that are collected", function()
      with_aggressive_gc(function()
        local errs = setmetatable({}, { __mode = "v" })
        for i = 1, 20 do
          local c = ducky.client(H.opts())
          local res, err = c:request("GET", "/status/404")
          assert.is_nil(res)
          assert.equals(404, err.status)
          errs[i] = err
          if i % 2 == 0 then c:close() end
        end
        collectgarbage()
        for _, e in pairs(errs) do assert.equals("http", e.kind) end
      end, generational)
    end)
  end)
end

describe("log callbacks", function()
  it("an error raised inside log is ignored", function()
    local calls = 0
    local c = ducky.client(H.opts{ log = function()
      calls = calls + 1
      error("boom from log")
    end })
    local res, err = c:request("GET", "/echo", { query = { tag = "boom" } })
    echo_check(res, err, "boom")
    assert.is_true(calls > 0)
    res = assert(c:ping_protected())
    assert.is_true(res.json.ready)
    c:close()
  end)

  it("a non-string error object and a runtime error inside log are ignored", function()
    local n = 0
    local c = ducky.client(H.opts{ log = function(ev)
      n = n + 1
      if n % 2 == 0 then error(setmetatable({}, { __tostring = function() error("worse") end })) end
      return ev.no_such_field.x -- index nil
    end })
    for i = 1, 5 do
      local res, err = c:request("GET", "/echo", { query = { tag = "t" .. i } })
      echo_check(res, err, "t" .. i)
    end
    assert.is_true(n >= 5)
    c:close()
  end)

  it("a log that calls collectgarbage() does not break the request", function()
    local seen = {}
    with_aggressive_gc(function()
      for i = 1, 12 do
        local c = ducky.client(H.opts{ log = function(ev)
          seen[#seen + 1] = ev.event
          collectgarbage()
          collectgarbage("step")
        end })
        local tag = "gc-log-" .. i
        local res, err = c:request("GET", "/echo", { query = { tag = tag } })
        echo_check(res, err, tag)
        if i % 2 == 0 then c:close() end
      end
    end)
    assert.is_true(#seen >= 12)
    for _, e in ipairs(seen) do assert.is_string(e) end
  end)

  it("a log that drops the last other reference to the client and collects", function()
    local holder = {}
    holder.c = ducky.client(H.opts{ log = function()
      holder.c = nil
      collectgarbage()
      collectgarbage()
    end })
    local c = holder.c
    local res, err = c:request("GET", "/echo", { query = { tag = "drop" } })
    echo_check(res, err, "drop")
    c:close()
  end)

  it("a log that yields inside a coroutine is ignored", function()
    local c = ducky.client(H.opts{ log = function() coroutine.yield("from log") end })
    local co = coroutine.wrap(function()
      local res, err = c:request("GET", "/echo", { query = { tag = "yield" } })
      return "finished", res, err
    end)
    local what, res, err = co()
    assert.equals("finished", what)
    echo_check(res, err, "yield")
    c:close()
  end)

  it("the log events are tables with an event name", function()
    local events = {}
    local c = ducky.client(H.opts{ log = function(ev) events[#events + 1] = ev end })
    assert(c:ping_protected())
    assert(c:ping_protected())
    assert.equals("token", events[1].event)
    assert.equals("exchange", events[1].source)
    assert.is_number(events[1].seconds_left)
    assert.equals("token", events[2].event)
    assert.equals("memory", events[2].source)
    c:close()
  end)

  -- Re-entrant use from a log callback: run in a child so a crash is a failure,
  -- not the end of the suite. Any outcome but a crash or a wrong answer is fine:
  -- the outer call may succeed, give an error, or raise.
  local REENTRY = [[
local H = require("spec.helpers")
local ducky = require("ducky")
local mode = %q
local c
c = ducky.client(H.opts{ log = function(ev)
  if ev.event ~= "token" then return end
  if mode == "close" then c:close()
  elseif mode == "ping" then c:ping()
  elseif mode == "request" then
    c:request("GET", "/echo/inner", { headers = { ["X-Inner"] = "1" },
                                      query = { q = string.rep("x", 5000) } })
  end
end })
local ok, res, err = pcall(c.request, c, "POST", "/echo", { json = { a = 1 },
                                                           headers = { ["X-Outer"] = "1" } })
if not ok then print("outer raised")
elseif res then
  local h = res.json.headers or {}
  print("outer path " .. tostring(res.json.path) .. " x-outer " .. tostring(h["x-outer"]))
else print("outer error " .. tostring(err.kind)) end
]]

  for _, mode in ipairs({ "close", "ping", "request" }) do
    it("a log that uses the client itself (" .. mode .. ") neither crashes nor misdirects", function()
      local out = run_child(string.format(REENTRY, mode))
      assert.matches("exit=0\n$", out)
      local path = out:match("outer path (%S+)")
      if path then
        assert.equals("/v3/echo", path, out)
        assert.matches("x%-outer 1", out)
      else
        assert.truthy(out:match("outer raised") or out:match("outer error"), out)
      end
    end)
  end
end)
