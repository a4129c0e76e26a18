-- Reads busted's TAP output of one or more spec runs, prints each failure (and
-- whatever else a run printed) under the name of its run, then the one line
-- "N passed, N failed, N skipped" for all of them together.
--   lua5.4 tools/summary.lua [--append COUNTS] RUN.tap...
-- A RUN.err beside a RUN.tap holds that run's stderr; a RUN.name its name (the
-- spec files it ran). --append adds the line "passed failed skipped" to COUNTS.
--   lua5.4 tools/summary.lua --total COUNTS   sums the lines appended to COUNTS.
local function read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end

if arg[1] == "--total" then
  local p, f, s = 0, 0, 0
  for line in io.lines(arg[2]) do
    local a, b, c = line:match("^(%d+) (%d+) (%d+)$")
    p, f, s = p + a, f + b, s + c
  end
  print(("%d passed, %d failed, %d skipped"):format(p, f, s))
  os.exit(f == 0 and p > 0 and 0 or 1)
end

-- One run's TAP text -> passed, failed, skipped, and the lines worth showing.
local function tally(tap)
  local passed, failed, skipped, planned = 0, 0, 0, nil
  local shown, in_failure = {}, false
  for line in (tap .. "\n"):gmatch("([^\n]*)\n") do
    if line:match("^not ok ") then
      failed = failed + 1
      in_failure = true
      shown[#shown + 1] = "FAILURE: " .. line:gsub("^not ok %d+ %- ", "")
    elseif line:match("^ok %d+ %- # SKIP") then
      skipped, in_failure = skipped + 1, false
    elseif line:match("^ok ") then
      passed, in_failure = passed + 1, false
    elseif line:match("^1%.%.%d+") then
      planned = tonumber(line:match("^1%.%.(%d+)"))
    elseif in_failure and line:match("^#") then
      shown[#shown + 1] = (line:gsub("^# ?", "  "))
    elseif not line:match("^#") and line ~= "" then
      shown[#shown + 1] = line -- output a spec printed, or busted's own errors
    end
  end
  -- a crash before the end leaves no plan line: count it as a failure
  if planned == nil or planned ~= passed + failed + skipped then
    shown[#shown + 1] = ("busted did not finish (planned %s, ran %d)")
      :format(tostring(planned), passed + failed + skipped)
    failed = failed + 1
  end
  return passed, failed, skipped, shown
end

local counts, runs = nil, {}
local i = 1
while arg[i] do
  if arg[i] == "--append" then
    counts, i = arg[i + 1], i + 2
  else
    runs[#runs + 1], i = arg[i], i + 1
  end
end

local passed, failed, skipped = 0, 0, 0
for _, tapfile in ipairs(runs) do
  local base = tapfile:gsub("%.tap$", "")
  local p, f, s, shown = tally(read(tapfile) or "")
  passed, failed, skipped = passed + p, failed + f, skipped + s
  local err = read(base .. ".err") or ""
  if #shown > 0 or err:find("%S") then
    local name = (read(base .. ".name") or tapfile):gsub("%s+$", "")
    io.stderr:write(("-- %s: %d passed, %d failed, %d skipped\n"):format(name, p, f, s))
    if err:find("%S") then io.stderr:write(err, err:sub(-1) == "\n" and "" or "\n") end
    for _, line in ipairs(shown) do io.stderr:write(line, "\n") end
  end
end
if #runs == 0 then failed = failed + 1 end
print(("%d passed, %d failed, %d skipped"):format(passed, failed, skipped))
if counts then
  local out = assert(io.open(counts, "a"))
  out:write(("%d %d %d\n"):format(passed, failed, skipped))
  out:close()
end
os.exit(failed == 0 and passed > 0 and 0 or 1)
