-- ducky.ngx.checks: what nginx's configuration must give ducky.ngx, checked
-- when a worker starts (init_worker), so that a missing directive is named
-- once, at start, and in the errors of the calls it breaks: the thread pool
-- (`thread_pool NAME threads=N;`) and the DUCKY_* variables (`env NAME;`:
-- nginx clears its workers' environment but for those).
local ngx = ngx
local ffi = require("ffi")
local ducky = require("ducky")
local shared = require("ducky.ngx.shared")
local admission = require("ducky.ngx.admission")

local M = {}

-- nginx's own lookup of a thread pool by name (its ngx_str_t, by value of
-- its fields); unusable where the binary does not export it.
local lookup_ok = pcall(ffi.cdef, [[
typedef struct { size_t len; const char *data; } ducky_ngx_str_t;
void *ngx_thread_pool_get(void *cycle, ducky_ngx_str_t *name);
extern void *ngx_cycle;
]])

-- true or false when nginx can tell whether thread pool `pool` is configured,
-- nil when it cannot. Only in a worker: ngx_cycle is the running one there.
function M.pool_exists(pool)
  if not lookup_ok then return nil end
  local ok, tp = pcall(function()
    local name = ffi.new("ducky_ngx_str_t", #pool, pool)
    return ffi.C.ngx_thread_pool_get(ffi.C.ngx_cycle, name)
  end)
  if not ok then return nil end
  return tp ~= nil
end

-- For new{} in init_by_lua (the master, with the whole environment nginx
-- started with): the names of the DUCKY_* variables set there.
function M.master_env()
  local f = io.open("/proc/self/environ", "rb")
  local text = f and f:read("*a") or ""
  if f then f:close() end
  local names = {}
  for name in (text .. "\0"):gmatch("(DUCKY_[%w_]+)=[^%z]*%z") do names[#names + 1] = name end
  table.sort(names)
  return names
end

local function env_directives(names)
  local out = {}
  for i, name in ipairs(names) do out[i] = ("`env %s;`"):format(name) end
  return table.concat(out, " ")
end

-- Whether DUCKY_<X> names an option that changes which token the worker
-- gets: a client with option x set has another cache key (an unknown option
-- raises; the environment of nginx may hold DUCKY_* variables of its own).
local function credential(api, key, name)
  local o = shared.copy(api.conf.copts)
  o.token_cache = false
  o[name:sub(7):lower()] = "ducky-ngx-probe"
  local ok, c = pcall(ducky.client, o)
  if not ok then return false end
  local other = c:cache_key()
  c:close()
  return other ~= key
end

-- The variables the worker lacks: when its credentials differ from the
-- master's (their cache keys), those set where nginx started, not passed on,
-- that make the difference (all of them if none can be told); with no
-- client_id anywhere, the usual two.
local function missing_env(api, key)
  local missing, lost = {}, {}
  if api.master_key and key ~= api.master_key then
    for _, name in ipairs(api.master_env or {}) do
      if os.getenv(name) == nil then
        lost[#lost + 1] = name
        if credential(api, key, name) then missing[#missing + 1] = name end
      end
    end
  end
  if #missing == 0 then missing = lost end
  if #missing == 0 and api.conf.copts.client_id == nil and os.getenv("DUCKY_CLIENT_ID") == nil then
    missing = { "DUCKY_CLIENT_ID", "DUCKY_CLIENT_SECRET" }
  end
  return missing
end

-- At a worker's start: sets api.hints (what a config error of a call gets
-- added) and logs each problem once (worker 0).
-- key: the cache key of the options in the worker's environment.
function M.worker(api, key)
  local hints, say = {}, ngx.worker.id() == 0
  local missing = missing_env(api, key)
  if #missing > 0 then
    hints.env = (" (nginx passes its workers only the variables named by env directives: add %s"
      .. " to nginx.conf's main context, and set them where nginx starts)"):format(env_directives(missing))
    if say then
      ngx.log(ngx.ERR, "ducky: ", table.concat(missing, ", "), " not in the workers' environment",
        hints.env)
    end
  end
  if M.pool_exists(api.pool) == false then
    hints.pool = (" (add `thread_pool %s threads=%d;` to nginx.conf's main context, outside http {})")
      :format(api.pool, admission.size(api.pool))
    if say then ngx.log(ngx.ERR, "ducky: thread pool '", api.pool, "' is not configured", hints.pool) end
  end
  api.hints = hints
end

-- err (an error table from a call) with the hint that explains it, if any.
function M.explain(api, err)
  local hints = api.hints
  if not hints or type(err) ~= "table" or err.kind ~= "config" then return err end
  local hint = hints.env
  if err.pool then hint = hints.pool end
  if hint then err.message = tostring(err.message) .. hint end
  return err
end

return M
