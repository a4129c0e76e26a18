-- Soak: SOAK_REQUESTS (200000) requests through one client against the local
-- stand-in, with tokens that expire every 3 s and a fault in about 1% of the
-- answers (503; 429 with Retry-After: 0; a connection dropped before the headers
-- or in mid-body; 401; invalid JSON under a JSON content type; an answer slower
-- than the request's timeout). The schedule comes from SOAK_SEED (1), so a run
-- is reproducible. Every request must end in a result or a ducky.error (counted
-- by kind); RSS (VmRSS) is sampled every 10,000 requests (a tenth of the run
-- when shorter) and must stay within 5% of its value after the warm-up (the
-- first fifth of the run). Last line: "soak: PASS ..." or "soak: FAIL ...", and
-- the exit status says the same. SOAK_FAULT_RATE (0.01) sets the share of faulty answers.
--
-- Run from the repository root:  bench/soak.sh   (bench/soak.sh valgrind: 5,000 requests under valgrind)
--   SOAK_REQUESTS=5000 valgrind --leak-check=full --errors-for-leak-kinds=definite,indirect \
--     --error-exitcode=99 lua5.4 bench/soak.lua
-- SOAK_RSS=0 skips the RSS verdict (skipped under valgrind: RSS is then valgrind's own).
package.path = "./?.lua;" .. package.path
local H = require("spec.helpers")
local socket = require("socket")
local ducky = require("ducky")

local N = math.tointeger(tonumber(os.getenv("SOAK_REQUESTS") or "200000"))
  or error("SOAK_REQUESTS must be an integer")
local SEED = math.tointeger(tonumber(os.getenv("SOAK_SEED") or "1")) or 1
-- under valgrind, RSS is mostly valgrind's own: not checked
local UNDER_VALGRIND = (os.getenv("LD_PRELOAD") or ""):find("vgpreload") ~= nil
local CHECK_RSS = os.getenv("SOAK_RSS") ~= "0" and not UNDER_VALGRIND
local FAULT_RATE = tonumber(os.getenv("SOAK_FAULT_RATE") or "0.01")
local LIFETIME = 3          -- seconds a token lives (the stand-in's expires_in)
local SLOW_TIMEOUT = 0.1    -- the timeout of a request that meets a slow answer
local SLOW_DELAY = 0.5      -- how slow that answer is
local SAMPLE_EVERY = math.max(1, math.min(10000, N // 10))
local WARMUP = math.max(SAMPLE_EVERY, N // 5)
local MAX_GROWTH = 0.05

math.randomseed(SEED)

local function rss_kb()
  local f = assert(io.open("/proc/self/status"))
  local s = f:read("a")
  f:close()
  return math.tointeger(tonumber(s:match("VmRSS:%s*(%d+)")))
end

-- the faults, in the stand-in's terms (POST /_control/fault); times = 1 each
local FAULTS = {
  { name = "503", fault = { status = 503, body = { error = "unavailable" } } },
  { name = "429", fault = { status = 429, body = { error = "slow_down" },
    headers = { ["Retry-After"] = "0" } } },
  { name = "drop_before_headers", fault = { drop = "before_headers" } },
  { name = "drop_mid_body", fault = { drop = "mid_body" } },
  { name = "401", fault = { status = 401, body = { error = "invalid_token" },
    headers = { ["WWW-Authenticate"] = 'Bearer error="invalid_token"' } } },
  { name = "bad_json", fault = { status = 200, body = "{\"message\": \"po",
    content_type = "application/json" } },
  { name = "slow", fault = { delay = SLOW_DELAY }, timeout = SLOW_TIMEOUT },
}

-- what each request is: 70% GET ping/protected, 20% GET echo with a query, 10% POST echo
local function path_of(r)
  return r <= 7 and "/v3/ping/protected" or "/v3/echo"
end

local function request(client, r, i, timeout)
  if r <= 7 then
    return client:request("GET", "/ping/protected", { timeout = timeout })
  elseif r <= 9 then
    return client:request("GET", "/echo", { query = { i = i, tag = "soak" }, timeout = timeout })
  end
  return client:request("POST", "/echo", { json = { i = i, note = "soak" }, timeout = timeout })
end

local info = H.standin()
local dir = H.tmpdir()
local id = H.new_id("soak")
H.config(id, LIFETIME)
local client <close> = ducky.client {
  client_id = id, client_secret = H.secret(id),
  base_url = H.base_url(), token_url = H.token_url(), audience = info.audience,
  token_cache = dir .. "/soak.token", -- the file store too: a save at every exchange
  timeout = 5, retries = 1, max_exchanges_per_hour = 1000000,
}

print(("soak: %d requests, seed %d, a fault in %.0f%% of answers, tokens live %d s; machine: %s, %s cores")
  :format(N, SEED, FAULT_RATE * 100, LIFETIME, io.popen("uname -srm"):read("l"), io.popen("nproc"):read("l")))

local outcomes, by_fault = {}, {}
local bad, unfaulted_errors, faults = 0, 0, 0
local samples = {}
local t0 = socket.gettime()

for i = 1, N do
  local f
  if math.random() < FAULT_RATE then
    f = FAULTS[math.random(#FAULTS)]
    faults = faults + 1
  end
  local r = math.random(10)
  if f then
    local fault = { path = path_of(r), times = 1 }
    for k, v in pairs(f.fault) do fault[k] = v end
    H.fault(fault)
  end
  local ok, res, err = pcall(request, client, r, i, f and f.timeout)
  local kind
  if not ok then
    kind = "raised"
    bad = bad + 1
    io.stderr:write(("request %d raised: %s\n"):format(i, tostring(res)))
  elseif res ~= nil and type(res) == "table" and res.status then
    kind = "ok"
  elseif ducky.is_error(err) then
    kind = err.kind
    if not f then
      unfaulted_errors = unfaulted_errors + 1
      io.stderr:write(("request %d (%s, no fault) failed: %s\n"):format(i, path_of(r), tostring(err)))
    end
  else
    kind = "neither"
    bad = bad + 1
    io.stderr:write(("request %d ended in neither a result nor a ducky.error: %s, %s\n")
      :format(i, tostring(res), tostring(err)))
  end
  outcomes[kind] = (outcomes[kind] or 0) + 1
  if f then
    local m = by_fault[f.name] or {}
    by_fault[f.name] = m
    local k = kind == "ok" and "ok" or kind .. (err and err.status and " " .. err.status or "")
    m[k] = (m[k] or 0) + 1
  end
  if i % SAMPLE_EVERY == 0 then
    collectgarbage()
    local s = { n = i, rss = rss_kb(), lua = collectgarbage("count"), t = socket.gettime() - t0 }
    samples[#samples + 1] = s
    print(("%8d requests  %7.1f s  %6.0f req/s  VmRSS %6d kB  Lua heap %6.0f kB")
      :format(i, s.t, i / s.t, s.rss, s.lua))
  end
end

local elapsed = socket.gettime() - t0
local stats = client:stats()
local st = H.stats()

print(("done: %d requests in %.1f s, %.0f req/s; %d faults injected"):format(N, elapsed, N / elapsed, faults))
local kinds = {}
for k in pairs(outcomes) do kinds[#kinds + 1] = k end
table.sort(kinds)
for _, k in ipairs(kinds) do print(("  %-8s %7d"):format(k, outcomes[k])) end
print("by fault:")
local names = {}
for k in pairs(by_fault) do names[#names + 1] = k end
table.sort(names)
for _, name in ipairs(names) do
  local parts = {}
  for k, v in pairs(by_fault[name]) do parts[#parts + 1] = ("%s %d"):format(k, v) end
  table.sort(parts)
  print(("  %-20s %s"):format(name, table.concat(parts, ", ")))
end
print(("client stats: requests %d, token_fetches %d, token_cache_hits %d, token_store_hits %d, "
  .. "retries %d, replays_401 %d, stale_tokens %d, errors %d; stand-in: %d exchanges, %d connections")
  :format(stats.requests, stats.token_fetches, stats.token_cache_hits, stats.token_store_hits, stats.retries,
    stats.replays_401, stats.stale_tokens, stats.errors, st.exchanges_by_client[id] or 0,
    st.connections_total))

-- RSS: the samples after the warm-up against the first of them
local base, peak, growth
for _, s in ipairs(samples) do
  if s.n >= WARMUP then
    if not base then base = s.rss end
    peak = math.max(peak or 0, s.rss)
  end
end
if base then
  growth = (peak - base) / base
  print(("RSS after warm-up (%d requests): %d kB, peak %d kB, growth %.2f%%")
    :format(WARMUP, base, peak, growth * 100))
end

local why = {}
if bad > 0 then why[#why + 1] = ("%d requests ended in neither a result nor a ducky.error"):format(bad) end
if unfaulted_errors > 0 then
  why[#why + 1] = ("%d requests without a fault failed"):format(unfaulted_errors)
end
if CHECK_RSS and growth and growth > MAX_GROWTH then
  why[#why + 1] = ("RSS grew %.1f%% after warm-up (limit %.0f%%)"):format(growth * 100, MAX_GROWTH * 100)
end
print(("soak: %s: %d requests, %.1f s, %.0f req/s, %d faults, %d bad, RSS %s")
  :format(#why == 0 and "PASS" or "FAIL (" .. table.concat(why, "; ") .. ")", N, elapsed, N / elapsed,
    faults, bad, growth and ("%+.2f%% after warm-up"):format(growth * 100)
      .. (CHECK_RSS and "" or " (not checked)") or "not sampled"))
client:close()
os.exit(#why == 0 and 0 or 1, true)
