-- The token in real nginx: authorization() from the shared dict in the event
-- loop, one exchange for every worker, the background refresh.
local H = require("spec.helpers")
local N = require("spec.support.nginx.server")

local test = N.runnable() and it or pending
local get = N.get

describe("nginx with ducky.ngx", function()
  local nginx, id
  N.each(function(i) id = i end)

  describe("authorization()", function()
    test("answers from the shared dict in the event loop: one pool call per worker at most", function()
      nginx = N.start(id, { workers = 2 })
      assert.equals(200, select(2, get(nginx.url("/health"))))
      local first = get(nginx.url("/spec/authorization"))
      for _ = 1, 50 do
        assert.equals(first, get(nginx.url("/spec/authorization")))
      end
      local s = N.stats_when(nginx.url("/spec/stats"), function(t)
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
      local all = N.stats_when(nginx.url("/spec/stats"), function(t) return t.all.requests == 800 end).all
      assert.equals(800, all.requests)
      assert.equals(1, all.token_fetches)
    end)

    test("is refreshed in the background before its margin: requests never miss", function()
      local id2 = H.new_id("nginx-short")
      H.config(id2, 10) -- 10 s tokens; refresh_margin 2, the timer refreshes at 5 s left
      nginx = N.start(id, { env = { DUCKY_SPEC_SHORT = id2 } })
      N.wait("the timer's first exchange, at start", 5, function() return H.exchanges(id2) == 1 end)
      -- and its token in the dict: the stand-in counts an exchange before it answers, so a
      -- request right after the count may still miss (seen in .ci/run's LuaJIT round)
      N.stats_when(nginx.url("/spec/stats?api=SHORT"), function(t) return t.all.background_refreshes >= 1 end)
      local seen = {}
      N.wait("the background refresh", 12, function() -- the token passes 5 s left
        local body = get(nginx.url("/spec/authorization?api=SHORT"))
        assert.matches("^Bearer ", body)
        seen[body] = true
        return H.exchanges(id2) == 2
      end)
      for _ = 1, 20 do assert.matches("^Bearer ", (get(nginx.url("/spec/authorization?api=SHORT")))) end
      local s = N.stats_when(nginx.url("/spec/stats?api=SHORT"), function(t)
        return t.all.background_refreshes == 2
      end).all
      assert.equals(2, H.exchanges(id2))
      assert.equals(0, s.authorization_misses)
      assert.equals(2, s.background_refreshes)
      assert.is_table(next(seen) and seen)
      assert.matches("ducky: token from exchange", nginx.log())
    end)
  end)
end)
