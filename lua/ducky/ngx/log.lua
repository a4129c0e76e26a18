-- ducky.ngx.log: ducky's events in nginx's error_log (worker side). The pool's
-- clients collect their events during a call; they come back with its result
-- and are written here, one line each (ducky.describe's), at log_level.
-- Trouble that repeats (a token store that fails, a refresh that fails) is
-- written at warn (error for a config error), at most once per QUIET seconds
-- per worker and kind (the store's source, the error's kind), with the count
-- of lines left out.
local ngx = ngx
local ducky = require("ducky")
local has_errlog, errlog = pcall(require, "ngx.errlog") -- resty.core's; optional

local M = {}

M.LEVELS = { debug = "DEBUG", info = "INFO", notice = "NOTICE", warn = "WARN",
  error = "ERR", crit = "CRIT", alert = "ALERT", emerg = "EMERG" }

local QUIET = 60

-- Whether nginx would log ducky's events at all: the pool's clients get a log
-- function only then (it costs a Lua call per API call).
function M.wanted(api)
  if not api.log_level then return false end
  local got, level = false, nil
  if has_errlog then got, level = pcall(errlog.get_sys_filter_level) end
  return not got or type(level) ~= "number" or api.log_level <= level
end

-- Writes line at level unless a line about `what` was written less than
-- QUIET seconds ago (then counts it, for the next line to say).
function M.once(api, what, level, line)
  local said = api.said or {}
  api.said = said
  local last, now = said[what], ngx.now()
  if last and now - last.at < QUIET then
    last.skipped = last.skipped + 1
    return false
  end
  if last and last.skipped > 0 then
    line = ("%s (and %d more in the last %d s)"):format(line, last.skipped, math.floor(now - last.at))
  end
  said[what] = { at = now, skipped = 0 }
  ngx.log(level, "ducky: ", line)
  return true
end

function M.events(api, events)
  for _, ev in ipairs(events) do
    if ev.event == "store_error" then
      M.once(api, "store:" .. tostring(ev.source), ngx.WARN, ducky.describe(ev))
    elseif api.log_level then
      ngx.log(api.log_level, "ducky: ", ducky.describe(ev))
    end
  end
end

function M.refresh_failed(api, err)
  local level = (err and err.kind == "config") and ngx.ERR or ngx.WARN
  M.once(api, "refresh:" .. tostring(err and err.kind), level,
    "background refresh failed: " .. tostring(err and err.message))
end

return M
