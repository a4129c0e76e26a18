-- ducky.async: what every event-loop adapter of ducky does the same way. The
-- client's methods (ping, ping_protected, request, batch, token, invalidate,
-- stats, cache_key, close, and start/start_token/wait for calls one may cancel)
-- are written once here, on the engine's start/step (README "Event loops"); an
-- adapter (ducky.cqueues, ducky.copas, ducky.luv, ducky.nvim, ducky.haproxy)
-- gives only how its host waits:
--
--   host = {
--     name  = "ducky.cqueues",            -- for messages
--     need  = "inside a coroutine run by a cqueues controller", -- what a call needs
--     now   = function() -> seconds        -- the host's monotonic clock
--     usable = function(self) -> boolean   -- may a call wait here (else it raises)
--     wait  = function(self, ready)        -- returns once ready() is true, the host
--                                          -- running meanwhile; steps the client or
--                                          -- has it stepped (A.dispatch)
--     woken = function(self)               -- optional: after waiters were woken
--     poke  = function(self)               -- optional: something changed outside a
--                                          -- step (a cancel, a close): have the
--                                          -- waiters looked at (default: A.wake now)
--     close = function(self)               -- optional: before the client closes
--   }
--
-- A host whose waits are registered (A.add_waiter: cqueues, luv) is woken by
-- A.dispatch/A.wake; a host that polls (copas, HAProxy) calls A.dispatch itself.
local ducky = require("ducky")

local error, pcall, select, setmetatable, type, tostring = error, pcall, select, setmetatable, type, tostring
local getmetatable, pairs, rawget, rawlen = getmetatable, pairs, rawget, rawlen
local math_min, math_max = math.min, math.max
local unpack = table.unpack or unpack -- luacheck: compat

local A = {}

-- Lua 5.1 has no rawlen; a list's length without metamethods is what batch reads.
rawlen = rawlen or function(t) return #t end

local Client = {}
Client.__index = Client
A.Client = Client

-- ---------------------------------------------------------------------------
-- waiting

-- Registers a waiter { ready = fn, wake = fn }: A.wake calls wake() once ready()
-- holds, and forgets it.
function A.add_waiter(self, w)
  local ws = self.waiters
  ws[#ws + 1] = w
end

-- Wakes the waiters whose condition holds (each once, in the order they came).
-- Returns the errors their wake functions raised (a list), or nil: a host
-- raises them once its own bookkeeping is done.
function A.wake(self)
  local ws, due, keep = self.waiters, nil, {}
  for i = 1, #ws do
    local w = ws[i]
    if w.ready() then
      due = due or {}
      due[#due + 1] = w
    else
      keep[#keep + 1] = w
    end
  end
  if not due then return nil end
  self.waiters = keep
  local errs
  for i = 1, #due do
    local ok, e = pcall(due[i].wake)
    if not ok then
      errs = errs or {}
      errs[#errs + 1] = e
    end
  end
  if self.host.woken then self.host.woken(self) end
  return errs
end

-- One turn of the engine: a step (unless the client is closed), then the waiters
-- whose condition now holds are woken. Returns A.wake's errors.
function A.dispatch(self)
  if not self.closed then self.client:step() end
  return A.wake(self)
end

-- After a change outside a step (a cancel, a close): the host looks at its
-- waiters again, now or on its next turn.
function A.poke(self)
  if self.host.poke then return self.host.poke(self) end
  A.raise(A.wake(self))
end

-- Raises the first of errs (from A.wake), saying how many more there were.
function A.raise(errs)
  if not errs then return end
  local e = errs[1]
  if #errs > 1 and type(e) == "string" then
    e = e .. (" (and %d more errors from callbacks in the same turn)"):format(#errs - 1)
  end
  error(e, 0)
end

-- The client's descriptor, asked once: from then on the engine keeps its timer
-- armed in it for timeout(), so waiting on it alone is enough.
function A.fd(self)
  local fd = self.fd
  if not fd then
    fd = self.client:pollfd()
    self.fd = fd
  end
  return fd
end

-- Raises unless a call named `name` may wait here.
local function enter(self, name)
  if self.closed then
    error(("client:%s: attempt to use a closed ducky client"):format(name), 0)
  end
  if not self.host.usable(self) then
    error(("%s: client:%s must be called %s"):format(self.host.name, name, self.host.need), 0)
  end
end
A.enter = enter

local function wait(self, ready)
  while not ready() do self.host.wait(self, ready) end
end

-- ---------------------------------------------------------------------------
-- starting calls

-- A message the engine raised under start's name, given under the method's.
local function rename(msg, name)
  if type(msg) ~= "string" then return msg end
  local m, n = msg:gsub("^client:start_token:", "client:" .. name .. ":", 1)
  if n == 0 then m = msg:gsub("^client:start:", "client:" .. name .. ":", 1) end
  return m
end
A.rename = rename

-- client:start(method, path, opts) for method `name`: the op, or nil, err for a
-- call refused before sending; a misuse raises under the method's name.
local function start(self, name, method, path, opts)
  local ok, op, err = pcall(self.client.start, self.client, method, path, opts)
  if not ok then error(rename(op, name), 0) end
  return op, err
end

local function run_one(self, op, err)
  if not op then return nil, err end
  wait(self, function() return op:done() end)
  return op:result()
end

function Client:ping()
  enter(self, "ping")
  return run_one(self, start(self, "ping", "GET", "ping", { auth = false }))
end

function Client:ping_protected()
  enter(self, "ping_protected")
  return run_one(self, start(self, "ping_protected", "GET", "ping/protected"))
end

function Client:request(method, path, opts)
  enter(self, "request")
  return run_one(self, start(self, "request", method, path, opts))
end

function Client:token()
  enter(self, "token")
  local ok, op = pcall(self.client.start_token, self.client)
  if not ok then error(rename(op, "token"), 0) end
  return run_one(self, op)
end

-- ---------------------------------------------------------------------------
-- operations one may cancel: client:start(...) / start_token() -> op,
-- client:wait(op) -> what request() (token()) returns

local Op = {}
Op.__index = Op
A.Op = Op

local function wrap_op(self, op)
  return setmetatable({ op = op, owner = self }, Op)
end

function Op:done() return self.op:done() end
function Op:result() return self.op:result() end
function Op:pollfd() return self.op:pollfd() end
function Op:events() return self.op:events() end
function Op:timeout() return self.op:timeout() end
-- Ends it with err.kind "cancelled", and wakes whoever waits for it.
function Op:cancel()
  self.op:cancel()
  A.poke(self.owner)
end
function Op.__tostring(o) return tostring(o.op) end

function Client:start(method, path, opts)
  local op, err = start(self, "start", method, path, opts)
  if not op then return nil, err end
  return wrap_op(self, op)
end

function Client:start_token()
  return wrap_op(self, self.client:start_token())
end

local function check_op(self, op, name)
  if getmetatable(op) ~= Op or op.owner ~= self then
    error(("client:%s: expects an operation from this client's start() or start_token(), not a %s")
      :format(name, type(op)), 0)
  end
end

function Client:wait(op)
  check_op(self, op, "wait")
  enter(self, "wait")
  return run_one(self, op.op)
end

-- ---------------------------------------------------------------------------
-- batch: the requests of a list, at most `concurrency` under way, each result
-- in its place as { res = … } or { err = … } (client:batch's contract)

local BATCH_OPTIONS = { concurrency = true, timeout = true }

local function batch_options(self, list, opts)
  if type(list) ~= "table" or (opts ~= nil and type(opts) ~= "table") then
    error(("client:batch: expects a list of requests and an options table, not %s and %s")
      :format(type(list), type(opts)), 0)
  end
  opts = opts or {}
  for k in pairs(opts) do
    if not BATCH_OPTIONS[k] then
      error(("client:batch: unknown option %s"):format(tostring(k)), 0)
    end
  end
  local conc, timeout = opts.concurrency or 8, opts.timeout or self.timeout
  if type(conc) ~= "number" or conc < 1 or conc > 1000 or conc % 1 ~= 0 then
    error("client:batch: concurrency must be a whole number from 1 to 1000", 0)
  end
  if type(timeout) ~= "number" or not (timeout >= 0.001 and timeout <= 1e6) then
    error("client:batch: timeout must be a number of seconds from 0.001 to 1e6", 0)
  end
  for i = 1, rawlen(list) do
    if type(rawget(list, i)) ~= "table" then
      error(("client:batch: item %d: not a { method, path, opts } table"):format(i), 0)
    end
  end
  return conc, timeout
end

-- Item i's opts, its timeout cut to what is left of the batch's.
local function item_opts(self, opts, left)
  if opts ~= nil and type(opts) ~= "table" then return opts end -- start says what is wrong
  local t = opts and opts.timeout
  if t ~= nil and type(t) ~= "number" then return opts end
  local copy = {}
  for k, v in pairs(opts or {}) do copy[k] = v end
  copy.timeout = math_max(0.001, math_min(t or self.timeout, left))
  return copy
end

local function cancel_all(running)
  for _, r in pairs(running) do r.op:cancel() end
end

-- Starts item i; false when it ended at once (its result set). Once the
-- client is closed (by another coroutine, a callback), the items not yet
-- started end "cancelled", as the running ones do.
local function start_item(self, list, i, deadline, running, results)
  local item = list[i]
  if self.closed then
    results[i] = { err = ducky.error { kind = "cancelled", method = item[1], path = item[2],
      message = ("%s %s: cancelled: the client was closed"):format(tostring(item[1]), tostring(item[2])) } }
    return false
  end
  local ok, op, err = pcall(self.client.start, self.client, item[1], item[2],
    item_opts(self, item[3], deadline - self.host.now()))
  if not ok then
    cancel_all(running)
    error((rename(op, "batch"):gsub("^client:batch:", ("client:batch: item %d:"):format(i), 1)), 0)
  end
  if not op then
    results[i] = { err = err }
    return false
  end
  running[i] = { op = op }
  return true
end

local function collect(running, results)
  local n = 0
  for i, r in pairs(running) do
    if r.op:done() then
      local res, err = r.op:result()
      results[i] = res and { res = res } or { err = err }
      running[i] = nil
    else
      n = n + 1
    end
  end
  return n
end

local function any_done(running)
  return function()
    for _, r in pairs(running) do
      if r.op:done() then return true end
    end
    return false
  end
end

function Client:batch(list, opts)
  enter(self, "batch")
  local conc, timeout = batch_options(self, list, opts)
  local n, nexti, busy = rawlen(list), 1, 0
  local deadline = self.host.now() + timeout
  local running, results = {}, {}
  while nexti <= n or busy > 0 do
    while nexti <= n and busy < conc do
      if start_item(self, list, nexti, deadline, running, results) then busy = busy + 1 end
      nexti = nexti + 1
    end
    if busy > 0 then
      wait(self, any_done(running))
      busy = collect(running, results)
    end
  end
  return results
end

-- ---------------------------------------------------------------------------
-- what never waits

function Client:invalidate(...) return self.client:invalidate(...) end
function Client:stats(...) return self.client:stats(...) end
function Client:cache_key() return self.client:cache_key() end

-- Ends the calls under way (their waiters get err.kind "cancelled"), then
-- closes the client; twice is harmless.
function Client:close()
  if self.closed then return end
  self.closed = true
  if self.host.close then self.host.close(self) end
  self.client:close()
  A.poke(self)
end
Client.__close = Client.close

function Client:__tostring()
  return self.host.name .. " " .. tostring(self.client)
end

-- ---------------------------------------------------------------------------

-- A client of host `host` made from opts (ducky.client's options); mt: the
-- adapter's metatable (its methods over Client's), default Client.
function A.new(host, opts, mt)
  local client = ducky.client(opts)
  local timeout = type(opts) == "table" and opts.timeout or ducky.defaults().timeout
  return setmetatable({ client = client, host = host, waiters = {}, timeout = timeout }, mt or Client)
end

-- The arguments of a call given with a trailing callback: the callback (or
-- nil) and the arguments before it, in a list with its length.
function A.split_callback(...)
  local n = select("#", ...)
  local last = n > 0 and select(n, ...) or nil
  if type(last) == "function" then
    return last, { n = n - 1, ... }
  end
  return nil, { n = n, ... }
end

A.unpack = unpack

return A
