-- ducky.ngx's admission control in real nginx: calls past the pool's threads
-- wait in the event loop (never refused), queued request() calls go together
-- as one batch, and a slot always comes back.
local H = require("spec.helpers")
local N = require("spec.support.nginx.server")
local socket = require("socket")

local test = N.runnable() and it or pending
local get, get_json, answer = N.get, N.get_json, N.answer

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
      assert.matches("ducky config error: client:request: unknown option 'tiemout'", out, 1, true)
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
      local codes = N.parallel(nginx.url("/ducky/echo"), 300)
      assert.equals(300, N.count(codes, "200"))
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
end)
