-- ducky on a libuv loop (luv): a trailing callback, or a coroutine that yields
-- until the answer is there; the loop runs timers and I/O meanwhile.
--   lua5.4 examples/hosts/luv.lua        (Debian: lua-luv; any Lua 5.1-5.4)
-- Every setting comes from DUCKY_* environment variables, as for examples/ping.lua.
local uv = require("luv")
local ducky_luv = require("ducky.luv")

local client = ducky_luv.client { ca_file = os.getenv("DUCKY_CA_FILE") }

-- a timer ticks through it all, until the three pieces of work below are done
local ticks, left, timer = 0, 3, uv.new_timer()
timer:start(10, 10, function() ticks = ticks + 1 end)
local function finished()
  left = left - 1
  if left == 0 then timer:close() end
end

-- callbacks: each call returns at once; its callback runs from the loop
client:ping_protected(function(res, err)
  print("ping_protected: " .. (res and res.status .. " " .. res.body or tostring(err)))
  finished()
end)
client:token(function(token, seconds_left) -- or nil, err
  print(token and ("token:          valid for %.0f more seconds"):format(seconds_left)
    or tostring(seconds_left))
  finished()
end)

-- a coroutine: each call yields, and the coroutine goes on when the answer is in
coroutine.wrap(function()
  -- the stand-in's echo route; against the real API use its footprint paths
  local res, err = client:request("POST", "/echo", { json = { site = "berlin", year = 2026 } })
  print("request:        " .. (res and res.status .. ", echoed " .. res.json.body or tostring(err)))
  local results = client:batch { { "GET", "/echo", { query = { site = "lyon" } } }, { "GET", "/ping" } }
  for i, r in ipairs(results) do
    print(("batch %d:        %s"):format(i, r.res and r.res.status or tostring(r.err)))
  end
  finished()
end)()

uv.run() -- returns once nothing is left to wait for: an idle client holds no handle
print(("the timer ticked %d times meanwhile"):format(ticks))
client:close()
