-- ducky.ngx: Ducky API calls from nginx (lua-nginx-module / OpenResty) that
-- never block the event loop.
--
--   thread_pool ducky threads=32;               # main context
--   lua_shared_dict ducky_tokens 1m;            # http context
--
--   local api = require("ducky.ngx").new{ ca_file = "…" }   -- any ducky.client option
--   local res, err = api:request("GET", "/footprints", { query = { year = 2026 } })
--
-- Each call runs on the nginx thread pool (ngx.run_worker_thread): the request's
-- coroutine yields and the worker keeps serving other requests while libcurl
-- waits on the network. Inside the pool every thread keeps one ducky client per
-- configuration, so connections stay alive between calls; the process-wide
-- token cache is shared by the threads of a worker, and a token store on the
-- lua_shared_dict is shared by every worker: one token exchange for them all.
--
-- Calls may be made where ngx.run_worker_thread may: rewrite_by_lua*,
-- access_by_lua*, content_by_lua* (not init*, set*, header/body filters, log).
local M = {}

local DEFAULT_POOL = "ducky"
local DEFAULT_DICT = "ducky_tokens"
local LOCK_TTL = 30 -- seconds a lock may be held by a thread that died

-- ---- in the request's Lua VM ----------------------------------------------

local Api = {}
Api.__index = Api

-- opts: ducky.client options (plain data: strings, numbers, booleans, tables
-- of them; no functions), plus `pool` (thread pool name, "ducky") and
-- `shared_dict` (lua_shared_dict for tokens, "ducky_tokens"; false: none).
function M.new(opts)
  opts = opts or {}
  local copts = {}
  for k, v in pairs(opts) do
    if k ~= "pool" and k ~= "shared_dict" then copts[k] = v end
  end
  local dict = opts.shared_dict
  if dict == nil then dict = DEFAULT_DICT end
  return setmetatable({ pool = opts.pool or DEFAULT_POOL, dict = dict or nil, copts = copts }, Api)
end

local function call(self, what, ...)
  local ok, res, err = ngx.run_worker_thread(self.pool, "ducky.ngx", "run", self.copts, self.dict,
    what, ...)
  if not ok then -- the pool could not run it: a configuration problem
    return nil, require("ducky").error{ kind = "config", message = "ngx.run_worker_thread: "
      .. tostring(res) }
  end
  if err then return nil, require("ducky").error(err) end
  return res
end

function Api:request(method, path, opts)
  return call(self, "request", method, path, opts)
end

function Api:ping()
  return call(self, "ping")
end

function Api:ping_protected()
  return call(self, "ping_protected")
end

-- ---- in the thread pool's Lua VMs --------------------------------------------

-- A token store on a lua_shared_dict (usable inside worker threads).
local function shared_store(name)
  local dict = ngx.shared[name]
  if not dict then error("lua_shared_dict " .. name .. " is not configured", 0) end
  local cjson = require("cjson")
  local sleep
  local ok_ffi, ffi = pcall(require, "ffi")
  if ok_ffi then
    pcall(ffi.cdef, "int usleep(unsigned int usec);")
    sleep = function(s) ffi.C.usleep(s * 1e6) end
  end
  return {
    load = function(key)
      local text = dict:get(key)
      local ok, entry = pcall(cjson.decode, text or "")
      return ok and type(entry) == "table" and entry or nil
    end,
    store = function(key, entry)
      if entry then
        dict:set(key, cjson.encode(entry), math.max(entry.expires_at - os.time(), 1))
      else
        dict:delete(key)
      end
    end,
    -- add() is atomic across workers; poll until it succeeds or time is up
    lock = function(key, timeout)
      local waited = 0
      while not dict:add(key .. ":lock", true, LOCK_TTL) do
        if not sleep or waited >= timeout then return false end
        sleep(0.01)
        waited = waited + 0.01
      end
      return true
    end,
    unlock = function(key)
      dict:delete(key .. ":lock")
    end,
  }
end

local clients = {} -- per thread VM: configuration key -> ducky client

local function config_key(copts, dict)
  local names = {}
  for k in pairs(copts) do names[#names + 1] = k end
  table.sort(names)
  local parts = { tostring(dict) }
  for _, k in ipairs(names) do
    local v = copts[k]
    parts[#parts + 1] = k .. "=" .. (type(v) == "table" and require("cjson").encode(v) or tostring(v))
  end
  return table.concat(parts, "\0")
end

-- Errors cross back as plain tables (no metatables between VMs).
local function plain(err)
  local t = {}
  for k, v in pairs(err) do t[k] = v end
  return t
end

function M.run(copts, dict, what, ...)
  local key = config_key(copts, dict)
  local client = clients[key]
  if not client then
    local ducky = require("ducky")
    local o = {}
    for k, v in pairs(copts) do o[k] = v end
    if dict then o.token_cache = shared_store(dict) end
    client = ducky.client(o)
    clients[key] = client
  end
  local res, err = client[what](client, ...)
  if not res then return nil, plain(err) end
  return res
end

return M
