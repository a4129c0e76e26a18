-- ducky.ngx.store: the token_cache of the thread pool's clients, on the
-- lua_shared_dict every worker shares (runs in the pool's VMs).
--
-- It never raises: a dict that cannot take the token (no memory) leaves it
-- in the process's memory (the C core's), and the failure goes back to the
-- worker as a store_error event in ctx.events, which the worker logs at warn
-- once in a while. ctx is the pool VM's state: ctx.dropping, while set, is
-- the token an invalidation drops (the dict's entry goes only if it holds
-- that very token).
local ngx = ngx
local cjson = require("cjson")
local ffi = require("ffi")
local ducky = require("ducky")
local shared = require("ducky.ngx.shared")

local M = {}

local POLL = 0.01 -- seconds between two tries at the dict's lock

pcall(ffi.cdef, "int usleep(unsigned int usec);")
local function sleep(seconds) ffi.C.usleep(seconds * 1e6) end

-- A store_error event for the worker's log.
function M.failed(ctx, source, reason)
  local events = ctx.events or {}
  events[#events + 1] = { event = "store_error", source = source, reason = reason }
  ctx.events = events
end

-- The dict's entry for key, checked (ducky.check_entry), or nil.
function M.read(dict, key)
  local text = dict:get(key)
  if not text then return nil end
  local ok, entry = pcall(cjson.decode, text)
  if ok and type(entry) == "table" and ducky.check_entry(entry) then return entry end
  return nil
end

local function put(ctx, dict, key, entry)
  local ok, err = dict:set(key, cjson.encode(entry), math.max(entry.expires_at - ngx.now(), 1))
  if not ok then
    dict:delete(key) -- set() may have evicted it, or left an older token there
    M.failed(ctx, "dict", ("lua_shared_dict cannot hold the token (%d bytes): %s; it stays in"
      .. " this process's memory"):format(#entry.access_token, tostring(err)))
  end
end

-- Drops key's entry, when it is the one being dropped (ctx.dropping) or any
-- when none is named, leaving the fingerprint of the dropped token.
local function drop(ctx, dict, key)
  local cur = M.read(dict, key)
  local gone = ctx.dropping or (cur and cur.access_token)
  if ctx.dropping and cur and cur.access_token ~= ctx.dropping then return end
  dict:delete(key)
  if gone then shared.mark_dropped(dict, key, gone) end
end

-- The dict's lock for key, polled until taken or `timeout` passes (one
-- whose holder died is taken at once: ducky.ngx.shared.take). A dict
-- too full to hold even the lock cannot serialize the exchange: go on
-- without it (one exchange per worker at worst, never one per call; the
-- token will not fit either, and that is what gets reported).
local function lock(dict, key, owner, timeout, ttl)
  local name, waited = shared.lock_key(key), 0
  while true do
    local ok, err = shared.take(dict, name, owner, ttl)
    if ok or err == "no memory" then return true end
    if waited >= timeout then return false end
    sleep(POLL)
    waited = waited + POLL
  end
end

-- A { load, store, lock, unlock } table for ducky.client's token_cache.
-- add() is atomic across workers: the lock polls until it succeeds or time is up.
function M.new(ctx, dict, lock_ttl)
  local owners = {}
  return {
    load = function(key) return M.read(dict, key) end,
    store = function(key, entry)
      if entry then put(ctx, dict, key, entry) else drop(ctx, dict, key) end
      dict:incr(shared.gen_key(key), 1, 0) -- after the change: a reader of the new value sees the new token
    end,
    lock = function(key, timeout)
      local owner = shared.owner_value()
      if not lock(dict, key, owner, timeout, lock_ttl) then return false end
      owners[key] = owner
      return true
    end,
    unlock = function(key)
      if owners[key] then shared.unlock(dict, shared.lock_key(key), owners[key]) end
      owners[key] = nil
    end,
  }
end

return M
