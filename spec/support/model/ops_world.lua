-- The random model's ops on clients, stores and the stand-in
-- (spec/support/model/model.lua): invalidate, stats, close, use of a closed
-- client, new and dropped clients, collections, store modes, token faults,
-- revocations, resets, documented misuse.
local H = require("spec.helpers")
local U = require("spec.support.model.util")
local World = require("spec.support.model.world")

local show, is_closed, STORE_MODES, LOG_MODES, MAX_OPEN = U.show, U.is_closed, U.STORE_MODES, U.LOG_MODES,
  U.MAX_OPEN

function World:op_invalidate()
  local cl = self:pick_client()
  self:note("%s invalidate", cl.name)
  cl.cred.invalidations = cl.cred.invalidations + 1
  cl.c:invalidate()
end

local STAT_FIELDS = { "requests", "token_fetches", "token_cache_hits", "token_store_hits", "retries",
  "replays_401", "stale_tokens", "errors" }

function World:op_stats()
  local cl = self:pick_client()
  self:note("%s stats", cl.name)
  local s = cl.c:stats()
  local last = cl.last_stats or {}
  for _, f in ipairs(STAT_FIELDS) do
    self:check(type(s[f]) == "number" and s[f] >= (last[f] or 0),
      "%s stats: %s is %s, was %s", cl.name, f, tostring(s[f]), tostring(last[f]))
  end
  self:check(type(s.rate_limit) == "table", "%s stats: rate_limit is %s", cl.name, type(s.rate_limit))
  cl.last_stats = s
end

function World:op_close()
  local cl = self:pick_client()
  self:note("%s close", cl.name)
  cl.c:close()
  cl.closed = true
end

-- a closed client raises on every use, and closes again quietly
local CLOSED_USES = {
  function(c) return c:request("GET", "/echo/closed") end,
  function(c) return c:batch({ { "GET", "/echo/closed" } }, { concurrency = 4 }) end,
  function(c) return c:batch({}) end,
  function(c) return c:ping() end,
  function(c) return c:ping_protected() end,
  function(c) return c:token() end,
  function(c) return c:invalidate() end,
  function(c) return c:stats() end,
}

function World:op_use_closed()
  local closed = {}
  for _, cl in ipairs(self.clients) do if cl.closed then closed[#closed + 1] = cl end end
  if #closed == 0 then return self:op_close() end
  local cl = self.r:pick(closed)
  local i = self.r:int(1, #CLOSED_USES)
  self:note("%s use while closed (%d)", cl.name, i)
  local ok, err = pcall(CLOSED_USES[i], cl.c)
  self:check(not ok and tostring(err):find("closed", 1, true), "%s: use %d of a closed client: %s",
    cl.name, i, ok and "did not raise" or tostring(err))
  self:check(pcall(cl.c.close, cl.c), "%s: closing a closed client raised", cl.name)
  self:check(is_closed(cl.c), "%s: tostring does not say closed", cl.name)
end

function World:op_new_client()
  local open = self:open_clients()
  if #open >= MAX_OPEN then
    local cl = open[1]
    self:note("%s close (to make room)", cl.name)
    cl.c:close()
    cl.closed = true
  end
  self:new_client()
end

-- forget a client without closing it: __gc closes it whenever it runs
function World:op_drop_client()
  local i = self.r:int(1, #self.clients)
  local cl = self.clients[i]
  if not cl then return end
  self:note("%s dropped%s", cl.name, cl.closed and "" or " (left to __gc)")
  table.remove(self.clients, i)
end

function World:op_gc()
  local r = self.r:float()
  if r < 0.4 then
    self:note("collectgarbage collect")
    collectgarbage("collect")
  elseif r < 0.9 then
    self:note("collectgarbage step")
    collectgarbage("step")
  elseif _VERSION == "Lua 5.4" then
    local mode = self.r:pick({ "generational", "incremental" })
    self:note("collectgarbage %s", mode)
    collectgarbage(mode)
  end
end

function World:op_store_mode()
  local custom = {}
  for _, cl in ipairs(self:open_clients()) do
    if cl.store == "custom" then custom[#custom + 1] = cl end
  end
  if #custom == 0 then return self:op_new_client() end
  local cl = self.r:pick(custom)
  cl.state.store_mode = self.r:weighted(STORE_MODES)
  cl.state.log_mode = self.r:chance(0.3) and self.r:weighted(LOG_MODES) or cl.state.log_mode
  self:note("%s store mode %s, log %s", cl.name, cl.state.store_mode, cl.state.log_mode)
end

local TOKEN_FAULTS = {
  function(r) return { status = r:pick({ 500, 502, 503, 429 }), headers = { ["Retry-After"] = "0" },
    body = { error = "temporarily_unavailable" } } end,
  function(r) return { status = 200, body = r:pick({ "<html>oops</html>", '{"access_token":5}',
    '{"token_type":"Bearer","expires_in":60}', "null", "" }) } end,
  function(r) return { drop = r:pick({ "before_headers", "mid_body" }) } end,
  function(r) return { delay = r:pick({ 0.05, 0.1, 0.2, 0.3 }) } end,
}

function World:op_token_fault()
  local good = {}
  for _, cred in ipairs(self.creds) do if cred.good then good[#good + 1] = cred end end
  if #good == 0 then return self:op_new_client() end
  local cred = self.r:pick(good)
  local f = self.r:pick(TOKEN_FAULTS)(self.r)
  if f.status == 200 and f.body == "" then f.body = nil end
  f.path, f.client_id, f.times = "/oauth/token", cred.id, self.r:int(1, 2)
  self:note("token fault for %s: %s", cred.id, show(f))
  H.fault(f)
  cred.token_faults = cred.token_faults + f.times
  cred.risk = true
end

function World:op_revoke()
  local open = self:open_clients()
  if #open == 0 then return self:op_new_client() end
  local cred = self.r:pick(open).cred
  self:note("revoke %s", cred.id)
  H.revoke(cred.id)
  cred.revokes = cred.revokes + 1
  cred.revoked_ever = true
end

-- the stand-in forgets its faults and counts; the model keeps the counts
function World:op_reset()
  local st = H.stats()
  self:note("reset the stand-in (%d faults pending)", st.faults_pending)
  for _, cred in ipairs(self.creds) do
    cred.base = cred.base + (st.exchanges_by_client[cred.id] or 0)
    cred.risk = false
  end
  H.reset()
  for _, cred in ipairs(self.creds) do
    if cred.lifetime then H.config(cred.id, cred.lifetime) end
  end
end

-- documented programmer errors: each raises naming the problem (every one of
-- the words), nothing is sent
local MISUSE = {
  { "not an HTTP method name", function(c) return c:request("GE T", "/echo/m") end },
  { "path holds a space", function(c) return c:request("GET", "/echo/a b") end },
  { "unknown option 'bogus'", function(c) return c:request("GET", "/echo/m", { bogus = 1 }) end },
  { "json and body exclude each other",
    function(c) return c:request("POST", "/echo/m", { json = {}, body = "x" }) end },
  { "query value for 'f'", function(c) return c:request("GET", "/echo/m", { query = { f = print } }) end },
  { "holds CR, LF or NUL",
    function(c) return c:request("GET", "/echo/m", { headers = { ["X-A"] = "a\r\nb" } }) end },
  { "out of range", function(c) return c:request("GET", "/echo/m", { timeout = -1 }) end },
  { "json", function(c) return c:request("POST", "/echo/m", { json = { [1] = 1, [1000] = 2 } }) end },
  { { "item 2", "not an HTTP method name" },
    function(c) return c:batch({ { "GET", "/echo/m" }, { "GE T", "/echo/m" } }, { concurrency = 3 }) end },
  { "not a { method, path, opts } table", function(c) return c:batch({ "GET /echo" }) end },
  { "unknown option 'parallel'", function(c) return c:batch({}, { parallel = 2 }) end },
  { "concurrency", function(c) return c:batch({}, { concurrency = 0 }) end },
}

function World:op_misuse()
  local cl = self:pick_client()
  local i = self.r:int(1, #MISUSE)
  local words = MISUSE[i][1]
  if type(words) == "string" then words = { words } end
  self:note("%s misuse: %s", cl.name, table.concat(words, " "))
  local before = H.stats().requests
  local ok, err = pcall(MISUSE[i][2], cl.c)
  local named = not ok
  for _, word in ipairs(words) do named = named and tostring(err):find(word, 1, true) ~= nil end
  self:check(named, "%s misuse %d: expected a raise naming %s, got %s", cl.name, i,
    table.concat(words, " ... "), ok and "no raise" or tostring(err))
  self:check(H.stats().requests == before, "%s misuse %d sent a request", cl.name, i)
end
