-- Custom token stores with lock/unlock (token rule 3 beyond the process): the
-- order of calls, a lock not granted, and errors inside the store.
local H = require("spec.helpers")
local ducky = require("ducky")

local function recording_store(overrides)
  local calls, data = {}, {}
  local store = {
    load = function(key) calls[#calls + 1] = "load"; return data[key] end,
    store = function(key, entry) calls[#calls + 1] = entry and "store" or "drop"; data[key] = entry end,
    lock = function(_, timeout)
      calls[#calls + 1] = "lock"
      assert(type(timeout) == "number" and timeout > 0 and timeout <= 5)
      return true
    end,
    unlock = function() calls[#calls + 1] = "unlock" end,
  }
  for k, v in pairs(overrides or {}) do store[k] = v end
  return store, calls, data
end

local function client_with(store, events)
  return ducky.client(H.opts{
    token_cache = store,
    log = events and function(e) events[#events + 1] = e end or nil,
  })
end

describe("custom token store", function()
  it("loads, locks, loads again, exchanges, stores, unlocks — in that order", function()
    local store, calls = recording_store()
    local c = client_with(store)
    assert(c:ping_protected())
    assert.same({ "load", "lock", "load", "store", "unlock" }, calls)
    assert(c:ping_protected())
    assert.equals(5, #calls) -- the second call is served from memory
  end)

  it("does not exchange when the entry appears while it waited for the lock", function()
    local first = ducky.client(H.opts{})
    local token = assert(first:token())
    local store, calls = recording_store()
    local entry = { access_token = token, token_type = "Bearer", expires_at = os.time() + 3600,
      expires_in = 3600 }
    local loads = 0
    store.load = function()
      loads = loads + 1
      calls[#calls + 1] = "load"
      return loads > 1 and entry or nil
    end
    local opts = H.opts{ token_cache = store }
    local before = H.stats().exchanges
    local c = ducky.client(opts)
    assert(c:ping_protected()) -- the store's token is valid at the stand-in for any client
    assert.same({ "load", "lock", "load", "unlock" }, calls)
    assert.equals(before, H.stats().exchanges)
    assert.equals(1, c:stats().token_store_hits)
  end)

  it("exchanges anyway when the lock is not granted, after trying it for half the timeout", function()
    local locks = 0
    local store, calls = recording_store{ lock = function(_, timeout)
      locks = locks + 1
      assert(timeout > 0 and timeout < 0.1, "lock is tried once, never waited on: " .. timeout)
      return false
    end }
    local c = ducky.client(H.opts{ token_cache = store, timeout = 0.4 })
    assert(c:ping_protected())
    -- load; then (never granted) load again before each later try; then the exchange
    assert.equals("load", calls[1])
    assert.equals("store", calls[#calls])
    assert.is_true(locks >= 2, "tried the lock again on the timer: " .. locks)
    assert.equals(locks + 1, #calls) -- every try but the first reads the store first
    for _, name in ipairs(calls) do assert.not_equals("unlock", name) end
  end)

  it("works without lock and unlock", function()
    local store, calls = recording_store{ lock = false, unlock = false }
    store.lock, store.unlock = nil, nil
    local c = client_with(store)
    assert(c:ping_protected())
    assert.same({ "load", "store" }, calls)
  end)

  for _, fn in ipairs({ "load", "store", "lock", "unlock" }) do
    it("an error inside " .. fn .. " is logged and the request succeeds", function()
      local store = recording_store{ [fn] = function() error("boom in " .. fn) end }
      local events = {}
      local c = client_with(store, events)
      assert(c:ping_protected())
      local found
      for _, e in ipairs(events) do
        if e.event == "store_error" then found = e end
      end
      assert.is_truthy(found)
      assert.equals("store", found.source)
      assert.matches("token_cache%." .. fn .. ": .*boom in " .. fn, found.reason)
    end)
  end

  it("ignores an entry that is not usable (expired, not a token, wrong types)", function()
    for _, bad in ipairs({
      { access_token = "tok_x", expires_at = os.time() - 10 },
      { access_token = "tok with space", expires_at = os.time() + 3600 },
      { access_token = 42, expires_at = os.time() + 3600 },
      { access_token = "tok_x", expires_at = "soon" },
      "not a table",
    }) do
      local store = recording_store{ load = function() return bad end }
      local opts = H.opts{ token_cache = store }
      local c = ducky.client(opts)
      assert(c:ping_protected())
      assert.equals(1, H.exchanges(opts.client_id))
    end
  end)

  it("invalidate() drops the token from the store as well", function()
    local store, calls, data = recording_store()
    local c = client_with(store)
    assert(c:ping_protected())
    assert.is_not_nil(next(data))
    c:invalidate()
    assert.equals("drop", calls[#calls])
    assert.is_nil(next(data))
  end)

  it("a client cannot be used from inside its own store", function()
    local c
    local store = recording_store{ load = function() return c:ping() end }
    local events = {}
    c = client_with(store, events)
    assert(c:ping_protected())
    local found
    for _, e in ipairs(events) do
      if e.event == "store_error" then found = e end
    end
    assert.matches("own log or token_cache callbacks", found.reason)
  end)
end)
