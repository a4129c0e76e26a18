-- ducky.ngx.stats: the counters. The pool's clients count what client:stats()
-- counts (their changes come back with each call's result); the worker counts
-- its own (queue, batches, authorization()). A worker's counts live in Lua
-- (api.counts) and reach the shared dict, where stats() sums every worker's,
-- at most a second late (and at once for stats()).
local ngx = ngx
local cjson = require("cjson")
local shared = require("ducky.ngx.shared")

local M = {}

-- Counted by ducky.client in the pool, and by ducky.ngx in the worker.
M.CLIENT = { "requests", "token_fetches", "token_cache_hits", "token_store_hits",
  "retries", "replays_401", "stale_tokens", "errors" }
M.LOOP = { "queued", "queue_timeouts", "batched", "batches", "streamed", "authorization_hits",
  "authorization_misses", "background_refreshes" }

function M.flush(api)
  api.flushed_at = ngx.now()
  local dict = api.dict
  if not dict then return end
  local pid = ngx.worker.pid()
  if api.stat_pid ~= pid then -- keys of this worker (not of the master new{} ran in)
    api.stat_pid, api.stat_key, api.flushed = pid, shared.stat_prefix(api.id) .. pid .. ":", {}
  end
  local flushed = api.flushed
  for name, v in pairs(api.counts) do
    local d = v - (flushed[name] or 0)
    if d ~= 0 then
      dict:incr(api.stat_key .. name, d, 0)
      flushed[name] = v
    end
  end
  if api.rate_limit_changed then
    dict:set(shared.stat_prefix(api.id) .. "rate_limit", cjson.encode(api.rate_limit))
    api.rate_limit_changed = nil
  end
end

local function maybe_flush(api)
  if ngx.now() - api.flushed_at >= 1 then M.flush(api) end
end
M.maybe_flush = maybe_flush

function M.count(api, name, n)
  local counts = api.counts
  counts[name] = (counts[name] or 0) + (n or 1)
  maybe_flush(api)
end

-- Adds what the pool's clients counted during a call.
function M.add(api, delta)
  local counts = api.counts
  for name, n in pairs(delta) do
    if name == "rate_limit" then
      api.rate_limit, api.rate_limit_changed = n, true
    else
      counts[name] = (counts[name] or 0) + n
    end
  end
  maybe_flush(api)
end

-- Every worker's counts of this configuration, summed from the dict into all.
local function sum_workers(api, all)
  local dict = api.dict
  local prefix = shared.stat_prefix(api.id)
  for _, k in ipairs(dict:get_keys(0)) do
    if k:sub(1, #prefix) == prefix then
      local name = k:sub(#prefix + 1):match("^%d+:(.+)$")
      local v = name and dict:get(k)
      if type(v) == "number" and all[name] then all[name] = all[name] + v end
    end
  end
  local rl = dict:get(prefix .. "rate_limit")
  if rl then
    local ok, t = pcall(cjson.decode, rl)
    if ok and type(t) == "table" then all.rate_limit = t end
  end
end

-- This worker's counts, and in `all` the same summed over every worker.
function M.report(api)
  local mine, all = {}, {}
  for _, list in ipairs{ M.CLIENT, M.LOOP } do
    for _, name in ipairs(list) do
      mine[name], all[name] = api.counts[name] or 0, 0
    end
  end
  mine.rate_limit, all.rate_limit = api.rate_limit or {}, {}
  mine.all = all
  if not api.dict then
    for name, v in pairs(mine) do
      if type(v) == "number" then all[name] = v end
    end
    return mine
  end
  M.flush(api)
  sum_workers(api, all)
  return mine
end

return M
