-- Reads busted's JSON output, prints each failure and the line "N passed, N failed";
-- appends the counts to file arg[2] if given.
--   lua5.4 tools/summary.lua --total FILE   sums the counts appended to FILE.
local cjson = require("cjson")

if arg[1] == "--total" then
  local p, f, s = 0, 0, 0
  for line in io.lines(arg[2]) do
    local a, b, c = line:match("^(%d+) (%d+) (%d+)$")
    p, f, s = p + a, f + b, s + c
  end
  print(("%d passed, %d failed, %d skipped"):format(p, f, s))
  os.exit(f == 0 and p > 0 and 0 or 1)
end
local f = assert(io.open(arg[1], "rb"))
local text = f:read("*a")
f:close()
local ok, r = pcall(cjson.decode, text:match("{.*}") or "")
if not ok or type(r) ~= "table" then
  io.stderr:write("busted printed no JSON report:\n", text, "\n")
  print("0 passed, 1 failed")
  os.exit(1)
end
local failed = 0
for _, kind in ipairs({ "failures", "errors" }) do
  for _, t in ipairs(r[kind] or {}) do
    failed = failed + 1
    local where = t.element and t.element.trace and t.element.trace.short_src or "?"
    io.stderr:write(("%s: %s (%s)\n%s\n\n"):format(kind:sub(1, -2):upper(), t.name or "?",
      where, tostring(t.message or (t.trace and t.trace.message) or "")))
  end
end
local passed, pending = #(r.successes or {}), #(r.pendings or {})
print(("%d passed, %d failed, %d skipped"):format(passed, failed, pending))
if arg[2] then
  local out = assert(io.open(arg[2], "a"))
  out:write(("%d %d %d\n"):format(passed, failed, pending))
  out:close()
end
os.exit(failed == 0 and passed > 0 and 0 or 1)
