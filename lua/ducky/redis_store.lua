-- ducky.redis_store: a Redis-backed token_cache for ducky.client, so that every
-- process (and host) using the same credentials shares one token.
--
--   local store = require("ducky.redis_store").new{ host = "127.0.0.1", port = 6379 }
--   local client = ducky.client{ ..., token_cache = store }
--
-- Options (any other name raises): host, port, prefix ("ducky:"), db,
-- password, timeout (socket seconds, 2), lock_ttl (ms, 30000), redis (an
-- already-connected client with get/set/del/eval: lua-redis' client, or
-- lua-resty-redis' in OpenResty; used as is, never reconnected). Without
-- `redis` the store connects lazily with lua-redis over LuaSocket, sends
-- AUTH/SELECT when set, and drops the connection after any error so that the
-- next call reconnects (e.g. after a Redis restart). With `redis` it needs no
-- LuaSocket: it keeps time with ngx.now and waits for a lock with ngx.sleep in
-- OpenResty, and elsewhere with os.time, trying a held lock once.
--
-- Keys: prefix .. key (the token, as JSON, expiring with it),
-- prefix .. key .. ":lock" (the exchange lock) and, after drop(), one
-- prefix .. key .. ":dropped:" .. SHA-1 of the token per token dropped (never
-- the token), expiring with it: offer() refuses to write such a token back.
-- Errors are raised, and so is
-- a value under a key that is not a token entry (ducky.check_entry); ducky
-- reports them as `store_error` events and carries on from process memory, as
-- if nothing was stored. ducky passes each call a time budget (its last
-- argument, seconds): the store's own connection waits at most that long (and
-- at most `timeout`), so a Redis that stops answering cannot hold a call past
-- its own timeout.
local cjson = require("cjson")
local ducky = require("ducky")
local ngx = rawget(_G, "ngx") -- OpenResty's, when there

local M = {}

local POLL = 0.02 -- seconds between lock attempts
local ATTEMPT = 0.2 -- seconds one lock attempt may take, even with no time left to wait

-- Deletes the lock only while it still holds our random token.
local UNLOCK = [[
if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) end
return 0]]

-- drop(): the entry goes unless it holds another token (a newer one, which
-- stays); the dropped token is marked (KEYS[2] .. its SHA-1) for ARGV[2] ms.
local DROP = [[
local v = redis.call("GET", KEYS[1])
local ok, e = pcall(cjson.decode, v or "null")
if not (ok and type(e) == "table" and e.access_token ~= ARGV[1]) then redis.call("DEL", KEYS[1]) end
redis.call("SET", KEYS[2] .. redis.sha1hex(ARGV[1]), "1", "PX", ARGV[2])
return 1]]

-- offer(): the entry is written unless its token was dropped.
local OFFER = [[
if redis.call("EXISTS", KEYS[2] .. redis.sha1hex(ARGV[1])) == 1 then return 0 end
redis.call("SET", KEYS[1], ARGV[2], "PX", ARGV[3])
return 1]]

local function load_lua_redis()
  local ok, mod = pcall(require, "redis")
  if ok then return mod end
  if not tostring(mod):find("module 'redis' not found", 1, true) then error(mod, 0) end
  -- Debian packages lua-redis (pure Lua) for Lua 5.1-5.3 only, as
  -- /usr/share/lua/5.3/redis.lua; it runs unchanged on 5.4. Look there too,
  -- last and for this one require only, then put package.path back.
  local saved = package.path
  package.path = saved .. ";/usr/share/lua/5.3/?.lua"
  ok, mod = pcall(require, "redis")
  package.path = saved
  if not ok then error(mod, 0) end
  return mod
end

-- The option names and the Lua types each takes.
local OPTIONS = {
  host = { string = true }, port = { number = true, string = true }, prefix = { string = true },
  db = { number = true, string = true }, password = { string = true }, timeout = { number = true },
  lock_ttl = { number = true }, redis = { table = true, userdata = true },
}

local function check_options(opts)
  if type(opts) ~= "table" then
    error("ducky.redis_store.new: options must be a table, not " .. type(opts), 3)
  end
  for k, v in pairs(opts) do
    local types = OPTIONS[k]
    if not types then
      error(("ducky.redis_store.new: unknown option '%s'"):format(tostring(k)), 3)
    elseif not types[type(v)] then
      error(("ducky.redis_store.new: option '%s' must not be a %s"):format(k, type(v)), 3)
    end
  end
  -- values Redis or the socket would refuse on every call (a store_error each
  -- time, and no lock: an exchange per machine), refused here instead
  local port = opts.port ~= nil and tonumber(opts.port)
  if opts.port ~= nil and not (port and port % 1 == 0 and port >= 1 and port <= 65535) then
    error("ducky.redis_store.new: option 'port' must be a whole number from 1 to 65535", 3)
  end
  local ttl = opts.lock_ttl
  if ttl ~= nil and not (ttl % 1 == 0 and ttl >= 1 and ttl < 2 ^ 53) then
    error("ducky.redis_store.new: option 'lock_ttl' must be a whole number of milliseconds, 1 or more", 3)
  end
  if opts.timeout ~= nil and not (opts.timeout > 0 and opts.timeout < math.huge) then
    error("ducky.redis_store.new: option 'timeout' must be a positive number of seconds", 3)
  end
end

-- The clock (seconds) and the sleep of a store: LuaSocket's for its own
-- connection; with a given client, OpenResty's, else os.time and no sleep.
local function time_of(own_connection)
  if own_connection then
    local socket = require("socket") -- needed only here
    return socket.gettime, socket.sleep
  end
  if ngx and ngx.now and ngx.sleep then return ngx.now, ngx.sleep end
  return os.time, nil
end

local function random_token(now)
  local f = io.open("/dev/urandom", "rb")
  local bytes = f and f:read(16)
  if f then f:close() end
  if not bytes or #bytes < 16 then
    bytes = tostring(now()) .. tostring(math.random()) .. tostring({})
  end
  return (bytes:gsub(".", function(c) return ("%02x"):format(c:byte()) end))
end

-- lua-resty-redis answers nil, err on failure and ngx.null for "no value";
-- lua-redis raises and answers nil.
local function value(v)
  if v == nil or type(v) == "userdata" then return nil end
  return v
end

local Store = {}
Store.__index = Store

-- How long one command may wait: the store's timeout, within the call's budget.
function Store:wait(budget)
  local t = tonumber(budget) or self.timeout
  return math.max(math.min(t, self.timeout), 0.001)
end

function Store:connection(budget)
  if self.redis then return self.redis end
  if not self.conn then
    self.lib = self.lib or load_lua_redis()
    local conn = self.lib.connect(self.host, self.port, self:wait(budget))
    self.conn = conn -- from here on, a failure below closes it
    if self.password then conn:auth(self.password) end
    if self.db then conn:select(self.db) end
  end
  return self.conn
end

function Store:drop_connection()
  local conn = self.conn
  self.conn = nil
  if conn and conn.network and conn.network.socket then
    pcall(conn.network.socket.close, conn.network.socket)
  end
end

-- Runs one command within budget seconds; raises on any failure, dropping our
-- own connection first.
function Store:call(budget, cmd, ...)
  local args, n = { ... }, select("#", ...)
  local ok, res, err = pcall(function()
    local conn = self:connection(budget)
    local sock = conn == self.conn and conn.network and conn.network.socket
    if sock then sock:settimeout(self:wait(budget), "t") end
    return conn[cmd](conn, (table.unpack or unpack)(args, 1, n))
  end)
  if ok and (res ~= nil or err == nil) then return value(res) end
  self:drop_connection()
  error(("redis %s: %s"):format(cmd, tostring(ok and err or res)), 0)
end

-- The entry under key, or nil; raises when the value there is not one.
function Store:load(key, budget)
  local name = self.prefix .. key
  local s = self:call(budget, "get", name)
  if type(s) ~= "string" then return nil end
  local ok, t = pcall(cjson.decode, s)
  local left, why = ducky.check_entry(ok and t or nil)
  if not left then
    error(("redis %s holds no token entry (%s)"):format(name, ok and why or "not JSON"), 0)
  end
  return {
    access_token = t.access_token,
    token_type = type(t.token_type) == "string" and t.token_type or "Bearer",
    expires_at = t.expires_at,
    expires_in = type(t.expires_in) == "number" and t.expires_in or nil,
  }
end

-- The entry as stored, and the ms it has left (nil: none).
function Store:encode(entry)
  local ms = entry and math.floor((entry.expires_at - self.now()) * 1000)
  if not ms or ms <= 0 then return nil end
  return cjson.encode{
    access_token = entry.access_token, token_type = entry.token_type or "Bearer",
    expires_at = entry.expires_at, expires_in = entry.expires_in,
  }, ms
end

function Store:store(key, entry, budget)
  local json, ms = self:encode(entry)
  if not json then
    self:call(budget, "del", self.prefix .. key)
    return
  end
  self:call(budget, "set", self.prefix .. key, json, "PX", ms)
end

-- Drops token under key (the entry goes unless it holds another token), and
-- remembers it dropped for ttl seconds, so that offer() never writes it back.
function Store:drop(key, token, ttl, budget)
  local name = self.prefix .. key
  self:call(budget, "eval", DROP, 2, name, name .. ":dropped:", token,
    math.max(math.floor(ttl * 1000), 1))
end

-- Writes entry under key unless its token was dropped: true when written.
function Store:offer(key, entry, budget)
  local json, ms = self:encode(entry)
  if not json then return false end
  local name = self.prefix .. key
  return self:call(budget, "eval", OFFER, 2, name, name .. ":dropped:", entry.access_token, json, ms) == 1
end

-- true once we hold key's exchange lock; false when `timeout` seconds pass
-- first (at once without a way to sleep).
function Store:lock(key, timeout)
  local name = self.prefix .. key .. ":lock"
  local token = random_token(self.now)
  local deadline = self.now() + (tonumber(timeout) or 0)
  while true do
    local res = self:call(math.max(deadline - self.now(), ATTEMPT), "set", name, token,
      "NX", "PX", self.lock_ttl)
    if res == true or res == "OK" then
      self.held[key] = token
      return true
    end
    local left = deadline - self.now()
    if left <= 0 or not self.sleep then return false end
    self.sleep(math.min(POLL, left))
  end
end

function Store:unlock(key, budget)
  local token = self.held[key]
  if not token then return end
  self.held[key] = nil
  self:call(budget, "eval", UNLOCK, 1, self.prefix .. key .. ":lock", token)
end

function M.new(opts)
  opts = opts or {}
  check_options(opts)
  local now, sleep = time_of(opts.redis == nil)
  local self = setmetatable({
    now = now, sleep = sleep,
    host = opts.host or "127.0.0.1",
    port = tonumber(opts.port) or 6379,
    prefix = opts.prefix or "ducky:",
    db = opts.db,
    password = opts.password,
    timeout = opts.timeout or 2,
    lock_ttl = ("%d"):format(opts.lock_ttl or 30000), -- as Redis reads it: 5e3 is 5000, not 5000.0
    redis = opts.redis,
    held = {}, -- key -> the random token of the lock we hold
  }, Store)
  -- ducky calls token_cache.load(key, ...) as plain functions, not methods.
  return {
    load = function(key, timeout) return self:load(key, timeout) end,
    store = function(key, entry, timeout) return self:store(key, entry, timeout) end,
    drop = function(key, token, ttl, timeout) return self:drop(key, token, ttl, timeout) end,
    offer = function(key, entry, timeout) return self:offer(key, entry, timeout) end,
    lock = function(key, timeout) return self:lock(key, timeout) end,
    unlock = function(key, timeout) return self:unlock(key, timeout) end,
    close = function() self:drop_connection() end,
  }
end

return M
