-- ducky.ngx.options: new{}'s options, checked where new{} runs (init_by_lua),
-- so that a typo stops nginx at start rather than failing every request.
local ngx = ngx
local cjson = require("cjson")
local ducky = require("ducky")
local shared = require("ducky.ngx.shared")
local log = require("ducky.ngx.log")
local checks = require("ducky.ngx.checks")
local redis_store = require("ducky.redis_store")

local M = {}

local DEFAULT_POOL = "ducky"
local DEFAULT_DICT = "ducky_tokens"
local DEFAULT_INTERVAL = 1 -- seconds between background refresh checks

-- The options ducky.ngx takes on top of ducky.client's.
local NGX_OPTIONS = { pool = true, shared_dict = true, threads = true, log_level = true,
  refresh_interval = true, redis = true }

-- nginx copies tables into a pool VM at most 100 deep (LUA_COPY_MAX_DEPTH), a
-- call's own wrapping (its batch, its item) included: what is given in a call
-- may nest this deep.
local MAX_DEPTH = 90

-- Raises, in ducky's words, for a value that cannot cross into the pool's
-- VMs; prefix: the start of the message ("ducky.ngx: option").
local function check_plain(v, path, seen, prefix, depth)
  local t = type(v)
  if t == "function" or t == "userdata" or t == "thread" then
    local hint = ""
    if path == "log" then
      hint = " (events go to nginx's error log: set log_level)"
    end
    error(("%s '%s' must be plain data, not a %s: options cross into the thread pool's Lua VMs,"
      .. " which only take strings, numbers, booleans and tables of them%s")
      :format(prefix or "ducky.ngx: option", path, t, hint), 0)
  elseif t == "table" then
    if seen[v] then error(("%s '%s' holds a cycle"):format(prefix or "ducky.ngx: option", path), 0) end
    depth = (depth or 0) + 1
    if depth > MAX_DEPTH then
      error(("%s '%s…' nests tables deeper than %d: nginx passes at most 100 levels into the"
        .. " thread pool's Lua VMs"):format(prefix or "ducky.ngx: option", path:sub(1, 40), MAX_DEPTH), 0)
    end
    seen[v] = true
    for k, x in pairs(v) do
      check_plain(k, path .. " key", seen, prefix, depth)
      check_plain(x, path .. "." .. tostring(k), seen, prefix, depth)
    end
    seen[v] = nil
  end
end
M.check_plain = check_plain

-- A string naming a configuration: equal options, equal id.
function M.config_key(copts, dict, redis)
  local names = {}
  for k in pairs(copts) do names[#names + 1] = k end
  table.sort(names)
  local parts = { tostring(dict), redis and cjson.encode(redis) or "" }
  for _, k in ipairs(names) do
    local v = copts[k]
    parts[#parts + 1] = k .. "=" .. (type(v) == "table" and cjson.encode(v) or tostring(v))
  end
  return table.concat(parts, "\0")
end

-- The redis option: ducky.redis_store's options (its own checks), behind a dict.
local function redis_option(opts, dict_name)
  local r = opts.redis
  if r == nil then return nil end
  if type(r) ~= "table" then
    error("ducky.ngx: option 'redis' must be a table of ducky.redis_store's options", 0)
  end
  if r.redis ~= nil then error("ducky.ngx: option 'redis.redis' is not for nginx: give host and port", 0) end
  local ok, err = pcall(redis_store.new, r)
  if not ok then error("ducky.ngx: option 'redis': " .. tostring(err), 0) end
  err.close()
  if not dict_name then error("ducky.ngx: option 'redis' needs a shared_dict: Redis is behind it", 0) end
  return r
end

local function option(opts, name, kind, check, what)
  local v = opts[name]
  if v == nil then return nil end
  if type(v) ~= kind or (check and not check(v)) then
    error(("ducky.ngx: option '%s' must be %s"):format(name, what), 0)
  end
  return v
end

local function check_names(opts)
  if opts == nil then opts = {} end
  if type(opts) ~= "table" then error("ducky.ngx: options must be a table", 0) end
  for k, v in pairs(opts) do
    if type(k) ~= "string" then error("ducky.ngx: option names must be strings", 0) end
    if k == "token_cache" then
      error("ducky.ngx: option 'token_cache' is not for nginx: tokens live in the"
        .. " lua_shared_dict named by shared_dict", 0)
    end
    check_plain(v, k, {})
  end
  return opts
end

-- ducky.ngx's own options: { pool, dict_name, threads, level, interval }.
local function ngx_options(opts)
  local o = {}
  o.pool = option(opts, "pool", "string", function(s) return s ~= "" end,
    "a thread_pool name") or DEFAULT_POOL
  o.dict_name = opts.shared_dict
  if o.dict_name == nil then o.dict_name = DEFAULT_DICT end
  if o.dict_name ~= false and (type(o.dict_name) ~= "string" or o.dict_name == "") then
    error("ducky.ngx: option 'shared_dict' must be a lua_shared_dict name or false", 0)
  end
  o.threads = option(opts, "threads", "number",
    function(n) return n >= 1 and n <= 65536 and n % 1 == 0 end,
    "a whole number from 1 to 65536")
  o.level = opts.log_level
  if o.level == nil then o.level = "info" end
  if o.level ~= false and not log.LEVELS[o.level] then
    error("ducky.ngx: option 'log_level' must be one of debug, info, notice, warn, error, crit,"
      .. " alert, emerg, or false", 0)
  end
  o.interval = opts.refresh_interval
  if o.interval == nil then o.interval = DEFAULT_INTERVAL end
  if o.interval ~= false and (type(o.interval) ~= "number"
      or not (o.interval >= 0.01 and o.interval <= 3600)) then
    error("ducky.ngx: option 'refresh_interval' must be a number of seconds (0.01 to 3600) or false", 0)
  end
  return o
end

-- The client's options: checked with the same messages as ducky.client, by
-- making one and closing it at once.
local function client_options(opts)
  local copts = {}
  for k, v in pairs(opts) do
    if not NGX_OPTIONS[k] then copts[k] = v end
  end
  local check = shared.copy(copts)
  check.token_cache = false
  local made, client = pcall(ducky.client, check)
  if not made then error(client, 0) end
  local key = client:cache_key()
  client:close()
  return copts, key
end

-- The fields of a new api object (ducky.ngx's new{} sets its metatable), or
-- raises for a bad option.
function M.parse(opts)
  opts = check_names(opts)
  local o = ngx_options(opts)
  local copts, key = client_options(opts)
  local dict = o.dict_name and ngx.shared[o.dict_name]
  if o.dict_name and not dict then
    error(("ducky.ngx: lua_shared_dict '%s' is not configured: add `lua_shared_dict %s 1m;` to"
      .. " the http block, or set shared_dict = false"):format(o.dict_name, o.dict_name), 0)
  end
  local redis = redis_option(opts, o.dict_name)
  local id = ngx.md5(M.config_key(copts, o.dict_name, redis))
  return {
    id = id, pool = o.pool, threads = o.threads, dict_name = o.dict_name or nil, dict = dict or nil,
    counts = {}, flushed_at = 0, interval = o.interval or nil,
    master_env = checks.master_env(), master_key = key, -- for checks.worker
    log_level = o.level and ngx[log.LEVELS[o.level]] or nil,
    redis = redis, conf = { id = id, copts = copts, dict = o.dict_name or nil, redis = redis },
  }
end

-- What depends on the environment of the worker (where the pool's clients
-- read DUCKY_* too): the timeout and margins, from ducky.defaults() there
-- unless the options give them. Called in each worker before any call.
function M.resolve(api)
  local copts, defaults = api.conf.copts, ducky.defaults()
  local timeout = copts.timeout or defaults.timeout
  local margin = copts.refresh_margin or defaults.refresh_margin
  api.timeout = timeout
  -- the background refresh comes this long before expiry: ahead of the margin
  -- the requests' clients refresh at, by two timer ticks and some
  api.conf.refresh_at = margin + 2 * (api.interval or 0) + 5
  api.conf.lock_ttl = timeout + 5
end

return M
