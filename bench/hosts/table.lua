-- bench/hosts/run.sh's Markdown: `table.lua gaps|batch|throughput FILE`.
local cjson = require("cjson")
local what, file = arg[1], arg[2]

local function lines()
  local f = assert(io.open(file))
  local t = {}
  for line in f:lines() do t[#t + 1] = line end
  f:close()
  return t
end

local function range(list, scale)
  local lo, hi = math.huge, -math.huge
  for _, v in ipairs(list) do lo, hi = math.min(lo, v), math.max(hi, v) end
  return ("%.0f–%.0f"):format(lo * scale, hi * scale)
end

local function median(list)
  table.sort(list)
  return list[math.floor((#list + 1) / 2)]
end

local HOSTS = {
  cqueues = { "lua5.3 + cqueues", "lua-http `request:go`" },
  copas = { "lua5.1 + copas 1.2 (Debian's)", "`copas.connect/send/receive`" },
  luv = { "lua5.4 + luv (`uv.run`)", "`uv.new_tcp`" },
  nvim = { "Neovim 0.7 headless (LuaJIT), `vim.loop`", "`vim.loop` TCP", "`jobstart` curl" },
  haproxy = { "HAProxy 2.6 (Lua 5.3), task", "`core.httpclient()`" },
}

local function gaps()
  local rows, order = {}, {}
  local host = nil
  for _, line in ipairs(lines()) do
    local r = cjson.decode(line)
    if r.name == "blocking" then host = #order + 1; order[host] = {} end
    if r.name ~= "END" then order[host][r.name] = r end
  end
  print("| host (its Lua) | ducky, blocking client | ducky adapter | the host's own HTTP means |")
  print("|---|---:|---:|---|")
  for i, name in ipairs { "cqueues", "copas", "luv", "nvim", "haproxy" } do
    local r = order[i]
    local own = {}
    for k, key in ipairs { "native", "native2" } do
      local v = r[key] and r[key].value
      if v and v.gaps then
        own[#own + 1] = ("%s %s ms"):format(HOSTS[name][k + 1], range(v.gaps, 1000))
      elseif r[key] and not r[key].ok then
        own[#own + 1] = ("%s failed: %s"):format(HOSTS[name][k + 1], r[key].error)
      end
    end
    rows[#rows + 1] = ("| %s | %s ms | **%s ms** | %s |"):format(HOSTS[name][1],
      range(r.blocking.value.gaps, 1000), range(r.adapter.value.gaps, 1000), table.concat(own, "; "))
  end
  print(table.concat(rows, "\n"))
end

local function grouped()
  local by = {}
  for _, line in ipairs(lines()) do
    local how, v = line:match("^(%S+) (.*)$")
    by[how] = by[how] or {}
    by[how][#by[how] + 1] = v
  end
  return by
end

local function batch()
  print("\n| `batch` of 4 × 0.5 s, HTTP/1.1 | runs (ms) | median |")
  print("|---|---|---:|")
  for _, how in ipairs { "blocking", "cqueues" } do
    local ms = {}
    for i, v in ipairs(grouped()[how]) do ms[i] = tonumber(v) * 1000 end
    local shown = {}
    for i, v in ipairs(ms) do shown[i] = ("%.0f"):format(v) end
    print(("| %s | %s | **%.0f** |"):format(how == "blocking" and "`client:batch` (blocking client)"
      or "`ducky.cqueues` client's `batch`", table.concat(shown, ", "), median(ms)))
  end
end

local function throughput()
  print("\n| cqueues (Lua 5.3), 50 coroutines | requests | req/s, median | runs |")
  print("|---|---:|---:|---|")
  local by = grouped()
  local med = {}
  for _, how in ipairs { "ducky", "lua-http" } do
    local rps, n, shown = {}, nil, {}
    for i, v in ipairs(by[how]) do
      local count, _, r = v:match("^(%d+) (%S+) (%S+)$")
      n, rps[i], shown[i] = count, tonumber(r), r
    end
    med[how] = median(rps)
    print(("| %s | %s | **%.0f** | %s |"):format(how == "ducky" and "one `ducky.cqueues` client"
      or "lua-http `request:go`", n, med[how], table.concat(shown, ", ")))
  end
  print(("\nducky.cqueues / lua-http: **%.2f×**"):format(med.ducky / med["lua-http"]))
end

({ gaps = gaps, batch = batch, throughput = throughput })[what]()
