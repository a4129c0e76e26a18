-- ducky.ngx.steady: which request() calls may share a batch (worker side).
-- A batch answers when its slowest call ends, so only calls to one path go
-- together, and only to a path whose round trips to the pool keep close to
-- their mean: a path whose answers vary widely (one call in ten slow, say)
-- sends each call alone, so that no caller waits for another's slow call.
-- Kept per configuration and path: the mean round trip (a moving average)
-- and the slowest lately (decaying, so that a path that settles is batched
-- again).
local M = {}

local GAIN = 1 / 8 -- of the mean, per round trip
local FADE = 0.98 -- of the slowest, per round trip: half gone after 35
-- Steady: the slowest within twice the mean and this (nginx's clock ticks in
-- milliseconds, and a busy machine adds a few).
local SLACK = 0.010
local MAX_PATHS = 256 -- paths followed per configuration; past it, they start over

-- Records a round trip of `seconds` for calls to path (a batch's: its slowest).
function M.record(api, path, seconds)
  local paths = api.spread
  if not paths or api.spread_n >= MAX_PATHS then
    paths = {}
    api.spread, api.spread_n = paths, 0
  end
  local s = paths[path]
  if not s then
    paths[path], api.spread_n = { mean = seconds, peak = seconds }, api.spread_n + 1
    return
  end
  s.mean = s.mean + GAIN * (seconds - s.mean)
  s.peak = math.max(seconds, s.peak * FADE)
end

-- Whether calls to path may go in a batch: steady so far, or not seen yet.
function M.steady(api, path)
  local paths = api.spread
  local s = paths and paths[path]
  return not s or s.peak <= 2 * s.mean + SLACK
end

return M
