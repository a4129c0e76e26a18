-- Reads busted's TAP output, prints each failure and the line "N passed, N failed";
-- appends the counts to file arg[2] if given.
--   lua5.4 tools/summary.lua --total FILE   sums the counts appended to FILE.
if arg[1] == "--total" then
  local p, f, s = 0, 0, 0
  for line in io.lines(arg[2]) do
    local a, b, c = line:match("^(%d+) (%d+) (%d+)$")
    p, f, s = p + a, f + b, s + c
  end
  print(("%d passed, %d failed, %d skipped"):format(p, f, s))
  os.exit(f == 0 and p > 0 and 0 or 1)
end

local passed, failed, skipped, planned = 0, 0, 0, nil
local in_failure = false
for line in io.lines(arg[1]) do
  if line:match("^not ok ") then
    failed = failed + 1
    in_failure = true
    io.stderr:write("FAILURE: ", line:gsub("^not ok %d+ %- ", ""), "\n")
  elseif line:match("^ok %d+ %- # SKIP") then
    skipped = skipped + 1
    in_failure = false
  elseif line:match("^ok ") then
    passed = passed + 1
    in_failure = false
  elseif line:match("^1%.%.%d+") then
    planned = tonumber(line:match("^1%.%.(%d+)"))
  elseif in_failure and line:match("^#") then
    io.stderr:write(line:gsub("^# ?", "  "), "\n")
  elseif not line:match("^#") and line ~= "" then
    io.stderr:write(line, "\n") -- output a spec printed, or busted's own errors
  end
end
-- a crash before the end leaves no plan line: count it as a failure
if planned == nil or planned ~= passed + failed + skipped then
  io.stderr:write(("busted did not finish (planned %s, ran %d)\n")
    :format(tostring(planned), passed + failed + skipped))
  failed = failed + 1
end
print(("%d passed, %d failed, %d skipped"):format(passed, failed, skipped))
if arg[2] then
  local out = assert(io.open(arg[2], "a"))
  out:write(("%d %d %d\n"):format(passed, failed, skipped))
  out:close()
end
os.exit(failed == 0 and passed > 0 and 0 or 1)
