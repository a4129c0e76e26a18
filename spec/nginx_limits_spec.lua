-- ducky.ngx at the edges of what nginx lets cross into its thread pool and
-- out of it, and of a request's life (found by review): JSON nested about as
-- deep as nginx copies (100 tables), a request whose client goes away with
-- several light threads' calls queued, and calls other than request() that
-- wait in the queue.
local H = require("spec.helpers")
local N = require("spec.support.nginx.server")
local cjson = require("cjson")
local socket = require("socket")

local test = N.runnable() and it or pending

local LOCATIONS = [[
location = /limits/one {
    content_by_lua_block {
        local res, err = API:request("GET", "/echo")
        if not res then return ngx.say("error: ", tostring(err)) end
        local d, v = 0, res.json
        while type(v) == "table" do d, v = d + 1, v[1] end
        ngx.say("ok ", res.status, " depth ", d)
    }
}
location = /limits/together {
    content_by_lua_block {
        local n, deep = tonumber(ngx.var.arg_n), tonumber(ngx.var.arg_deep)
        local threads, out = {}, {}
        for i = 1, n do
            local opts = { query = { i = tostring(i) } }
            if deep and i == 1 then
                local v = "x"
                for _ = 1, deep do v = { v } end
                opts.json = v
            end
            threads[i] = ngx.thread.spawn(function()
                local ok, res, err = pcall(API.request, API, deep and "POST" or "GET", "/echo", opts)
                if not ok then return "raised: " .. tostring(res) end
                if not res then return tostring(err) end
                local d, v = 0, res.json
                while type(v) == "table" and v[1] ~= nil do d, v = d + 1, v[1] end
                return "ok " .. res.status .. (d > 0 and (" depth " .. d) or "")
            end)
        end
        for i = 1, n do out[i] = select(2, ngx.thread.wait(threads[i])) end
        ngx.say(require("cjson").encode(out))
    }
}
location = /limits/abort {
    lua_check_client_abort on;
    content_by_lua_block {
        local threads = {}
        for i = 1, 4 do
            threads[i] = ngx.thread.spawn(function()
                return SPEC.SMALL:request("GET", "/echo", { query = { i = "gone" .. i } })
            end)
        end
        for i = 1, 4 do ngx.thread.wait(threads[i]) end
        ngx.say("done")
    }
}
location = /limits/ping {
    content_by_lua_block {
        local t0 = ngx.now()
        local res, err = SPEC.SMALL:ping_protected()
        ngx.update_time()
        ngx.say(res and res.status or err.kind, " ", string.format("%.2f", ngx.now() - t0))
    }
}
]]

local function edit(conf)
  return N.replace(conf, "location = /plain {", LOCATIONS .. "\n        location = /plain {")
end

local function nested(depth) return string.rep("[", depth) .. "1" .. string.rep("]", depth) end

describe("ducky.ngx at nginx's limits", function()
  local nginx, id
  N.each(function(i) id = i end)

  -- nginx copies a pool VM's answer at most 100 tables deep: deeper JSON
  -- failed the call after the API had answered, and in a batch all its mates
  test("an answer's JSON nested deeper than nginx copies: res.json whole, alone and in a batch", function()
    nginx = N.start(id, { workers = 1, edit = edit })
    assert.matches("^ok 200", (N.get(nginx.url("/limits/one"))))
    for _, depth in ipairs { 97, 99, 150 } do
      H.fault{ path = "/v3/echo", body = nested(depth), times = 1 }
      assert.equals(("ok 200 depth %d\n"):format(depth), (N.get(nginx.url("/limits/one"))))
    end
    H.fault{ path = "/v3/echo", body = nested(97), times = 1 }
    local out = cjson.decode((N.get(nginx.url("/limits/together?n=6"))))
    local deep = 0
    for i = 1, 6 do
      assert.matches("^ok 200", out[i])
      if out[i] == "ok 200 depth 97" then deep = deep + 1 end
    end
    assert.equals(1, deep)
  end)

  test("a request body nested too deep raises where it is made; its batch-mates go", function()
    nginx = N.start(id, { workers = 1, edit = edit })
    assert.matches("^ok 200", (N.get(nginx.url("/limits/one"))))
    local out = cjson.decode((N.get(nginx.url("/limits/together?n=6&deep=120"))))
    assert.matches("^raised: .*nests tables deeper than 90", out[1])
    for i = 2, 6 do assert.equals("ok 200", out[i]) end
  end)

  -- README: "A call still in the queue leaves it at once" when its client goes
  -- away; the handler knew only the request's latest call
  test("a client gone with four light threads' calls queued: none of them runs", function()
    nginx = N.start(id, { workers = 1, edit = edit })
    assert.equals("a\n", (N.get(nginx.url("/spec/small?i=a"))))
    H.fault{ path = "/v3/echo", delay = 1.5, times = 2 } -- both threads of the pool busy
    local hold = N.spawn(("seq 2 | %sxargs -P 2 -I{} curl -s %q")
      :format(H.CLEAN_ENV, nginx.url("/spec/small?i=hold")))
    N.wait("both threads busy", 5, function() return H.stats().requests_by_path["/v3/echo"] >= 3 end)
    N.run(("%scurl -s --max-time 0.3 %q"):format(H.CLEAN_ENV, nginx.url("/limits/abort")))
    assert.equals("hold\nhold\n", hold.wait(10))
    socket.sleep(0.5)
    assert.equals(3, H.stats().requests_by_path["/v3/echo"]) -- the first, and the two held
  end)

  -- ping() and ping_protected() ran with the whole timeout after their wait in
  -- the queue, and a late one was said to be "its batch"
  test("ping_protected() after a wait in the queue ends within its timeout", function()
    nginx = N.start(id, { workers = 1, edit = edit, env = { DUCKY_SPEC_TIMEOUT = "3" } })
    assert.equals("a\n", (N.get(nginx.url("/spec/small?i=a"))))
    H.fault{ path = "/v3/echo", delay = 1.5, times = 2 } -- both threads busy 1.5 s
    H.fault{ path = "/v3/ping/protected", delay = 2.5, times = 1 }
    local hold = N.spawn(("seq 2 | %sxargs -P 2 -I{} curl -s %q")
      :format(H.CLEAN_ENV, nginx.url("/spec/small?i=hold")))
    N.wait("both threads busy", 5, function() return H.stats().requests_by_path["/v3/echo"] >= 3 end)
    local out = N.get(nginx.url("/limits/ping"))
    local kind, took = out:match("^(%S+) ([%d.]+)")
    assert.equals("timeout", kind, out)
    assert.is_true(tonumber(took) < 3.5, out) -- 3 s, not 1.5 s queued + 3 s
    hold.wait(10)
  end)
end)
