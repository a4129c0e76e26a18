-- ducky.ngx.fleet: a fleet of nginx machines on one token, through Redis
-- behind each machine's lua_shared_dict (runs in the thread pool's VMs, as
-- the token_cache of their clients, with ducky.redis_store's connection).
--
-- Redis is an optimisation, never a dependency. A load takes the newest of
-- the dict's token and Redis's (Redis's goes into the dict); the exchange
-- lock is the dict's (the machine's workers) and then Redis's (the fleet's);
-- a token is stored in both. When Redis fails (down, slow, restarted,
-- answering garbage), the failure goes back to the worker as a store_error
-- event and the machine leaves Redis alone for RETRY seconds (a mark in the
-- dict, for all its workers): it goes on with its dict alone, so its
-- exchanges stay single-flight among its own workers: one per machine at
-- worst. sync(), from the background refresh, brings the fleet back onto
-- one token once Redis answers: the newer token wins (Redis's is adopted,
-- or ours written there), which every machine agrees on; a token one
-- machine dropped (an invalidation, a 401) is never written back, so the
-- machine that dropped it does not meet it again.
local ngx = ngx
local redis_store = require("ducky.redis_store")
local store = require("ducky.ngx.store")

local M = {}

M.RETRY = 5
M.DROPPED_TTL = 86400 -- seconds a dropped token of unknown life stays marked

-- Newer: the later expiry (the token's text breaks a tie), so that every
-- machine picks the same of two.
local function newer(a, b)
  if not b then return a ~= nil end
  if not a then return false end
  if a.expires_at ~= b.expires_at then return a.expires_at > b.expires_at end
  return a.access_token > b.access_token
end

local Fleet = {}
Fleet.__index = Fleet

function Fleet:up() return self.dict:get(self.down_key) == nil end

-- Reports a Redis failure; `leave`: and leave Redis alone a while.
function Fleet:failed(err, leave)
  store.failed(self.ctx, "redis", tostring(err))
  if leave then self.dict:set(self.down_key, true, M.RETRY) end
end

-- Redis's entry for key: ok, entry (nil: none). A value that is not an
-- entry raises in redis_store as a dead server does: reported, not (yet) a
-- reason to leave Redis alone; the write or the lock that follows tells.
function Fleet:remote(key, budget)
  local ok, r = pcall(self.R.load, key, budget)
  if not ok then self:failed(r, false) end
  return ok, ok and r or nil
end

function Fleet:put_remote(key, entry, budget)
  local ok, err = pcall(self.R.store, key, entry, budget)
  if not ok then self:failed(err, true) end
  return ok
end

function Fleet:load(key, budget)
  local d = self.local_.load(key)
  if not self:up() then return d end
  local _, r = self:remote(key, budget)
  if newer(r, d) then
    self.local_.store(key, r)
    return r
  end
  return d
end

-- A drop (entry nil) leaves a newer token alone in Redis as in the dict
-- (ctx.dropping names the one dropped, else the dict's), and Redis keeps
-- the dropped token's fingerprint while it would have lived, so that no
-- machine's sync() writes it back.
function Fleet:store(key, entry, budget)
  local d = not entry and self.local_.load(key)
  self.local_.store(key, entry)
  if not self:up() then return end
  local gone = not entry and (self.ctx.dropping or (d and d.access_token))
  if not gone then return self:put_remote(key, entry, budget) end
  local ttl = d and d.access_token == gone and d.expires_at - ngx.now() or M.DROPPED_TTL
  local ok, err = pcall(self.R.drop, key, gone, math.max(ttl, 1), budget)
  if not ok then self:failed(err, true) end
end

function Fleet:lock(key, timeout)
  local start = ngx.now()
  if not self.local_.lock(key, timeout) then return false end
  if not self:up() then return true end
  local ok, got = pcall(self.R.lock, key, math.max(timeout - (ngx.now() - start), 0))
  if not ok then -- Redis in trouble: the machine's lock will do
    self:failed(got, true)
    return true
  end
  if not got then -- another machine is exchanging: the caller loads again
    self.local_.unlock(key)
    return false
  end
  self.held[key] = true
  return true
end

function Fleet:unlock(key, budget)
  if self.held[key] then
    self.held[key] = nil
    local ok, err = pcall(self.R.unlock, key, budget)
    if not ok then self:failed(err, true) end
  end
  self.local_.unlock(key)
end

-- The machine and Redis on one token: the newer of the two; ours is never
-- written where another machine dropped it (the machine keeps serving it
-- until Redis holds a newer one). Returns what it did: "adopted",
-- "written", "kept", "same", or nil when Redis is left alone.
function Fleet:sync(key, budget)
  if not self:up() then return nil end
  local d = self.local_.load(key)
  local ok, r = self:remote(key, budget)
  if newer(r, d) then
    self.local_.store(key, r)
    return "adopted"
  elseif not d or (ok and r and r.access_token == d.access_token) then
    return "same"
  end
  local done, written = pcall(self.R.offer, key, d, budget)
  if not done then
    self:failed(written, true)
    return nil
  end
  return written and "written" or "kept"
end

-- ctx: the pool VM's state (events, dropping); dict: the machine's; local_:
-- ducky.ngx.store's table on it; opts: ducky.redis_store's options; id: the
-- configuration's (names the mark that Redis is left alone). Returns a
-- token_cache table (plain functions, as ducky calls them) with sync().
function M.new(ctx, dict, local_, opts, id)
  local self = setmetatable({ ctx = ctx, dict = dict, local_ = local_, R = redis_store.new(opts),
    down_key = "ducky:redis_down:" .. id, held = {} }, Fleet)
  local t = {}
  for _, name in ipairs{ "load", "store", "lock", "unlock", "sync" } do
    t[name] = function(...) return self[name](self, ...) end
  end
  return t
end

return M
