-- nginx reloaded (SIGHUP) and its workers replaced while ducky.ngx calls are
-- in flight: every request still answered, the token kept (the dict outlives
-- the reload), and the old workers gone within their calls' time.
local H = require("spec.helpers")
local N = require("spec.support.nginx.server")
local socket = require("socket")

local test = N.runnable() and it or pending

-- the pids of nginx's workers (children of the master)
local function workers(master)
  local out = N.run(("pgrep -P %d"):format(master))
  local list = {}
  for pid in out:gmatch("%d+") do list[#list + 1] = tonumber(pid) end
  table.sort(list)
  return list
end

describe("nginx reloaded under load", function()
  local id
  N.each(function(i) id = i end)

  test("answers every request, keeps the token and lets the old workers go", function()
    local nginx = N.start(id, { workers = 2 })
    assert.equals(200, select(2, N.get(nginx.url("/api/echo"))))
    local before = workers(nginx.pid)
    H.fault{ path = "/v3/echo", delay = 0.2, times = 100000 }
    local load = N.spawn(("seq 400 | %sxargs -P 16 -I{} curl -s -o /dev/null -o /dev/null"
      .. " -w '%%{http_code}\\n' %q %q")
      :format(H.CLEAN_ENV, nginx.url("/ducky/echo"), nginx.url("/api/echo")))
    for _ = 1, 4 do
      socket.sleep(0.4)
      os.execute("kill -HUP " .. nginx.pid)
    end
    local out = load.wait(60)
    local codes = {}
    for code in out:gmatch("%d%d%d") do codes[code] = (codes[code] or 0) + 1 end
    assert.same({ ["200"] = 800 }, codes)
    assert.equals(1, H.exchanges(id))
    N.wait("the old workers to exit", 5, function()
      for _, pid in ipairs(before) do
        if H.read_file("/proc/" .. pid .. "/stat") then return false end
      end
      return true
    end)
    assert.not_matches("%[alert%]", nginx.log())
    assert.not_matches("%[crit%]", nginx.log())
    assert.not_matches("%[error%]", nginx.log())
  end)
end)

describe("nginx's worker killed in the middle of the token exchange", function()
  local id
  N.each(function(i) id = i end)

  -- nginx with one worker killed while its first exchange (slow) is under way,
  -- and a request sent meanwhile; returns nginx, once another worker runs, and
  -- that request.
  local function killed()
    H.fault{ path = "/oauth/token", client_id = id, delay = 3 } -- the first exchange is slow
    local nginx = N.start(id, { workers = 1 })
    local first = N.spawn(("%scurl -s -o /dev/null -w '%%{http_code}' %q")
      :format(H.CLEAN_ENV, nginx.url("/ducky/echo")))
    N.wait("the exchange to start", 5, function()
      return (H.stats().requests_by_path["/oauth/token"] or 0) > 0
    end)
    local old = workers(nginx.pid)
    os.execute("kill -9 " .. table.concat(old, " "))
    N.wait("a new worker", 5, function()
      local now = workers(nginx.pid)
      return #now > 0 and now[1] ~= old[1]
    end)
    return nginx, first
  end

  -- Both hold the dead worker's locks (the store's, the background refresh's)
  -- for no longer than it takes to see that their holder is gone: without it, a
  -- request waited half its timeout (5 s), the refresh the lock's life (15 s).
  test("a request in the worker nginx starts in its place gets a token at once", function()
    local nginx, first = killed()
    local t0 = socket.gettime()
    local body, code = N.get(nginx.url("/ducky/echo"))
    local took = socket.gettime() - t0
    assert.equals(200, code, body)
    assert.is_true(took < 2.5, ("the first request after the kill took %.2f s"):format(took))
    -- the request sent at the start: lost with the killed worker, or served by the new one
    assert.matches("^[02]00$", first.wait(10))
    assert.is_true(H.exchanges(id) <= 2) -- the dead worker's, and one more
  end)

  test("the new worker's background refresh fetches the token at once", function()
    local nginx, first = killed()
    local t0 = socket.gettime()
    local s = N.stats_when(nginx.url("/spec/stats"), function(t) return t.background_refreshes >= 1 end)
    local took = socket.gettime() - t0
    assert.is_true(s.background_refreshes >= 1 and took < 2.5,
      ("background refreshes %d after %.2f s"):format(s.background_refreshes, took))
    first.wait(10)
  end)
end)
