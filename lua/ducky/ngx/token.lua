-- ducky.ngx.token: the token in the worker (its Lua VM): the dict's entry as
-- authorization() serves it, the slow path of authorization(), and the
-- background refresh a timer runs ahead of the refresh margin.
local ngx = ngx
local cjson = require("cjson")
local ducky = require("ducky")
local shared = require("ducky.ngx.shared")
local stats = require("ducky.ngx.stats")
local admission = require("ducky.ngx.admission")

local M = {}

local SAFETY = 1 -- a token with less left than this is not handed out

-- The key under which the C core keeps this configuration's token (a hash of
-- the credentials, as this worker's environment gives them): client:cache_key()
-- of a client made, and closed, here.
function M.cache_key(api)
  if api.key == nil and api.dict then
    local o = shared.copy(api.conf.copts)
    o.token_cache = false
    local c = ducky.client(o)
    local key = c:cache_key()
    c:close()
    api.key = key or false
    api.gen_key = key and shared.gen_key(key)
  end
  return api.key or nil
end

-- The dict's token for this configuration, decoded once per change:
-- { token, bearer, expires_at, refresh_at } or nil. A change bumps the
-- generation counter beside it, so an unchanged token costs one number read.
function M.cached_entry(api)
  local key = api.key
  if key == nil then key = M.cache_key(api) end
  if not key then return nil end
  local dict = api.dict
  local gen = dict:get(api.gen_key)
  if gen == api.gen and api.entry then return api.entry end
  api.gen, api.entry = gen, nil
  local raw = dict:get(key)
  if raw == nil then return nil end
  local ok, e = pcall(cjson.decode, raw)
  if not (ok and type(e) == "table" and ducky.check_entry(e)) then return nil end
  local life = type(e.expires_in) == "number" and e.expires_in or e.expires_at - ngx.now()
  api.entry = { token = e.access_token, bearer = "Bearer " .. e.access_token,
    expires_at = e.expires_at, refresh_at = math.min(api.conf.refresh_at, life / 2) }
  return api.entry
end

local tick

local function kick_refresh(api)
  if not api.refreshing then
    api.refreshing = true
    ngx.timer.at(0, tick, api)
  end
end

-- The slow path of authorization(): a token that changed, is near its
-- refresh, or is missing.
function M.authorization(api, set)
  local e = M.cached_entry(api)
  if e then
    local left = e.expires_at - ngx.now()
    if left > SAFETY then
      if left <= e.refresh_at then kick_refresh(api) end -- the timer is late, or off
      stats.count(api, "authorization_hits")
      return e.bearer
    end
  end
  stats.count(api, "authorization_misses")
  if set then
    if api.dict then kick_refresh(api) end
    return nil, { kind = "auth", message = ("no token in lua_shared_dict '%s' yet, and the"
      .. " set phase cannot wait for one: a fetch has started"):format(tostring(api.dict_name)) }
  end
  local tok, err = admission.submit(api, "authorization", api.timeout, "bearer", api.key or nil)
  if not tok then return nil, err end
  return "Bearer " .. tok
end

-- One background refresh check: when the dict's token is near its refresh
-- margin (or missing), one worker at a time takes the refresh lock and has the
-- token refreshed in the pool; requests keep the current token meanwhile.
tick = function(premature, api)
  if premature then return end
  local key = M.cache_key(api)
  if not key then api.refreshing = false return end
  local e = M.cached_entry(api)
  if e and e.expires_at - ngx.now() > e.refresh_at then
    api.refreshing = false
    return
  end
  local owner = shared.owner_value()
  if not api.dict:add(shared.refresh_key(key), owner, api.timeout + 5) then
    api.refreshing = false
    return -- another worker is at it
  end
  local t, err = admission.submit(api, "refresh", api.timeout, "refresh")
  shared.unlock(api.dict, shared.refresh_key(key), owner)
  api.refreshing = false
  if t then
    stats.count(api, "background_refreshes")
    if api.log_level then
      ngx.log(api.log_level, "ducky: background refresh: token has ", math.floor(t[1]), " s left")
    end
  else
    local lvl = (err and err.kind == "config") and ngx.ERR or ngx.WARN
    ngx.log(lvl, "ducky: background refresh failed: ", err and err.message or "?")
  end
end

-- For init_worker_by_lua: learns the cache key and starts the refresh timer.
function M.init_worker(api)
  if not api.dict or not api.interval then return true end
  M.cache_key(api)
  api.refreshing = true
  assert(ngx.timer.at(0, tick, api))
  assert(ngx.timer.every(api.interval, function(premature)
    stats.flush(api)
    admission.reap(api.pool)
    if not api.refreshing then
      api.refreshing = true
      tick(premature, api)
    end
  end))
  return true
end

return M
