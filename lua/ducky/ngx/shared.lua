-- ducky.ngx's two halves, the worker's Lua VM and the thread pool's VMs,
-- agree here: the module nginx runs in the pool, the answer a VM gives when
-- it needs the configuration, the lua_shared_dict's keys and its lock.
local ngx = ngx
local ffi = require("ffi")
local io, pairs, tostring = io, pairs, tostring

pcall(ffi.cdef, "int getpid(void); int kill(int pid, int sig);")
local C, ESRCH = ffi.C, 3

local M = {}

M.POOL_MODULE = "ducky.ngx.pool" -- what ngx.run_worker_thread loads in a pool VM
M.NEED_CONFIG = "\0ducky.ngx: configuration needed"

-- The dict's keys, per cache key (the C core's) or per configuration id.
function M.lock_key(key) return key .. ":lock" end
function M.refresh_key(key) return key .. ":refresh" end
function M.gen_key(key) return key .. ":gen" end -- bumped on every change of the token
function M.stat_prefix(id) return "ducky:stats:" .. id .. ":" end

-- The last token dropped for key (an invalidation, a 401), by its fingerprint
-- in the dict: workers and pool VMs that still hold it in memory drop theirs.
local function dropped_key(key) return key .. ":dropped" end
function M.mark_dropped(dict, key, token) dict:set(dropped_key(key), ngx.md5(token)) end
function M.was_dropped(dict, key, token) return dict:get(dropped_key(key)) == ngx.md5(token) end

-- A value naming the holder of a lock in the dict: its process id, then a
-- random part (per VM: 8 bytes of /dev/urandom) and a counter.
local seed, counter
function M.owner_value()
  if not seed then
    local f = io.open("/dev/urandom", "rb")
    local bytes = f and f:read(8) or tostring(ngx.now()) .. tostring({})
    if f then f:close() end
    seed = bytes:gsub(".", function(c) return ("%02x"):format(c:byte()) end)
    counter = 0
  end
  counter = counter + 1
  return ("%d:%s:%d"):format(C.getpid(), seed, counter)
end

-- Deletes a lock only while it still holds our value. The dict has no atomic
-- compare-and-delete, so the delete happens only while the lock has more than a
-- second to live: another holder can take it only after it expires, which cannot
-- happen between our get and our delete.
function M.unlock(dict, name, owner)
  if dict:get(name) == owner then
    local ttl = dict:ttl(name)
    if ttl and (ttl == 0 or ttl > 1) then dict:delete(name) end
  end
end

-- Frees the lock `name` when the process that holds it is gone (a worker
-- killed, or crashed, in the middle of an exchange: nginx starts another in
-- its place), rather than have every caller wait for it to expire; true when
-- it did. A process of another user (EPERM) counts as alive.
local function free_orphan(dict, name)
  local owner = dict:get(name)
  local pid = type(owner) == "string" and tonumber(owner:match("^(%d+):"))
  if not pid or pid == C.getpid() or C.kill(pid, 0) == 0 or ffi.errno() ~= ESRCH then return false end
  M.unlock(dict, name, owner)
  return true
end

-- Takes the lock `name` for owner (dict:add's ok, err), once more when it was
-- held by a process that is gone.
function M.take(dict, name, owner, ttl)
  local ok, err = dict:add(name, owner, ttl)
  if not ok and err == "exists" and free_orphan(dict, name) then ok, err = dict:add(name, owner, ttl) end
  return ok, err
end

-- Copies t's fields (a table, or nil) into a new table.
function M.copy(t)
  local o = {}
  for k, v in pairs(t or {}) do o[k] = v end
  return o
end

return M
