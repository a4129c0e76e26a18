-- ducky.cli.output: what the ducky command writes. The answer on standard output
-- (checked: a full disk or a closed pipe is an error, not a silent success),
-- colour only on a terminal and never with NO_COLOR, and -v's lines on standard
-- error, the module's events in the module's own words (ducky.describe).
local fail = require("ducky.cli.fail")
local json = require("ducky.cli.json")

local M = {}

local COLOUR = { key = "1;34", string = "32", number = "36", literal = "35", status = "1", header = "36" }

-- Standard output, checked.
function M.emit(...)
  local ok, err = io.stdout:write(...)
  if not ok then fail.fail("output", "cannot write to standard output: %s", tostring(err)) end
end

local function succeeded(r) return r == true or r == 0 end -- os.execute on 5.2+ and on 5.1

-- Whether standard output wants colour: a terminal, and neither NO_COLOR nor TERM=dumb.
function M.want_colour()
  if (os.getenv("NO_COLOR") or "") ~= "" or os.getenv("TERM") == "dumb" then return false end
  return succeeded(os.execute("test -t 1")) -- the shell inherits our stdout
end

-- A painter: paint(kind, text) -> text in kind's colour when colour is on.
function M.painter(on)
  if not on then return function(_, text) return text end end
  return function(kind, text) return "\27[" .. COLOUR[kind] .. "m" .. text .. "\27[0m" end
end

-- The answer (a result, or an error with a status) on stdout: -i's status line and
-- sorted headers, then the body, JSON pretty-printed unless raw.
function M.answer(r, opts, paint)
  if opts.include and r.status then
    M.emit(paint("status", "HTTP " .. r.status), "\n")
    local names = {}
    for name in pairs(r.headers or {}) do names[#names + 1] = name end
    table.sort(names)
    for _, name in ipairs(names) do
      M.emit(paint("header", name), ": ", r.headers[name], "\n")
    end
    M.emit("\n")
  end
  local body = r.body or ""
  if body == "" then return end
  local text = not opts.raw and json.is_json(r.headers) and json.pretty(body, paint)
  M.emit(text or body)
end

-- -v: one line on stderr.
function M.verbose(fmt, ...) io.stderr:write("* ", string.format(fmt, ...), "\n") end

-- -v: the client's log function, each event a line as describe (ducky.describe) words it.
function M.logger(describe)
  return function(e) M.verbose("%s", describe(e)) end
end

-- Without -v: a store_error on stderr, once per reason. The token cache is
-- what spares each run an exchange; a cron job whose cache is off should say so.
function M.warner(describe)
  local said = {}
  return function(e)
    if e.event ~= "store_error" or said[tostring(e.reason)] then return end
    said[tostring(e.reason)] = true
    io.stderr:write("ducky: warning: ", (describe(e):gsub("%c", " ")), "\n")
  end
end

-- A clock for -v's timing: LuaSocket's when it is there, else whole seconds.
function M.clock()
  local got, socket = pcall(require, "socket")
  if got and type(socket) == "table" and socket.gettime then return socket.gettime, true end
  return os.time, false
end

-- The time since t0 by clock, as -v shows it ("9.7 ms", or "1 s" with whole seconds).
function M.elapsed(clock, fine, t0)
  local ms = (clock() - t0) * 1000
  if not fine then return string.format("%d s", math.floor(ms / 1000)) end
  return string.format("%.1f ms", ms)
end

return M
