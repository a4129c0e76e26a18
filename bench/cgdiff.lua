-- Per-request profile from two callgrind runs of the same program, one with N
-- requests and one with a small n: (cost(N) - cost(n)) / (N - n) for every
-- function, so process start, the connect and the token exchange cancel out.
-- usage: lua5.4 cgdiff.lua BIG.out N SMALL.out n [TOP] [inclusive|exclusive|objects] [PATTERN...]
--   with PATTERNs: only the functions whose name holds one of them (plain text);
--   objects: exclusive costs summed per shared object (libc split into malloc and the rest)
local big, nbig, small, nsmall = arg[1], tonumber(arg[2]), arg[3], tonumber(arg[4])
local top = tonumber(arg[5]) or 15
local mode = arg[6] or "exclusive"
local patterns = { table.unpack(arg, 7) }

local function load(file)
  local cmd = ("callgrind_annotate --auto=no --threshold=100 --inclusive=%s %s"):format(
    mode == "inclusive" and "yes" or "no", file)
  local p = assert(io.popen(cmd))
  local t, total = {}, nil
  for line in p:lines() do
    local num, name = line:match("^%s*([%d,]+) %([%s%d.]+%%%)%s+(.+)$")
    if num then
      num = tonumber((num:gsub(",", "")))
      name = name:gsub("'%d+", "") -- recursion depth marks
      if name == "PROGRAM TOTALS" then total = num else t[name] = (t[name] or 0) + num end
    end
  end
  p:close()
  return t, total
end

local function short(name)
  if mode == "objects" then return name end
  name = name:gsub("%[/[^%]]*/([^/%]]+)%]", "[%1]") -- object: base name only
  name = name:gsub("^%./[^:]*/", ""):gsub("^/work/main/", "")
  return name
end

local function by_object(t)
  local o = {}
  for name, v in pairs(t) do
    local obj = name:match("%[[^%]]*/([^/%]]+)%]$") or "?"
    if obj:find("^libc%.so") then
      obj = (name:find("malloc.c:", 1, true) or name:find("arena.c:", 1, true)) and
        "libc.so.6 (malloc, free, realloc)" or "libc.so.6 (the rest: memcpy, str*, getenv, sscanf…)"
    end
    o[obj] = (o[obj] or 0) + v
  end
  return o
end

local a, ta = load(big)
local b, tb = load(small)
if mode == "objects" then a, b = by_object(a), by_object(b) end
local dn = nbig - nsmall
local rows = {}
for name, v in pairs(a) do
  local d = (v - (b[name] or 0)) / dn
  local keep = #patterns == 0
  for _, p in ipairs(patterns) do
    if name:find(p, 1, true) then keep = true end
  end
  if keep and d > 0.5 then rows[#rows + 1] = { name = name, d = d } end
end
table.sort(rows, function(x, y) return x.d > y.d end)
local per = (ta - tb) / dn
print(("total: %.0f Ir per request ((%d - %d) / (%d - %d) requests)"):format(per, ta, tb, nbig, nsmall))
print(("| Ir/request | %% of request | %s |"):format(mode == "objects" and "object (exclusive)"
  or ("function (%s)"):format(mode)))
print("|---:|---:|---|")
for i = 1, math.min(top, #rows) do
  print(("| %.0f | %.1f%% | `%s` |"):format(rows[i].d, 100 * rows[i].d / per, short(rows[i].name)))
end
