-- ducky.ngx's admission control in real nginx: calls past the pool's threads
-- wait in the event loop (never refused), queued request() calls go together
-- as one batch (a steady path's), and a thread always comes back.
local socket = require("socket")
local H = require("spec.helpers")
local N = require("spec.support.nginx.server")

local test = N.runnable() and it or pending
local get, get_json, answer = N.get, N.get_json, N.answer

describe("nginx with ducky.ngx", function()
  local nginx, id
  N.each(function(i) id = i end)

  describe("admission control", function()
    -- Calls i = from..to to the small pool (2 threads) at once, in the background.
    local function calls(from, to, curl_opts)
      return N.spawn(("seq %d %d | %sxargs -P %d -I{} curl -s %s %s"):format(from, to, H.CLEAN_ENV,
        to - from + 1, curl_opts or "", H.quote(nginx.url("/spec/small?i={}"))))
    end

    -- n calls to the small pool: the first two hold both threads (the API
    -- answers them after 3 s), the others arrive once they do and wait in
    -- the queue. Returns a function(seconds) giving their output once all
    -- ended (each call's i, a line each).
    -- Starts spawn(1) and spawn(2) one after the other, each once the one
    -- before is at the API (two calls made at once may share one thread, a
    -- batch): the small pool's two threads are then both busy. Returns a
    -- function(seconds) giving their output once both ended.
    local function both_threads(spawn)
      local bg = {}
      for i = 1, 2 do
        bg[i] = spawn(i)
        N.wait(("call %d at the API"):format(i), 5, function()
          return H.stats().requests_by_path["/v3/echo"] == i
        end)
      end
      return function(seconds) return bg[1].wait(seconds) .. bg[2].wait(seconds) end
    end

    local function fill_queue(n)
      H.fault{ path = "/v3/echo", delay = 3, times = 2 }
      local first = both_threads(function(i) return calls(i, i) end)
      local rest = calls(3, n)
      N.wait(n - 2 .. " queued calls", 5, function()
        return get_json(nginx.url("/spec/stats?api=SMALL")).queued >= n - 2
      end)
      return function(seconds) return first(seconds) .. rest.wait(seconds) end
    end

    test("queues calls past the pool's threads instead of refusing them", function()
      nginx = N.start(id, { workers = 1 })
      local out = fill_queue(12)(10)
      local got = {}
      for line in out:gmatch("[^\n]+") do got[#got + 1] = tonumber(line) or line end
      table.sort(got, function(a, b) return tostring(a) < tostring(b) end)
      assert.same({ 1, 10, 11, 12, 2, 3, 4, 5, 6, 7, 8, 9 }, got) -- each its own answer
      local s = get_json(nginx.url("/spec/stats?api=SMALL"))
      assert.is_true(s.queued >= 10, "queued: " .. s.queued)
      assert.is_true(s.batched >= 2, "batched: " .. s.batched) -- queued calls went together
      assert.equals(0, s.queue_timeouts)
    end)

    local function each_answered(out, n)
      for i = 1, n do assert.matches("\n" .. i .. "\n", "\n" .. out .. "\n") end
    end

    test("a call the pool refuses (an unknown option) fails alone, not its batch", function()
      nginx = N.start(id, { workers = 1 })
      local queue = fill_queue(8)
      assert.equals("ducky config error: client:request: unknown option 'tiemout'\n",
        (get(nginx.url("/spec/small?bad=name"))))
      each_answered(queue(10), 8)
    end)

    test("refuses bad arguments where the call is made: its batch-mates never wait on it", function()
      nginx = N.start(id, { workers = 1 })
      local queue = fill_queue(8)
      assert.equals("raised: ducky.ngx: api:request: opts must be a table, not string\n",
        (get(nginx.url("/spec/small?bad=string"))))
      assert.equals("raised: ducky.ngx: api:request: option 'timeout' must be a positive number of seconds,"
        .. " not -1\n", (get(nginx.url("/spec/small?t=-1"))))
      local out = queue(10)
      each_answered(out, 8)
      assert.is_nil(out:find("timed out", 1, true), out)
    end)

    test("times out a call that waited its whole timeout in the queue, and says so", function()
      nginx = N.start(id, { workers = 1, env = { DUCKY_SPEC_TIMEOUT = "1" } })
      H.fault{ path = "/v3/echo", delay = 3, times = 2 } -- both threads busy for 3 s (timeout 5 s)
      local bg = both_threads(function(i)
        return N.spawn(("%scurl -s %q"):format(H.CLEAN_ENV, nginx.url("/spec/small?t=5&i=" .. i)))
      end)
      assert.equals("ducky timeout error: api:request() timed out after 1 s waiting in the queue for"
        .. " a thread of pool 'small' (at most 2 calls in flight per worker: the threads option)\n",
        (get(nginx.url("/spec/small"))))
      -- its last wait under a millisecond (the semaphore's unit): over, not a wait of 0 ms
      -- returning at once with ngx.now() standing still, round and round (seen: the worker hung)
      assert.equals("ducky timeout error: api:request() timed out after 1.0005 s waiting in the queue"
        .. " for a thread of pool 'small' (at most 2 calls in flight per worker: the threads option)\n",
        (get(nginx.url("/spec/small?t=1.0005"))))
      local out = bg(10)
      assert.matches("\n1\n", "\n" .. out .. "\n") -- the two that held the threads answered
      assert.matches("\n2\n", "\n" .. out .. "\n")
      assert.equals(2, get_json(nginx.url("/spec/stats?api=SMALL")).queue_timeouts)
    end)

    test("holds 300 connections at once with the example's configuration", function()
      nginx = N.start(id, { workers = 1 })
      H.fault{ path = "/v3/echo", delay = 0.2, times = 300 }
      local codes = N.parallel(nginx.url("/ducky/echo"), 300)
      assert.equals(300, N.count(codes, "200"))
    end)

    test("clients that hang up leave the queue at once: their calls never take a slot", function()
      nginx = N.start(id, { workers = 1 }) -- lua_check_client_abort on; pool 'small': 2 threads
      H.fault{ path = "/v3/echo", delay = 2, times = 2 } -- the first two hold the threads 2 s
      local abortable = function(from, to) -- all go away after 0.3 s
        return ("seq %d %d | %sxargs -P %d -I{} curl -s --max-time 0.3 %s"):format(from, to,
          H.CLEAN_ENV, to - from + 1, H.quote(nginx.url("/spec/abortable?i={}")))
      end
      local first = both_threads(function(i) return N.spawn(abortable(i, i)) end)
      N.run(abortable(3, 30))
      first(5)
      -- a live call, 4 s to live: served once the two calls in the threads end
      assert.equals("live\n", (get(nginx.url("/spec/small?i=live&t=4"))))
      assert.equals(3, H.stats().requests_by_path["/v3/echo"]) -- the 28 that queued never ran
      assert.is_nil(nginx.log():find("outlived their requests", 1, true))
    end)

    test("a call whose request was killed holds its thread only until the call ends", function()
      nginx = N.start(id, { workers = 1 }) -- pool 'abort': 1 thread, timeout 1 s; its own on_abort
      H.fault{ path = "/v3/echo", delay = 1.5, times = 1 } -- the call ends by its timeout, 1 s
      local t0 = socket.gettime()
      N.run(("%scurl -s --max-time 0.3 %q"):format(H.CLEAN_ENV, nginx.url("/spec/abort"))) -- goes away
      N.wait("the thread back", 8, function() return get(nginx.url("/spec/abort")) == "200\n" end)
      local took = socket.gettime() - t0
      assert.is_true(took < 2.5, took) -- the call's 1 s, not its deadline and a grace (3 s)
      assert.is_nil(nginx.log():find("outlived their requests", 1, true))
    end)

    test("calls made at once go to the pool as one batch, even with threads free", function()
      nginx = N.start(id, { workers = 1 }) -- 32 threads
      assert.same({ answered = 6, batches = 1, batched = 6, streamed = 0 },
        get_json(nginx.url("/spec/together?n=6&path=/echo/steady")))
    end)

    test("calls to a path whose answers vary widely go alone while threads are free", function()
      nginx = N.start(id, { workers = 1 })
      get(nginx.url("/spec/together?n=1&path=/echo/varied")) -- answered at once
      H.fault{ path = "/v3/echo/varied", delay = 0.5, times = 1 }
      get(nginx.url("/spec/together?n=1&path=/echo/varied")) -- after 0.5 s: the path varies
      assert.same({ answered = 6, batches = 0, batched = 0, streamed = 0 },
        get_json(nginx.url("/spec/together?n=6&path=/echo/varied")))
      -- another path still goes in a batch
      assert.same({ answered = 6, batches = 1, batched = 6, streamed = 0 },
        get_json(nginx.url("/spec/together?n=6&path=/echo/steady")))
    end)

    -- Makes the small pool's path (/echo) one that varies: its calls go in streams.
    local function varying()
      assert.equals("a\n", (get(nginx.url("/spec/small?i=a"))))
      H.fault{ path = "/v3/echo", delay = 0.5, times = 1 }
      assert.equals("b\n", (get(nginx.url("/spec/small?i=b"))))
    end

    test("slow calls to a varying path hold no thread from the calls behind them", function()
      nginx = N.start(id, { workers = 1 }) -- pool 'small': 2 threads
      varying()
      local before = H.stats().requests_by_path["/v3/echo"]
      H.fault{ path = "/v3/echo", delay = 3, times = 2 } -- two calls of 3 s: as many as threads
      local slow = H.tmpdir()
      os.execute(("unset LD_PRELOAD; for i in 1 2; do %scurl -s %q >>%s/slow.txt & done")
        :format(H.CLEAN_ENV, nginx.url("/spec/small?i=slow"), slow))
      N.wait("both slow calls at the API", 5, function()
        return H.stats().requests_by_path["/v3/echo"] == before + 2
      end)
      local out = N.run(("seq 3 10 | %sxargs -P 8 -I{} curl -s %s"):format(H.CLEAN_ENV,
        H.quote(nginx.url("/spec/small?i={}"))))
      for i = 3, 10 do assert.matches("\n" .. i .. "\n", "\n" .. out .. "\n") end
      assert.equals("", H.read_file(slow .. "/slow.txt") or "") -- all 8 answered before them
      N.wait("the slow answers", 10, function()
        return H.read_file(slow .. "/slow.txt") == "slow\nslow\n"
      end)
      local s = get_json(nginx.url("/spec/stats?api=SMALL"))
      assert.is_true(s.streamed >= 8, "streamed: " .. s.streamed) -- the second slow call, or its followers
      assert.equals(0, s.queue_timeouts)
      assert.is_nil(nginx.log():find("another Lua VM", 1, true))
      os.execute("rm -rf " .. slow)
    end)

    test("a stream's calls end each its own way: an answer, a refusal, a timeout", function()
      nginx = N.start(id, { workers = 1 }) -- pool 'small': 2 threads
      varying()
      local before = H.stats().requests_by_path["/v3/echo"]
      H.fault{ path = "/v3/echo", delay = 3, times = 2 }
      local function spawn(query)
        return N.spawn(("%scurl -s %s"):format(H.CLEAN_ENV, H.quote(nginx.url("/spec/small?" .. query))))
      end
      local hold = spawn("i=hold") -- alone in a thread: the other one is free
      N.wait("the first call at the API", 5, function()
        return H.stats().requests_by_path["/v3/echo"] == before + 1
      end)
      local late = spawn("i=late&t=1") -- every thread taken: from here, calls go in a stream
      N.wait("the late call at the API", 5, function()
        return H.stats().requests_by_path["/v3/echo"] == before + 2
      end)
      assert.equals("ducky config error: client:request: unknown option 'tiemout'\n",
        (get(nginx.url("/spec/small?bad=name"))))
      assert.equals("c\n", (get(nginx.url("/spec/small?i=c"))))
      assert.matches("^ducky timeout error: ", late.wait(10))
      assert.equals("d\n", (get(nginx.url("/spec/small?i=d")))) -- the stream goes on
      assert.equals("hold\n", hold.wait(10))
      local streamed = get_json(nginx.url("/spec/stats?api=SMALL")).streamed
      assert.is_true(streamed >= 4, "streamed: " .. streamed) -- late, the refused one, c and d
    end)

    test("with no running timer left for a runner, calls run where they are made, and say why", function()
      -- one running timer: the background refresh's, when it first asks the pool for a token
      nginx = N.start(id, { workers = 1, edit = function(conf)
        return N.replace(conf, "lua_shared_dict ducky_tokens 1m;",
          "lua_shared_dict ducky_tokens 1m;\n    lua_max_running_timers 1;")
      end })
      N.wait("the runner's timer found missing", 5, function()
        return nginx.log():find("ducky: pool 'ducky': a runner's timer did not run: give"
          .. " lua_max_running_timers room for 32 more (the pool's threads)", 1, true)
      end)
      local out = N.run(("seq 3 | %sxargs -P 3 -I{} curl -s %s"):format(H.CLEAN_ENV,
        H.quote(nginx.url("/spec/echo"))))
      assert.equals((id .. "\n"):rep(3), out)
    end)

    test("names a thread pool nginx does not have", function()
      nginx = N.start(id, { workers = 1 })
      local r = get_json(nginx.url("/spec/nopool"))
      assert.equals("config", r.kind)
      assert.equals("ducky.ngx: thread pool 'nope': thread pool nope not found (add `thread_pool nope"
        .. " threads=10;` to nginx.conf's main context, outside http {})", r.message)
    end)

    test("keeps the event loop serving while 20 calls wait on a slow API", function()
      nginx = N.start(id, { workers = 1 }) -- one worker: the slow calls and the plain route share it
      assert(get(nginx.url("/health"))) -- token fetched first
      H.fault{ path = "/v3/echo", delay = 3, times = 20 }
      local slow = H.tmpdir()
      os.execute(("unset LD_PRELOAD; for i in $(seq 20); do %scurl -s -o /dev/null -w '%%{http_code}\\n'"
        .. " %q >>%s/slow.txt & done"):format(H.CLEAN_ENV, nginx.url("/ducky/echo"), slow))
      N.wait("the 20 waiting on the API", 5, function()
        return H.stats().requests_by_path["/v3/echo"] == 20
      end)
      for _ = 1, 5 do -- answered while none of the slow calls has
        assert.same({ "plain\n", 200 }, answer(nginx.url("/plain")))
        assert.equals("", H.read_file(slow .. "/slow.txt") or "")
      end
      N.wait("the 20 answers", 10, function()
        return select(2, (H.read_file(slow .. "/slow.txt") or ""):gsub("\n", "")) == 20
      end)
      assert.equals(("200\n"):rep(20), H.read_file(slow .. "/slow.txt"))
      os.execute("rm -rf " .. slow)
    end)
  end)
end)
