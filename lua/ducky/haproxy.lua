-- ducky.haproxy: ducky's client inside HAProxy (2.x, its Lua 5.3). Each call,
-- made in a task, an action or a service, waits by yielding to HAProxy: its
-- Lua cannot wait on a descriptor, so the call steps the client, then sleeps
-- (core.msleep) for the client's timeout() but never more than 10 ms, and again
-- until it has ended. Many tasks and requests may share one client.
-- README "Event loops".
--
--   -- in a file of `lua-load` (or `lua-load-per-thread`):
--   local client = require("ducky.haproxy").client{ … }   -- ducky.client's options
--   core.register_service("footprints", "http", function(applet)
--     local res, err = client:request("GET", "/footprints") … end)
--
-- And the counterpart of ducky.ngx's authorization(): an action that sets
-- `Authorization: Bearer …` on the requests HAProxy proxies, from a token a
-- background task keeps fresh:
--
--   require("ducky.haproxy").register_authorization("ducky_auth", { … })
--   -- haproxy.cfg:  http-request lua.ducky_auth
-- luacheck: read globals core
local A = require("ducky.async")

local coroutine_isyieldable = coroutine.isyieldable
local math_floor, math_max, math_min, tostring = math.floor, math.max, math.min, tostring

local M = {}

local MAX_SLEEP = 0.010 -- seconds between two steps at most

local function now()
  local t = core.now()
  return t.sec + t.usec / 1e6
end

local host = {
  name = "ducky.haproxy",
  need = "inside an HAProxy task, action or service (core.register_task, register_action, "
    .. "register_service), where Lua may yield",
  now = now,
}

function host.usable()
  return core ~= nil and core.msleep ~= nil and coroutine_isyieldable()
end

-- Steps, then sleeps for timeout() (at most 10 ms; 1 ms, then twice as long each
-- time nothing ended, so a quick answer is not held back), until ready().
function host.wait(self, ready)
  local pause = 0.001
  while true do
    A.dispatch(self)
    if ready() then return end
    local t = not self.closed and self.client:timeout() or MAX_SLEEP
    t = math_min(t, pause)
    if t <= 0 then
      core.yield()
    else
      core.msleep(math_max(1, math_floor(t * 1000 + 0.5)))
    end
    pause = math_min(pause * 2, MAX_SLEEP)
  end
end

-- Nobody is registered to wake: every waiting call looks for itself.
function host.poke() end

-- A client (ducky.client's options) whose calls yield to HAProxy.
function M.client(opts)
  return A.new(host, opts)
end

-- ---------------------------------------------------------------------------
-- the authorization action

-- The token a task keeps: refreshed through client:token() every `every`
-- seconds (a memory hit, unless the token is inside its refresh margin: then
-- this task leads the exchange, and requests keep the current token meanwhile).
local function refresher(client, state, every)
  return function()
    while not client.closed do
      local tok, left = client:token()
      if tok then
        state.token, state.expires, state.err = tok, now() + left, nil
      else
        state.err = left
      end
      core.msleep(math_floor(every * 1000))
    end
  end
end

local function action(client, state, var)
  return function(txn)
    local tok = state.token
    if not tok or now() >= state.expires then -- none yet, or expired: wait for one
      local t, left = client:token()
      if not t then
        txn:set_var(var, tostring(left))
        return
      end
      tok, state.token, state.expires = t, t, now() + left
    end
    txn.http:req_set_header("Authorization", "Bearer " .. tok)
  end
end

-- Registers the action `name` (http-request lua.<name>): it sets Authorization:
-- Bearer <token> on the request, from the token a background task refreshes;
-- when there is no token to give, it sets the variable conf.var (default
-- "txn.ducky_error") to the error's line and leaves the request as it is.
-- conf.every: seconds between the task's looks at the token (default 1).
-- Returns the client. Call it where `lua-load` runs the file (its body).
function M.register_authorization(name, opts, conf)
  conf = conf or {}
  local client = M.client(opts)
  local state = {}
  core.register_task(refresher(client, state, conf.every or 1))
  core.register_action(name, { "http-req" }, action(client, state, conf.var or "txn.ducky_error"), 0)
  return client
end

return M
