-- ducky.ngx: the Ducky API from nginx (lua-nginx-module / OpenResty) without
-- blocking the event loop.
--
--   thread_pool ducky threads=32;                    # main context
--   lua_worker_thread_vm_pool_size 32;               # http context
--   lua_shared_dict ducky_tokens 1m;                 # http context
--   init_by_lua_block        { API = require("ducky.ngx").new{ threads = 32 } }
--   init_worker_by_lua_block { API:init_worker() }   -- background token refresh
--
--   local res, err = API:request("GET", "/footprints", { query = { year = 2026 } })
--   ngx.req.set_header("Authorization", API:authorization())  -- before proxy_pass
--
-- Calls run on the nginx thread pool (ngx.run_worker_thread): the request's
-- coroutine yields while a pool thread waits on libcurl. Each worker admits at
-- most `threads` calls to the pool at once; the others wait in the event loop,
-- inside their timeout, so no call is ever refused for want of a thread or a
-- thread VM, and request() calls that wait go to the pool together, as one
-- client:batch. Tokens live in the lua_shared_dict, shared by every worker:
-- authorization() reads it in the event loop, and only a miss goes to the
-- pool; a timer started by init_worker() refreshes the token ahead of its
-- refresh margin, one worker at a time.
--
-- The rooms: this file is the API (the object in the worker's own Lua VM);
-- ducky/ngx/pool.lua and store.lua run in the thread pool's VMs;
-- admission.lua (queue, batches, the hop to the pool), token.lua (the token
-- in the worker, the background refresh), stats.lua, log.lua, options.lua
-- (new{}'s checks) and shared.lua (what both halves agree on).
local ngx = ngx
local ducky = require("ducky")
local admission = require("ducky.ngx.admission")
local options = require("ducky.ngx.options")
local stats = require("ducky.ngx.stats")
local token = require("ducky.ngx.token")

local M = {}

-- The phases where nginx lets Lua wait on the thread pool.
local CALL_PHASES = { rewrite = true, access = true, content = true, timer = true }

local get_phase, now = ngx.get_phase, ngx.now -- resty.core's, when loaded in a worker

local Api = {}
Api.__index = Api

-- What crossing the VM boundary took away: the error object, and headers
-- that are case-insensitive on lookup.
local function as_error(t)
  if type(t) ~= "table" then return t end
  t.raised, t.pool = nil, nil -- ducky.ngx's own marks
  if type(t.headers) == "table" then ducky.headers(t.headers) end
  return ducky.error(t)
end

local function as_result(res, err)
  if type(res) == "table" and type(res.headers) == "table" then ducky.headers(res.headers) end
  return res, err
end

local function phase_error(method, phase)
  error(("ducky.ngx: api:%s() is not allowed in the %s phase: nginx lets Lua wait on its"
    .. " thread pool in rewrite, access, content and timer phases only"):format(method, phase), 3)
end

-- Every method that may wait starts here: the phase, and the settings that
-- depend on the worker's environment.
local function enter(self, method)
  local phase = get_phase()
  if not CALL_PHASES[phase] then phase_error(method, phase) end
  if not self.resolved then options.resolve(self) end
end

local function api_call(self, method, what, ...)
  local res, err = admission.submit(self, method, self.timeout, what, ...)
  if res == nil then return nil, as_error(err) end
  return res
end

local function timeout_of(self, method, opts)
  local timeout = type(opts) == "table" and opts.timeout or self.timeout
  if type(timeout) ~= "number" then
    error("ducky.ngx: " .. method .. ": timeout must be a number", 3)
  end
  return timeout
end

function Api:request(method, path, opts)
  enter(self, "request")
  local timeout = timeout_of(self, "request", opts)
  local res, err = admission.submit(self, "request", timeout, "request", method, path, opts)
  if res == nil then return nil, as_error(err) end
  return as_result(res)
end

function Api:ping()
  enter(self, "ping")
  return as_result(api_call(self, "ping", "ping"))
end

function Api:ping_protected()
  enter(self, "ping_protected")
  return as_result(api_call(self, "ping_protected", "ping_protected"))
end

function Api:batch(requests, opts)
  enter(self, "batch")
  local timeout = timeout_of(self, "batch", opts)
  local list, err = admission.submit(self, "batch", timeout, "batch", requests, opts)
  if list == nil then return nil, as_error(err) end
  for _, r in ipairs(list) do
    if r.err then r.err = as_error(r.err) else as_result(r.res) end
  end
  return list
end

-- access_token, seconds_left, { source, fingerprint } or nil, err
function Api:token()
  enter(self, "token")
  local t, err = api_call(self, "token", "token")
  if not t then return nil, err end
  return t[1], t[2], t[3]
end

-- Drops the token from the dict and this worker. With a token (or its
-- "Bearer …" header value), only if the dict still holds that very token: a
-- late 401 must not discard a token another request just refreshed.
function Api:invalidate(tok)
  enter(self, "invalidate")
  if tok ~= nil then
    if type(tok) ~= "string" then error("ducky.ngx: invalidate: token must be a string", 2) end
    tok = tok:gsub("^[Bb]earer%s+", "")
    local entry = token.cached_entry(self)
    if entry and entry.token ~= tok then return true end
  end
  return api_call(self, "invalidate", "invalidate")
end

-- The key under which the C core keeps this configuration's token.
function Api:cache_key()
  return token.cache_key(self)
end

-- "Bearer <token>" for an Authorization header, or nil, err. A token in the
-- dict is read in the event loop; only a miss goes to the pool. In
-- set_by_lua, which cannot wait, a miss gives nil and an error at once (and
-- starts a fetch in the background). The fast path: the token this worker
-- decoded last is still the dict's (its generation did not move) and far from
-- its refresh.
function Api:authorization()
  local phase = get_phase()
  local set = phase == "set"
  if not CALL_PHASES[phase] and not set then phase_error("authorization", phase) end
  local e = self.entry
  if e and self.dict:get(self.gen_key) == self.gen then
    local t = now()
    if e.expires_at - t > e.refresh_at then
      local counts = self.counts
      counts.authorization_hits = (counts.authorization_hits or 0) + 1
      if t - self.flushed_at >= 1 then stats.flush(self) end
      return e.bearer
    end
  end
  if not self.resolved then options.resolve(self) end
  local bearer, err = token.authorization(self, set)
  if not bearer then return nil, as_error(err) end
  return bearer
end

-- For init_worker_by_lua: learns the cache key and starts the refresh timer.
function Api:init_worker()
  local phase = get_phase()
  if phase ~= "init_worker" then
    error(("ducky.ngx: api:init_worker() belongs in init_worker_by_lua, not the %s phase")
      :format(phase), 2)
  end
  if not self.resolved then options.resolve(self) end
  return token.init_worker(self)
end

-- This worker's counts, and `all`: the same summed over every worker (the dict
-- keeps them; another worker's reach it within a second). Fields of
-- client:stats() plus queued, batched, queue_timeouts, authorization_hits,
-- authorization_misses, background_refreshes.
function Api:stats()
  return stats.report(self)
end

function Api:__tostring()
  return ("ducky.ngx (pool %s, dict %s, %d threads)"):format(self.pool,
    tostring(self.dict_name), admission.size(self.pool))
end

-- opts: ducky.client options (plain data), plus pool (thread pool name,
-- "ducky"), shared_dict (lua_shared_dict for tokens, "ducky_tokens"; false:
-- none), threads (pool calls in flight per worker, 10), log_level ("info";
-- false: no events logged) and refresh_interval (seconds between background
-- refresh checks, 1; false: no timer). Raises for a bad option.
function M.new(opts)
  local ok, fields = pcall(options.parse, opts)
  local err = not ok and fields
  if ok then
    local set, msg = pcall(admission.set_threads, fields.pool, fields.threads)
    if not set then err = msg end
  end
  if err then error(err, 2) end
  return setmetatable(fields, Api)
end

return M
