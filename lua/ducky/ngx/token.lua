-- ducky.ngx.token: the token in the worker (its Lua VM): the entry
-- authorization() serves, the slow path of authorization(), invalidation,
-- and the background refresh a timer runs ahead of the refresh margin.
--
-- The entry comes from the lua_shared_dict (every worker's), or from the
-- worker's own memory when the dict does not hold it (shared_dict = false,
-- or a token the dict has no room for): then it is the token a pool call
-- brought back. A still-valid token is served until it expires, whatever
-- refreshes do meanwhile; refreshes and 401-driven invalidations are paced
-- (ducky.ngx.pace), so an endpoint in trouble never sees one attempt per
-- request.
local ngx = ngx
local cjson = require("cjson")
local ducky = require("ducky")
local shared = require("ducky.ngx.shared")
local stats = require("ducky.ngx.stats")
local log = require("ducky.ngx.log")
local pace = require("ducky.ngx.pace")
local admission = require("ducky.ngx.admission")
local checks = require("ducky.ngx.checks")

local M = {}

local SAFETY = 1 -- a token with less left than this is not handed out

-- The key under which the C core keeps this configuration's token (a hash of
-- the credentials, as this worker's environment gives them): client:cache_key()
-- of a client made, and closed, here.
function M.cache_key(api)
  if api.key == nil then
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

-- An entry as authorization() serves it; life: the token's whole lifetime,
-- when known (the refresh comes at most half of it before expiry).
local function make_entry(api, tok, expires_at, life)
  return { token = tok, bearer = "Bearer " .. tok, expires_at = expires_at,
    refresh_at = math.min(api.conf.refresh_at, life / 2) }
end

local function decode(api, raw)
  local ok, e = pcall(cjson.decode, raw)
  if not (ok and type(e) == "table" and ducky.check_entry(e)) then return nil end
  local life = type(e.expires_in) == "number" and e.expires_in or e.expires_at - ngx.now()
  return make_entry(api, e.access_token, e.expires_at, life)
end

-- The worker's own token, unless a worker dropped that very token since
-- (the dict keeps the fingerprint of the last one dropped).
local function memory(api)
  local m = api.mem
  if m and api.dict and shared.was_dropped(api.dict, api.key, m.token) then
    api.mem, m = nil, nil
  end
  return m
end

-- The token to serve: the dict's, decoded once per change (a change bumps
-- the generation counter beside it, so an unchanged token costs one number
-- read), else the worker's own; nil when neither holds one.
function M.current(api)
  if not M.cache_key(api) then return nil end
  local dict = api.dict
  if not dict then
    api.entry = api.mem
    return api.entry
  end
  local gen = dict:get(api.gen_key)
  if gen == api.gen and api.entry then return api.entry end
  api.gen = gen
  local raw = dict:get(api.key)
  api.entry = raw and decode(api, raw) or memory(api)
  return api.entry
end

-- A token a pool call brought back: kept in the worker when the dict does
-- not hold it. t = { token, left (seconds), life (when known) }.
local function learn(api, t)
  local cur = M.current(api)
  if cur and cur.token == t.token then return cur end
  local e = make_entry(api, t.token, ngx.now() + t.left, t.life or t.left)
  api.mem, api.entry = e, e
  if api.dict then api.gen = api.dict:get(api.gen_key) end
  return e
end

local tick

-- Starts the background refresh now, unless one runs or the pace says wait.
local function kick(api)
  if api.refreshing or ngx.now() < (api.next_try or 0) then return false end
  api.refreshing = true
  local ok = ngx.timer.at(0, tick, api)
  if not ok then api.refreshing = false end
  return ok
end

local function where(api)
  if api.dict then return ("lua_shared_dict '%s'"):format(api.dict_name) end
  return "this worker (shared_dict = false)"
end

-- authorization() in set_by_lua, on a miss: an error saying what happens next.
local function set_phase_miss(api)
  local started = kick(api) or api.refreshing
  local left, last = pace.left(api, "refresh")
  local next_step = started and "a fetch has started"
    or ("the next fetch is due in %.1f s, after: %s"):format(left, last and last.message or "?")
  return nil, { kind = "auth", message = ("no token in %s yet, and the set phase cannot wait for one: %s")
    :format(where(api), next_step) }
end

-- A miss where the request may wait: the token from the pool, unless a
-- failure a moment ago says to wait a step (then its error, at once).
local function fetch(api)
  local left, last = pace.left(api, "refresh")
  if left > 0 then
    return nil, { kind = last.kind, message = last.message, retryable = true, retry_after = left }
  end
  local t, err = admission.submit(api, "authorization", api.timeout, "bearer", api.key or nil)
  if not t then
    api.next_try = pace.failed(api, "refresh", err)
    return nil, err
  end
  pace.succeeded(api, "refresh")
  return learn(api, t).bearer
end

-- The slow path of authorization(): a token that changed, is near its
-- refresh, or is missing.
function M.authorization(api, set)
  local e = M.current(api)
  if e then
    local left = e.expires_at - ngx.now()
    if left > SAFETY then
      if left <= e.refresh_at then kick(api) end -- the timer is late, or off
      stats.count(api, "authorization_hits")
      return e.bearer
    end
  end
  stats.count(api, "authorization_misses")
  if set then return set_phase_miss(api) end
  return fetch(api)
end

-- Drops tok (nil: the current token) from the dict and the pool's clients,
-- unless the dict holds a newer one; a dropped token's fingerprint stays in
-- the dict so that other workers drop their copy. With tok (a 401's), at
-- most one drop per pace step: a burst of 401s costs a token or two, not
-- one exchange each.
function M.invalidate(api, tok)
  local cur = M.current(api)
  if tok ~= nil then
    if cur and cur.token ~= tok then return true end
    if not pace.take(api, "invalidate") then return true end
  end
  tok = tok or (cur and cur.token)
  if api.mem and api.mem.token == tok then api.mem = nil end
  api.entry = nil
  return admission.submit(api, "invalidate", api.timeout, "invalidate", tok)
end

local function refreshed(api, t)
  pace.succeeded(api, "refresh")
  api.next_try = nil
  learn(api, t)
  stats.count(api, "background_refreshes")
  if api.log_level then
    ngx.log(api.log_level, "ducky: background refresh: token has ", math.floor(t.left), " s left")
  end
end

-- One background refresh check: when the token is near its refresh margin
-- (or missing) and the pace allows, one worker at a time takes the refresh
-- lock and has the token refreshed in the pool; requests keep the current
-- token meanwhile.
local function check(api)
  local e = M.current(api)
  local left = pace.left(api, "refresh")
  if (e and e.expires_at - ngx.now() > e.refresh_at) or left > 0 then
    if left > 0 then api.next_try = ngx.now() + left end
    return
  end
  local dict, owner = api.dict, shared.owner_value()
  local lock = dict and shared.refresh_key(api.key)
  if dict and not shared.take(dict, lock, owner, api.timeout + 5) then return end -- another worker is at it
  local t, err = admission.submit(api, "refresh", api.timeout, "refresh")
  if t then
    refreshed(api, t)
  else
    api.next_try = pace.failed(api, "refresh", err)
    log.refresh_failed(api, checks.explain(api, err))
  end
  if dict then shared.unlock(dict, lock, owner) end
end

-- A fleet's machine and Redis on one token again (ducky.ngx.fleet's sync):
-- one worker of the machine every SYNC_TICKS refresh intervals.
local SYNC_TICKS = 5
local function sync(api)
  local gate = api.key .. ":sync"
  if not api.dict:add(gate, true, SYNC_TICKS * (api.interval or 1)) then return end
  admission.submit(api, "sync", api.timeout, "sync", api.key, api.timeout / 4)
end

tick = function(premature, api)
  if premature then return end
  if api.redis and M.cache_key(api) then pcall(sync, api) end
  local ok, err = pcall(check, api)
  api.refreshing = false
  if not ok then ngx.log(ngx.ERR, "ducky: background refresh: ", tostring(err)) end
end

-- For init_worker_by_lua: learns the cache key and starts the refresh timer.
function M.init_worker(api)
  if not api.interval then return true end
  M.cache_key(api)
  api.refreshing = true
  assert(ngx.timer.at(0, tick, api))
  assert(ngx.timer.every(api.interval, function(premature)
    stats.flush(api)
    if not api.refreshing then
      api.refreshing = true
      tick(premature, api)
    end
  end))
  return true
end

return M
