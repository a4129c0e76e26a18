-- What spec/hosts_spec.lua has every event-loop adapter do in its real host
-- (cqueues, copas, luv, Neovim, HAProxy), against the stand-in. Each scenario
-- runs inside the host (a coroutine, thread or task of it) and returns what it
-- saw; the spec judges it. A driver (spec/support/hosts/driver_*.lua) gives the
-- host's ways, D:
--   D.spawn(fn)            fn runs in the host, beside the caller
--   D.wait_until(cond, s)  waits in the host until cond() (true) or s seconds (false)
--   D.ticker()             starts the host's 10 ms timer; returns stop() -> longest
--                          gap between two ticks (s), ticks
--   D.now()                seconds
-- No LuaSocket here: Neovim cannot load it (its own socket_connect clashes).
local S = { fn = {}, order = {}, callbacks = {} }

local function scenario(name, fn)
  S.fn[name] = fn
  S.order[#S.order + 1] = name
end

-- ducky.luv's and ducky.nvim's trailing callbacks (drivers with D.callbacks)
local function callback_scenario(name, fn)
  S.fn[name] = fn
  S.callbacks[#S.callbacks + 1] = name
end

local function status(res, err)
  if res then return res.status end
  return err and err.kind or "nothing"
end

-- ---------------------------------------------------------------------------

scenario("ping", function(ctx)
  local c = ctx.client("ping")
  local res, err = c:ping()
  local st = c:stats()
  c:close()
  return { status = status(res, err), exchanges = st.token_fetches }
end)

-- A call on a new credential: the token is exchanged first, inside the call.
scenario("first_token", function(ctx)
  local sources = {}
  local c, id = ctx.client("first", {
    log = function(ev) if ev.event == "token" then sources[#sources + 1] = ev.source end end,
  })
  local res, err = c:request("GET", "/echo")
  local tok, left = c:token()
  c:close()
  return { status = status(res, err), sources = sources, bearer_of = res and res.json.client_id,
    id = id, token = type(tok), left = left, exchanges = ctx.exchanges(id) }
end)

scenario("concurrent", function(ctx)
  local c, id = ctx.client("concurrent")
  ctx.control("fault", { path = "/v3/echo", delay = 0.3, times = 20, client_id = id })
  local n, statuses, t0 = 0, {}, ctx.D.now()
  for i = 1, 20 do
    ctx.D.spawn(function()
      local res, err = c:request("GET", "/echo", { query = { i = tostring(i) } })
      statuses[i] = status(res, err)
      if res and res.json.args.i[1] ~= tostring(i) then statuses[i] = "mixed up" end
      n = n + 1
    end)
  end
  local all = ctx.D.wait_until(function() return n == 20 end, 10)
  local elapsed = ctx.D.now() - t0
  c:close()
  return { all = all, statuses = statuses, elapsed = elapsed, exchanges = ctx.exchanges(id) }
end)

scenario("replay_401", function(ctx)
  local c, id = ctx.client("replay")
  local res1, err1 = c:request("GET", "/echo")
  ctx.control("revoke", { client_id = id })
  local res2, err2 = c:request("GET", "/echo")
  local st = c:stats()
  c:close()
  return { first = status(res1, err1), second = status(res2, err2), replays = st.replays_401,
    exchanges = ctx.exchanges(id) }
end)

scenario("timeout", function(ctx)
  local c, id = ctx.client("timeout")
  assert(c:token())
  ctx.control("fault", { path = "/v3/echo", delay = 3, client_id = id })
  local t0 = ctx.D.now()
  local res, err = c:request("GET", "/echo", { timeout = 0.3 })
  local elapsed = ctx.D.now() - t0
  c:close()
  return { kind = status(res, err), elapsed = elapsed }
end)

-- An operation cancelled by another coroutine of the host while it waits.
scenario("cancel", function(ctx)
  local c, id = ctx.client("cancel")
  local other = ctx.client("cancel-other")
  assert(c:token())
  ctx.control("fault", { path = "/v3/echo", delay = 3, client_id = id })
  local op = c:start("GET", "/echo")
  ctx.D.spawn(function()
    other:ping() -- a round trip of the loop: the slow call is under way by then
    op:cancel()
  end)
  local t0 = ctx.D.now()
  local res, err = c:wait(op)
  local elapsed = ctx.D.now() - t0
  c:close()
  other:close()
  return { kind = status(res, err), elapsed = elapsed }
end)

-- A client whose /echo answers after 3 s (`times` calls), with its token, and
-- another client for round trips of the loop.
local function slow_pair(ctx, name, times)
  local c, id = ctx.client(name)
  local other = ctx.client(name .. "-other")
  assert(c:token())
  ctx.control("fault", { path = "/v3/echo", delay = 3, times = times, client_id = id })
  return c, other
end

scenario("close", function(ctx)
  local c, other = slow_pair(ctx, "close", 3)
  local n, kinds = 0, {}
  for i = 1, 3 do
    ctx.D.spawn(function()
      kinds[i] = status(c:request("GET", "/echo"))
      n = n + 1
    end)
  end
  other:ping()
  local t0 = ctx.D.now()
  c:close()
  local all = ctx.D.wait_until(function() return n == 3 end, 5)
  local elapsed = ctx.D.now() - t0
  local ok, msg = pcall(c.request, c, "GET", "/echo")
  other:close()
  return { all = all, kinds = kinds, elapsed = elapsed, after = not ok and tostring(msg) or "no error" }
end)

-- Lua that the engine calls from inside step() (a log function, a store table)
-- raises: the call goes on.
scenario("callback_error", function(ctx)
  local logged = 0
  local c = ctx.client("cberr", {
    log = function() logged = logged + 1; error("the log function fails on purpose") end,
  })
  local res, err = c:request("GET", "/echo")
  c:close()
  local store = {
    load = function() error("the store's load fails on purpose") end,
    store = function() error("the store's store fails on purpose") end,
  }
  local s = ctx.client("cberr-store", { token_cache = store })
  local res2, err2 = s:request("GET", "/echo")
  s:close()
  return { status = status(res, err), logged = logged, store_status = status(res2, err2) }
end)

-- The host's 10 ms timer during one call the stand-in answers in 0.5 s.
scenario("ticks", function(ctx)
  local c, id = ctx.client("ticks")
  ctx.control("fault", { path = "/v3/echo", delay = 0.5, client_id = id })
  assert(c:token())
  local stop = ctx.D.ticker()
  local t0 = ctx.D.now()
  local res, err = c:request("GET", "/echo")
  local took = ctx.D.now() - t0
  local gap, ticks = stop()
  c:close()
  return { status = status(res, err), took = took, gap = gap, ticks = ticks }
end)

scenario("batch", function(ctx)
  local c, id = ctx.client("batch")
  assert(c:token())
  ctx.control("fault", { path = "/v3/echo", delay = 0.5, times = 4, client_id = id })
  local list = {}
  for i = 1, 4 do list[i] = { "GET", "/echo", { query = { i = tostring(i) } } } end
  list[5] = { "GET", "http://elsewhere.invalid/v3/echo" }
  local t0 = ctx.D.now()
  local results = c:batch(list, { concurrency = 4 })
  local elapsed = ctx.D.now() - t0
  local got = {}
  for i, r in ipairs(results) do
    got[i] = r.res and (r.res.json.args.i[1] == tostring(i) and r.res.status or "mixed up") or r.err.kind
  end
  local ok, msg = pcall(c.batch, c, { "not a table" })
  c:close()
  return { results = got, elapsed = elapsed, misuse = not ok and tostring(msg) or "no error" }
end)

-- Two clients of one credential: A's operation leads a slow exchange and is
-- cancelled while B waits for that exchange: the exchange goes on (A's client
-- still steps it) and B gets its token from it, one exchange in all.
scenario("cancel_leader", function(ctx)
  local a, id = ctx.client("cancel-leader")
  local b = ctx.client("cancel-leader")
  ctx.control("fault", { path = "/oauth/token", delay = 1, client_id = id })
  local op = a:start_token()
  local got, led
  ctx.D.spawn(function()
    local tok, err = a:wait(op) -- A's exchange is sent and stepped while this waits
    led = tok and "token" or err.kind
  end)
  ctx.D.spawn(function()
    local tok, err = b:token()
    got = tok and "token" or tostring(err)
  end)
  ctx.D.wait_until(function() return false end, 0.3) -- B waits on A's exchange by then
  op:cancel()
  local all = ctx.D.wait_until(function() return got ~= nil and led ~= nil end, 5)
  local exchanges = ctx.exchanges(id)
  a:close()
  b:close()
  return { all = all, led = led, got = got, exchanges = exchanges }
end)

-- The client closed by another task while a batch waits, with items not yet
-- started (concurrency 2 of 4): every item ends "cancelled", none raises.
scenario("batch_close", function(ctx)
  local c, other = slow_pair(ctx, "batch-close", 4)
  ctx.D.spawn(function()
    other:ping() -- a round trip of the loop: the batch is under way by then
    c:close()
  end)
  local list = {}
  for i = 1, 4 do list[i] = { "GET", "/echo" } end
  local t0 = ctx.D.now()
  local results = c:batch(list, { concurrency = 2 }) -- (Lua 5.1's pcall cannot wait: no pcall)
  local elapsed = ctx.D.now() - t0
  other:close()
  local kinds = {}
  for i = 1, 4 do kinds[i] = results[i] and status(results[i].res, results[i].err) or "missing" end
  return { kinds = kinds, elapsed = elapsed }
end)

-- ---------------------------------------------------------------------------

-- Calls with a trailing callback: each returns at once; the callbacks come from
-- the loop (a refused call's too), where the editor's API works (Neovim).
callback_scenario("callbacks", function(ctx)
  local c, id = ctx.client("callbacks")
  ctx.control("fault", { path = "/v3/echo", delay = 0.2, times = 10, client_id = id })
  local got, returned, early, n = {}, {}, 0, 0
  local function done(key, value)
    got[key] = value
    if not returned[key] then early = early + 1 end
    n = n + 1
  end
  for i = 1, 10 do
    c:request("GET", "/echo", { query = { i = tostring(i) } }, function(res, err)
      done(i, (res and res.json.args.i[1] ~= tostring(i)) and "mixed up" or status(res, err))
    end)
    returned[i] = true
  end
  c:token(function(tok) done("token", type(tok)) end)
  returned.token = true
  c:batch({ { "GET", "/ping" } }, function(results) done("batch", status(results[1].res, results[1].err)) end)
  returned.batch = true
  c:request("GET", "http://elsewhere.invalid/x", function(res, err)
    got.api = ctx.D.editor_api and ctx.D.editor_api() or "no editor"
    done("refused", status(res, err))
  end)
  returned.refused = true
  local all = ctx.D.wait_until(function() return n == 13 end, 10)
  c:close()
  return { all = all, got = got, early = early }
end)

-- A callback that raises, where the host reports it and goes on (Neovim: an
-- error message): the client's other calls go on.
callback_scenario("callback_raises", function(ctx)
  if not ctx.D.survives_callback_errors then return { skipped = true } end
  local c = ctx.client("raises")
  local n, second = 0, nil
  c:ping(function()
    n = n + 1
    error("the callback fails on purpose")
  end)
  c:ping(function(res, err)
    n = n + 1
    second = status(res, err)
  end)
  local all = ctx.D.wait_until(function() return n == 2 end, 10)
  local after = status(c:ping())
  c:close()
  return { all = all, second = second, after = after }
end)

return S
