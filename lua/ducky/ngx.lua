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
-- most `threads` calls to the pool at once (its runners); the others wait in
-- the event loop, inside their timeout, so no call is ever refused for want of
-- a thread or a thread VM, and request() calls made together, or waiting
-- together, go to the pool as one client:batch when their path is steady
-- (ducky.ngx.steady). Tokens live in the lua_shared_dict, shared by every worker:
-- authorization() reads it in the event loop, and only a miss goes to the
-- pool; a timer started by init_worker() refreshes the token ahead of its
-- refresh margin, one worker at a time.
--
-- The rooms: this file is the API (the object in the worker's own Lua VM);
-- ducky/ngx/pool.lua and store.lua run in the thread pool's VMs;
-- admission.lua (queue, runners, batches, the hop to the pool), steady.lua,
-- token.lua (the token in the worker, the background refresh), stats.lua,
-- log.lua, options.lua (new{}'s checks) and shared.lua (what both halves
-- agree on).
local ngx = ngx
local ducky = require("ducky")
local admission = require("ducky.ngx.admission")
local checks = require("ducky.ngx.checks")
local options = require("ducky.ngx.options")
local stats = require("ducky.ngx.stats")
local token = require("ducky.ngx.token")

local M = {}

-- The phases where nginx lets Lua wait on the thread pool.
local CALL_PHASES = { rewrite = true, access = true, content = true, timer = true }

local get_phase, now = ngx.get_phase, ngx.now -- resty.core's, when loaded in a worker

local Api = {}
Api.__index = Api

-- What crossing the VM boundary took away: the error object (with what the
-- start-up checks found that explains it), and headers that are
-- case-insensitive on lookup.
local function as_error(self, t)
  if type(t) ~= "table" then return t end
  checks.explain(self, t)
  t.raised, t.pool = nil, nil -- ducky.ngx's own marks
  if type(t.headers) == "table" then ducky.headers(t.headers) end
  return ducky.error(t)
end

-- JSON too deep for nginx to copy out of a pool VM comes as res.body alone
-- (ducky.ngx.pool): decoded here, as the client decodes it.
local json_decode
local function as_result(res, err)
  if type(res) ~= "table" then return res, err end
  if type(res.headers) == "table" then ducky.headers(res.headers) end
  if res.json_in_body then
    if not json_decode then
      local cj = require("cjson").new()
      cj.decode_invalid_numbers(false)
      json_decode = cj.decode
    end
    res.json_in_body = nil
    local ok, v = pcall(json_decode, res.body)
    res.json = ok and v or nil
  end
  return res, err
end

local function phase_error(method, phase)
  error(("ducky.ngx: api:%s() is not allowed in the %s phase: nginx lets Lua wait on its"
    .. " thread pool in rewrite, access, content and timer phases only"):format(method, phase), 3)
end

-- Once per worker: the settings that depend on its environment, and the
-- start-up checks of what nginx's configuration gives ducky.ngx.
local function settle(self)
  options.resolve(self)
  if get_phase() == "init" then return end -- the master (cache_key()): the workers settle again
  self.key = nil -- the worker's environment is the pool clients'
  checks.worker(self, token.cache_key(self))
  self.resolved = true
end

-- Every method that may wait starts here: the phase, and the settings.
local function enter(self, method)
  local phase = get_phase()
  if not CALL_PHASES[phase] then phase_error(method, phase) end
  if not self.resolved then settle(self) end
end

local function api_call(self, method, what, ...)
  local res, err = admission.submit(self, method, self.timeout, what, ...)
  if res == nil then return nil, as_error(self, err) end
  return res
end

-- A call's arguments, checked where it is made: the caller hears of a
-- mistake at once (raised, as ducky.client raises), and a call queued
-- with others never fails them. Returns the call's timeout.
local function check_opts(self, where, opts)
  if opts == nil then return self.timeout end
  if type(opts) ~= "table" then
    error(("ducky.ngx: %s: opts must be a table, not %s"):format(where, type(opts)), 0)
  end
  local timeout = opts.timeout
  if timeout == nil then timeout = self.timeout end
  if type(timeout) ~= "number" or not (timeout > 0 and timeout < math.huge) then
    error(("ducky.ngx: %s: option 'timeout' must be a positive number of seconds, not %s")
      :format(where, tostring(opts.timeout)), 0)
  end
  options.check_plain(opts, "opts", {}, "ducky.ngx: " .. where .. ":")
  return timeout
end

local function check_call(where, method, path)
  if type(method) ~= "string" or type(path) ~= "string" then
    error(("ducky.ngx: %s: method and path must be strings, not %s and %s")
      :format(where, type(method), type(path)), 0)
  end
end

function Api:request(method, path, opts)
  enter(self, "request")
  check_call("api:request", method, path)
  local timeout = check_opts(self, "api:request", opts)
  local res, err = admission.submit(self, "request", timeout, "request", method, path, opts)
  if res == nil then return nil, as_error(self, err) end
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
  if type(requests) ~= "table" then
    error("ducky.ngx: api:batch: requests must be a table, not " .. type(requests), 0)
  end
  for i, r in ipairs(requests) do
    local where = "api:batch: item " .. i
    if type(r) ~= "table" then error(("ducky.ngx: %s must be a table, not %s"):format(where, type(r)), 0) end
    check_call(where, r[1], r[2])
    check_opts(self, where, r[3])
  end
  local timeout = check_opts(self, "api:batch", opts)
  local list, err = admission.submit(self, "batch", timeout, "batch", requests, opts)
  if list == nil then return nil, as_error(self, err) end
  for _, r in ipairs(list) do
    if r.err then r.err = as_error(self, r.err) else as_result(r.res) end
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

-- Drops the token from the dict and the pool's clients. With a token (or
-- its "Bearer …" header value), only if the dict still holds that very
-- token: a late 401 must not discard a token another request just
-- refreshed; and at most once per back-off step, so that an API answering
-- 401 to everything does not turn each request into an exchange.
function Api:invalidate(tok)
  enter(self, "invalidate")
  if tok ~= nil then
    if type(tok) ~= "string" then error("ducky.ngx: invalidate: token must be a string", 2) end
    tok = tok:gsub("^[Bb]earer%s+", "")
  end
  local res, err = token.invalidate(self, tok)
  if res == nil then return nil, as_error(self, err) end
  return res
end

-- The key under which the C core keeps this configuration's token.
function Api:cache_key()
  if not self.resolved then settle(self) end
  return token.cache_key(self)
end

-- Whether the token this worker decoded last is still the dict's: its
-- generation did not move. Read once per tick of nginx's clock (a
-- millisecond, or an iteration of the event loop when slower): a change
-- another worker makes within that tick races with the request either way.
local function current(self, t)
  if t == self.gen_read_at then return true end
  local dict = self.dict
  if dict and dict:get(self.gen_key) ~= self.gen then return false end
  self.gen_read_at = t
  return true
end

-- "Bearer <token>" for an Authorization header, or nil, err. A token in the
-- dict is read in the event loop; only a miss goes to the pool. In
-- set_by_lua, which cannot wait, a miss gives nil and an error at once (and
-- starts a fetch in the background). The fast path: the token this worker
-- decoded last is still the dict's and far from its refresh.
function Api:authorization()
  local phase = get_phase()
  local set = phase == "set"
  if not CALL_PHASES[phase] and not set then phase_error("authorization", phase) end
  local e = self.entry
  if e then
    local t = now()
    if e.expires_at - t > e.refresh_at and current(self, t) then
      local counts = self.counts
      counts.authorization_hits = (counts.authorization_hits or 0) + 1
      if t - self.flushed_at >= 1 then stats.flush(self) end
      return e.bearer
    end
  end
  if not self.resolved then settle(self) end
  local bearer, err = token.authorization(self, set)
  if not bearer then return nil, as_error(self, err) end
  return bearer
end

-- For init_worker_by_lua: learns the cache key and starts the refresh timer.
function Api:init_worker()
  local phase = get_phase()
  if phase ~= "init_worker" then
    error(("ducky.ngx: api:init_worker() belongs in init_worker_by_lua, not the %s phase")
      :format(phase), 2)
  end
  if not self.resolved then settle(self) end
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
