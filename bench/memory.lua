-- Memory, in a fresh process for each part (freed memory stays in the process):
--   requests N1 N2: RSS and Lua heap of one client after N1 and after N2 protected requests;
--   clients COUNT:  memory per client object, COUNT clients made;
--   used COUNT:     the same, each client having made one request (its own
--                   connection and libcurl's buffers).
-- usage: lua5.4 memory.lua BASE_URL TOKEN_URL PART [ARGS]   (prints Markdown rows)
local ducky = require("ducky")

local base_url, token_url, part = arg[1], arg[2], arg[3]
local opts = { base_url = base_url, token_url = token_url, audience = "bench",
  client_id = "bench", client_secret = "bench-secret", token_cache = false }

local function rss_kib()
  for line in io.lines("/proc/self/status") do
    local kb = line:match("^VmRSS:%s+(%d+) kB")
    if kb then return tonumber(kb) end
  end
end

local function heap_kib()
  return collectgarbage("count")
end

local function row(what, value, target)
  print(("| %s | %s | %s |"):format(what, value, target or ""))
end

local function requests(n1, n2)
  local client = ducky.client(opts)
  for _ = 1, n1 do assert(client:ping_protected()) end
  local rss1, heap1 = rss_kib(), heap_kib()
  for _ = n1 + 1, n2 do assert(client:ping_protected()) end
  local rss2, heap2 = rss_kib(), heap_kib()
  client:close()
  row(("RSS after %d requests (one client)"):format(n1), ("%d KiB"):format(rss1))
  row(("RSS after %d requests"):format(n2), ("%d KiB"):format(rss2))
  row(("RSS growth, %d → %d requests"):format(n1, n2), ("**%+d KiB**"):format(rss2 - rss1), "< 1024 KiB")
  row("Lua heap (`collectgarbage(\"count\")`) at the same two points",
    ("%.0f KiB → %.0f KiB (not collected in between)"):format(heap1, heap2))
end

local function per_client(count, use)
  local clients = {}
  -- one client first, so that once-per-process costs (curl_global_init, OpenSSL,
  -- the token cache entry, the first connection's resolver) are not counted
  local first = ducky.client(opts)
  if use then assert(first:ping_protected()) end
  collectgarbage("collect")
  collectgarbage("collect")
  local r0, h0 = rss_kib(), heap_kib()
  for i = 1, count do
    clients[i] = ducky.client(opts)
    if use then assert(clients[i]:ping_protected()) end
  end
  collectgarbage("collect")
  collectgarbage("collect")
  local r1, h1 = rss_kib(), heap_kib()
  for i = 1, count do clients[i]:close() end
  first:close()
  return (r1 - r0) * 1024 / count, (h1 - h0) * 1024 / count
end
if part == "requests" then
  requests(tonumber(arg[4]) or 1000, tonumber(arg[5]) or 100000)
elseif part == "clients" or part == "used" then
  local count = tonumber(arg[4]) or 1000
  local r, h = per_client(count, part == "used")
  row(("per client, %d made%s (RSS delta / %d, Lua heap delta / %d)"):format(count,
    part == "used" and " and one request each (each its own connection)" or "", count, count),
    ("**%.0f B** RSS; %.0f B Lua heap"):format(r, h))
else
  error("usage: memory.lua BASE_URL TOKEN_URL requests|clients|used [ARGS]")
end
