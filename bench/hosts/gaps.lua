-- bench/hosts/run.sh's scenarios (run by spec/support/hosts/driver_<host>.lua,
-- DUCKY_HOSTS_MODULE=bench.hosts.gaps): the longest gap between two ticks of the
-- host's 10 ms timer during one call the stand-in answers in 0.5 s (GET
-- /v3/ping, delayed by a fault), $DUCKY_BENCH_RUNS times each, made
--   blocking  with a plain ducky.client (it holds the host until the answer)
--   adapter   with the host's ducky adapter
--   native*   with the host's own HTTP means (raw TCP on luv and Neovim, curl as a
--             Neovim job, lua-http in cqueues, copas' sockets, HAProxy's httpclient)
local ducky = require("ducky")

local S = { fn = {}, order = {}, callbacks = {}, no_outside = true }
local RUNS = tonumber(os.getenv("DUCKY_BENCH_RUNS")) or 5

local function measure(name, call)
  S.fn[name] = function(ctx)
    local port = ctx.http_port
    if call(ctx, nil) == "none" then return { skipped = true } end
    local gaps, took = {}, {}
    for i = 1, RUNS do
      ctx.control("fault", { path = "/v3/ping", delay = 0.5 })
      local stop = ctx.D.ticker()
      local t0 = ctx.D.now()
      local status = call(ctx, port)
      took[i] = ctx.D.now() - t0
      gaps[i] = stop()
      assert(tostring(status) == "200", name .. ": " .. tostring(status))
    end
    return { gaps = gaps, took = took }
  end
  S.order[#S.order + 1] = name
end

measure("blocking", function(ctx, port)
  if not port then return end
  local c = ducky.client(ctx.options("blocking"))
  local res, err = c:ping()
  c:close()
  return res and res.status or tostring(err)
end)

measure("adapter", function(ctx, port)
  if not port then return end
  local c = ctx.client("adapter")
  local res, err = c:ping()
  c:close()
  return res and res.status or tostring(err)
end)

local NATIVE = require("bench.hosts.native")
for _, name in ipairs { "native", "native2" } do
  measure(name, function(ctx, port)
    local f = NATIVE[ctx.D.host .. (name == "native2" and "2" or "")]
    if not f then return "none" end -- the host has no second means
    if not port then return end
    return f(ctx, port, "/v3/ping")
  end)
end

return S
