-- The ways of a luv loop for spec/hosts_spec.lua's scenarios
-- (spec/support/hosts/scenarios.lua), added to driver D: D.uv is the luv module,
-- D.later(fn) how a coroutine is resumed from a loop callback (Neovim: through
-- vim.schedule; default: at once), D.loop(finished) runs the loop (default:
-- uv.run()). The scenarios run in coroutines (ducky.luv's coroutine style), the
-- callbacks scenario with trailing callbacks; the ticker is a repeating 10 ms timer.
local W = require("spec.support.hosts.ways")

local function resume(co)
  local ok, err = coroutine.resume(co)
  if not ok then error(err, 0) end
end

return function(D)
  local uv = D.uv
  local later = D.later or function(fn) fn() end

  function D.now() return uv.hrtime() / 1e9 end

  function D.spawn(fn) coroutine.wrap(fn)() end

  function D.wait_until(cond, seconds)
    if cond() then return true end
    local co, deadline = coroutine.running(), D.now() + seconds
    local t = uv.new_timer()
    t:start(5, 5, function()
      if cond() or D.now() > deadline then
        t:stop()
        t:close()
        later(function() resume(co) end)
      end
    end)
    coroutine.yield()
    return cond()
  end

  function D.ticker()
    local m = W.meter(D.now)
    local t = uv.new_timer()
    t:start(10, 10, m.tick)
    return function()
      t:stop()
      t:close()
      return m.result()
    end
  end

  function D.run(main)
    local finished = false
    coroutine.wrap(function()
      main()
      finished = true
    end)()
    if D.loop then return D.loop(function() return finished end) end
    uv.run()
    assert(finished, "the loop ended before the scenarios did")
  end

  return D
end
