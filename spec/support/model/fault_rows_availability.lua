-- Fault matrix rows: outages that end when the provider recovers (issue 19 §A;
-- spec/support/model/fault_matrix.lua says what a row holds). Each moves
-- ducky's clock instead of waiting (test builds), with the back-off's jitter
-- fixed, and puts both back before it returns.
local H = require("spec.helpers")
local K = require("spec.support.model.fault_kit")
local ducky = require("ducky")

local RETRY_NOW, token_fault, events_named = K.RETRY_NOW, K.token_fault, K.events_named

local rows = {}
local row = K.collector(rows)

-- Calls call(ctx) until it succeeds, a back-off step of moved time apart;
-- returns its last res, err, and counts the calls in ctx.calls.
local function until_back(ctx, call, step)
  ducky._test.fix_jitter(1)
  local res, err
  ctx.calls, ctx.kinds = 0, {}
  for _ = 1, 40 do
    res, err = call(ctx)
    ctx.calls = ctx.calls + 1
    if res then break end
    ctx.kinds[err.kind] = true
    H.shift_clock(step)
  end
  ducky._test.fix_jitter()
  H.reset_clock()
  return res, err
end

local function ping(ctx) return ctx.client:ping_protected() end

row {
  name = "token down, then back", where = "token endpoint",
  fault = "503 to the next 3 exchanges, a call each back-off step, `max_exchanges_per_hour = 1`",
  outcome = "`http` until the endpoint answers (one try per back-off step); a token within one step "
    .. "of its return; the failures spend no budget",
  opts = { retries = 0, max_exchanges_per_hour = 1 },
  setup = token_fault { status = 503, times = 3, headers = RETRY_NOW },
  call = function(ctx) return until_back(ctx, ping, H.BACKOFF_CAP) end,
  expect = { status = 200, attempts = 1, retries = 0, exchanges = 1, api_requests = 1 },
  check = function(ctx, assert)
    assert.same({ http = true }, ctx.kinds)
    assert.equals(4, ctx.calls)
    assert.equals(4, ctx.stats.requests_by_path[K.TOKEN]) -- 3 failed tries and the token
  end,
}

row {
  name = "token down, store's token valid", where = "token endpoint",
  fault = "503 to the refresh; the `token_cache` store holds a token with 30 s left (inside the margin)",
  outcome = "the store's token served (`stale_token` event); 1 try, the next after a back-off step",
  opts = function(ctx)
    ctx.entry = { token_type = "Bearer", expires_in = 3600 }
    return { retries = 0, token_cache = {
      load = function() return ctx.entry.access_token and ctx.entry or nil end,
      store = function() end,
    } }
  end,
  setup = function(ctx)
    -- a real token for the row's id, got under another cache key (form, not json)
    local o = {}
    for k, v in pairs(ctx.opts) do o[k] = v end
    o.token_auth, o.token_cache, o.log = "form", false, nil
    ctx.entry.access_token = assert(ducky.client(o):token())
    ctx.entry.expires_at = os.time() + 30
    token_fault { status = 503, times = 3, headers = RETRY_NOW } (ctx)
  end,
  call = function(ctx)
    assert(ctx.client:ping_protected())
    return ctx.client:ping_protected()
  end,
  expect = { status = 200, attempts = 1, retries = 0, exchanges = 1, api_requests = 2,
    faults_left = 2 },
  check = function(ctx, assert)
    local stale = events_named(ctx, "stale_token")
    assert.equals(1, #stale)
    assert.equals("http", stale[1].reason)
  end,
}

row {
  name = "token store write fails", where = "token endpoint",
  fault = "the `token_cache` store's `store` raises on every write",
  outcome = "one exchange, one `store_error` event; the token kept in memory, never an exchange per call",
  opts = { token_cache = { load = function() return nil end, store = function() error("disk full") end } },
  call = function(ctx)
    for _ = 1, 4 do assert(ctx.client:ping_protected()) end
    return ctx.client:ping_protected()
  end,
  expect = { status = 200, attempts = 1, retries = 0, exchanges = 1, api_requests = 5 },
  check = function(ctx, assert)
    assert.equals(1, #events_named(ctx, "store_error"))
  end,
}

row {
  name = "401 burst", where = "API",
  fault = "401 to the next 6 API requests, a call every 0.5 s",
  outcome = "`auth` during the burst; the first two drops refresh at once, later ones one per "
    .. "back-off step; a success once it ends",
  opts = { retries = 0 },
  setup = function(ctx)
    assert(ctx.client:token())
    H.fault{ path = K.PROTECTED, status = 401, times = 6,
      body = { error = "invalid_token", error_description = "burst" } }
  end,
  call = function(ctx) return until_back(ctx, ping, 0.5) end,
  expect = { status = 200, attempts = 2, retries = 0, exchanges = 4, api_requests = 7 },
  check = function(ctx, assert)
    assert.same({ auth = true }, ctx.kinds)
  end,
}

return rows
