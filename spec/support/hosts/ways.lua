-- What the drivers of spec/hosts_spec.lua's hosts (spec/support/hosts/driver_*.lua)
-- share: a meter of the gaps between a host's ticks, and the ways of a host
-- whose threads can sleep (cqueues, HAProxy).
local W = {}

-- A meter on clock now(): tick() at each of the host's ticks; result() -> the
-- longest gap between ticks so far (the time since the last one included), and
-- how many ticks there were.
function W.meter(now)
  local gap, ticks, last = 0, 0, now()
  local m = {}
  function m.tick()
    local t = now()
    gap, ticks, last = math.max(gap, t - last), ticks + 1, t
  end
  function m.result() return math.max(gap, now() - last), ticks end
  return m
end

-- Driver D of a host whose threads sleep, given D.now(), D.spawn(fn) and
-- D.sleep(seconds): D.wait_until polls the condition every 5 ms, and the
-- ticker is a thread sleeping 10 ms at a time.
function W.sleeping(D)
  function D.wait_until(cond, seconds)
    local deadline = D.now() + seconds
    while not cond() do
      if D.now() > deadline then return false end
      D.sleep(0.005)
    end
    return true
  end

  function D.ticker()
    local stop, m = false, W.meter(D.now)
    D.spawn(function()
      while not stop do
        D.sleep(0.01)
        m.tick()
      end
    end)
    return function()
      stop = true
      return m.result()
    end
  end
  return D
end

return W
