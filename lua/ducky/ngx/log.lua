-- ducky.ngx.log: ducky's events in nginx's error_log (worker side). The pool's
-- clients collect their events during a call; they come back with its result
-- and are written here, one line each (ducky.describe's), at log_level.
local ngx = ngx
local ducky = require("ducky")
local has_errlog, errlog = pcall(require, "ngx.errlog") -- resty.core's; optional

local M = {}

M.LEVELS = { debug = "DEBUG", info = "INFO", notice = "NOTICE", warn = "WARN",
  error = "ERR", crit = "CRIT", alert = "ALERT", emerg = "EMERG" }

-- Whether nginx would log ducky's events at all: the pool's clients get a log
-- function only then (it costs a Lua call per API call).
function M.wanted(api)
  if not api.log_level then return false end
  local got, level = false, nil
  if has_errlog then got, level = pcall(errlog.get_sys_filter_level) end
  return not got or type(level) ~= "number" or api.log_level <= level
end

function M.events(api, events)
  if not events or not api.log_level then return end
  for _, ev in ipairs(events) do ngx.log(api.log_level, "ducky: ", ducky.describe(ev)) end
end

return M
