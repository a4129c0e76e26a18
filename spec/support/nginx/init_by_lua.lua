-- The spec's Lua in nginx (spec/nginx_*_spec.lua): run from init_by_lua beside
-- the example's own API; spec/support/nginx/locations.conf calls it.
local cjson = require("cjson")
-- luacheck: globals SPEC API, read_globals ngx
local ducky_ngx = require("ducky.ngx")
local token_store = require("ducky.ngx.store")

SPEC = {}

local function env(name) return os.getenv(name) end

-- SPEC[name] = new{ opts }, on the credential DUCKY_SPEC_<name> names (its
-- secret is the stand-in's "secret-" .. id), when the spec sets it.
local function other(name, opts)
  local id = env("DUCKY_SPEC_" .. name)
  if not id then return end
  opts.client_id, opts.client_secret = id, "secret-" .. id
  SPEC[name] = ducky_ngx.new(opts)
end

-- Tokens that live a few seconds: the background refresh seen at work.
other("SHORT", { timeout = 5, refresh_margin = 2, refresh_interval = 0.2, log_level = "notice" })
-- No background refresh: authorization() in set_by_lua misses at first.
other("LAZY", { timeout = 5 })
-- No shared dict: each worker's own token.
other("NODICT", { timeout = 5, shared_dict = false })
-- A dict too small for any token.
other("TINY", { timeout = 5, shared_dict = "tiny", refresh_interval = false })
-- Refreshes that fail while the dict's token is still valid: no retries, no
-- timer (authorization() starts the refreshes).
other("FLAKY", { timeout = 3, retries = 0, refresh_margin = 2, refresh_interval = false })
-- A machine of a fleet: Redis (on DUCKY_SPEC_REDIS_PORT) behind the dict,
-- and a quick background refresh (its sync with Redis every second).
other("FLEET", { timeout = 5, refresh_interval = 0.2, log_level = "notice",
  redis = { port = tonumber(env("DUCKY_SPEC_REDIS_PORT")), timeout = 0.5 } })
-- Two threads for the whole worker: admission control at work.
SPEC.SMALL = ducky_ngx.new{ pool = "small", threads = 2, timeout = tonumber(env("DUCKY_SPEC_TIMEOUT")) or 10,
  retries = 0 }
-- One thread, 1 s calls: a request that goes away leaves its slot behind.
SPEC.ABORT = ducky_ngx.new{ pool = "abort", threads = 1, timeout = 1, retries = 0 }
-- A thread pool nginx does not have; its refresh timer runs every 50 ms
-- when DUCKY_SPEC_NOPOOL_TIMER is set (read here: nginx clears its workers'
-- environment).
SPEC.NOPOOL = ducky_ngx.new{ pool = "nope", refresh_interval = 0.05 }
SPEC.NOPOOL_TIMER = env("DUCKY_SPEC_NOPOOL_TIMER") ~= nil

local METHODS = {
  authorization = function() return API:authorization() end,
  request = function() return API:request("GET", "/echo") end,
  ping = function() return API:ping() end,
  ping_protected = function() return API:ping_protected() end,
  batch = function() return API:batch({ { "GET", "/echo" } }) end,
  token = function() return API:token() end,
  invalidate = function() return API:invalidate() end,
}

-- Every method of API from the current phase: what each returned or raised.
function SPEC.try_all()
  local out = {}
  for name, fn in pairs(METHODS) do
    local ok, a, b = pcall(fn)
    if not ok then
      out[name] = { raised = tostring(a) }
    elseif a == nil then
      out[name] = { err = tostring(b) }
    else
      out[name] = { ok = type(a) == "table" and (a.status or #a) or a }
    end
  end
  return out
end

-- What the phases a request cannot wait in make of the calls, kept in the dict.
function SPEC.record(phase)
  ngx.shared.spec:set(phase, cjson.encode(SPEC.try_all()))
end

-- A clock made of nginx timers: the dict's "ticks" counts 50 ms steps of
-- the timer wheel (the specs wait on it rather than on their own clock).
local function ticks(premature)
  if not premature then ngx.shared.spec:incr("ticks", 1, 0) end
end

function SPEC.init_worker()
  SPEC.record("init_worker")
  if SPEC.SHORT then SPEC.SHORT:init_worker() end
  if SPEC.FLEET then SPEC.FLEET:init_worker() end
  if SPEC.NOPOOL_TIMER then
    SPEC.NOPOOL:init_worker()
    assert(ngx.timer.every(0.05, ticks))
  end
end

-- The phases that may wait: authorization(), request() and stats().
function SPEC.report()
  local bearer, err = API:authorization()
  local res, rerr = API:request("GET", "/echo")
  local tok = API:token()
  return cjson.encode{ phase = ngx.get_phase(), authorization = bearer or tostring(err),
    token = tok, request = res and res.json.client_id or tostring(rerr) }
end

-- The same from a timer started here, waited for (at most 5 s).
function SPEC.report_from_timer()
  local key = "timer:" .. ngx.now() .. ":" .. math.random()
  ngx.timer.at(0, function() ngx.shared.spec:set(key, SPEC.report()) end)
  for _ = 1, 500 do
    local v = ngx.shared.spec:get(key)
    if v then return v end
    ngx.sleep(0.01)
  end
  return "timer did not report"
end

-- The shared-dict lock: unlock deletes only a lock that is still ours.
function SPEC.lock()
  local dict = ngx.shared.spec
  local store = token_store.new({}, dict, 30)
  local out = {}
  out.first = store.lock("k", 1)
  out.second = store.lock("k", 0.05) -- held: not taken within 0.05 s
  store.unlock("k")
  out.released = dict:get("k:lock") == nil
  out.again = store.lock("k", 1)
  dict:set("k:lock", "someone else", 30) -- ours expired and another holder took it
  store.unlock("k")
  out.kept_other = dict:get("k:lock") == "someone else"
  dict:delete("k:lock")
  out.third = store.lock("k", 1)
  dict:set("k:lock", dict:get("k:lock"), 0.5) -- ours, but about to expire
  store.unlock("k")
  out.kept_expiring = dict:get("k:lock") ~= nil
  return cjson.encode(out)
end
