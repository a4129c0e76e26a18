-- ducky.ngx.store: the token_cache of the thread pool's clients, on the
-- lua_shared_dict every worker shares (runs in the pool's VMs).
local ngx = ngx
local cjson = require("cjson")
local ffi = require("ffi")
local shared = require("ducky.ngx.shared")

local math, pcall, type = math, pcall, type

local M = {}

local POLL = 0.01 -- seconds between two tries at the dict's lock

pcall(ffi.cdef, "int usleep(unsigned int usec);")
local function sleep(seconds) ffi.C.usleep(seconds * 1e6) end

-- A { load, store, lock, unlock } table for ducky.client's token_cache.
-- add() is atomic across workers: the lock polls until it succeeds or time is up.
function M.new(dict, lock_ttl)
  local owners = {}
  return {
    load = function(key)
      local text = dict:get(key)
      if not text then return nil end
      local ok, entry = pcall(cjson.decode, text)
      return ok and type(entry) == "table" and entry or nil
    end,
    store = function(key, entry)
      if not entry then
        dict:delete(key)
      else
        local ok, err = dict:set(key, cjson.encode(entry), math.max(entry.expires_at - ngx.now(), 1))
        if not ok then error("lua_shared_dict: " .. tostring(err), 0) end
      end
      dict:incr(shared.gen_key(key), 1, 0) -- after the change: a reader of the new value sees the new token
    end,
    lock = function(key, timeout)
      local owner, waited = shared.owner_value(), 0
      while not dict:add(shared.lock_key(key), owner, lock_ttl) do
        if waited >= timeout then return false end
        sleep(POLL)
        waited = waited + POLL
      end
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
