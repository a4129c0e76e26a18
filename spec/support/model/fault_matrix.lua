-- The fault matrix: every fault the stand-in can inject, where, and the exact
-- outcome the contract (README "Errors", "Retries", "Token cache") promises.
-- One place for the rows; spec/faults_spec.lua asserts each outcome,
-- spec/secrets_spec.lua replays every scenario hunting for leaked secrets, and
-- doc/fault-matrix.md is M.markdown() (faults_spec checks they agree).
--
--   local M = require("spec.support.model.fault_matrix")
--   for _, row in ipairs(M.rows) do local ctx = M.run(row, { id_prefix = "x" }) end
--
-- A row:
--   name     unique, short
--   where    "token endpoint" | "API" | "TLS"
--   fault    what is injected (Markdown)
--   outcome  the promised result (Markdown)
--   opts     client option overrides (table, or function(ctx) -> table), on top of
--            H.opts{ retries = 2, timeout = 5 }
--   setup    function(ctx) injecting faults (ctx.id: this row's fresh client id)
--   call     function(ctx) -> res, err (default: ctx.client:ping_protected())
--   expect   { status, kind, code, attempts, retries, exchanges, api_requests,
--              retry_after, faults_left (default 0) }; kind = nil means success
--   check    optional function(ctx, assert) for row-specific assertions
--   needs    optional "ipv6": pending when the stand-in has no [::1] listener
--
-- The rows live by area in fault_rows_token.lua, fault_rows_api.lua,
-- fault_rows_hostile.lua and fault_rows_availability.lua (in that order in the
-- matrix), their builders in fault_kit.lua.
local H = require("spec.helpers")
local K = require("spec.support.model.fault_kit")
local ducky = require("ducky")
local socket = require("socket")

local M = {}

M.TOKEN_PATH = K.TOKEN
M.PROTECTED_PATH = K.PROTECTED
M.retry_events = K.retry_events
M.events_named = K.events_named
M.sent_forms = K.sent_forms
M.FORM_NAMES = K.FORM_NAMES
M.header_bytes = K.header_bytes

local rows = {}
M.rows = rows
for _, area in ipairs { "token", "api", "hostile", "availability" } do
  for _, r in ipairs(require("spec.support.model.fault_rows_" .. area)) do rows[#rows + 1] = r end
end

-- ------------------------------------------------------------------------
-- the runner

-- extra: { id_prefix = "…", opts = { … } (more overrides), keep = true (no reset) }
-- -> ctx { row, id, opts, client, res, err, events, elapsed, stats, exchanges, skipped }
function M.run(r, extra)
  extra = extra or {}
  local ctx = { row = r, events = {} }
  if r.needs == "ipv6" and not H.has_ipv6() then
    ctx.skipped = "the stand-in has no IPv6 listener"
    return ctx
  end
  if not extra.keep then H.reset() end
  local o = H.opts { retries = 2, timeout = 5 }
  if extra.id_prefix then
    o.client_id = H.new_id(extra.id_prefix)
    o.client_secret = H.secret(o.client_id)
  end
  local over = r.opts
  if type(over) == "function" then over = over(ctx) end
  for k, v in pairs(over or {}) do o[k] = v end
  for k, v in pairs(extra.opts or {}) do o[k] = v end
  o.log = function(ev) ctx.events[#ctx.events + 1] = ev end
  ctx.id, ctx.opts = o.client_id, o
  ctx.client = ducky.client(o)
  if r.setup then r.setup(ctx) end
  local t0 = socket.gettime()
  if r.call then
    ctx.res, ctx.err = r.call(ctx)
  else
    ctx.res, ctx.err = ctx.client:ping_protected()
  end
  ctx.elapsed = socket.gettime() - t0
  if r.after then r.after(ctx) end
  ctx.stats = H.stats()
  ctx.exchanges = ctx.stats.exchanges_by_client[ctx.id] or 0
  return ctx
end

function M.is_error(v) return ducky.is_error(v) end

-- the matrix as a Markdown table (doc/fault-matrix.md)
function M.markdown()
  local out = {
    "# Fault matrix",
    "",
    "What a call (`client:ping_protected()` unless the fault says otherwise) returns when",
    "the token endpoint, the API or TLS misbehaves, with `retries = 2`. Asserted row by row",
    "by `spec/faults_spec.lua` against the local stand-in; the rows live in",
    "`spec/support/model/fault_rows_*.lua`. \"Exchange\" is a token the stand-in issued.",
    "",
    "| fault | where | outcome |",
    "|---|---|---|",
  }
  for _, r in ipairs(rows) do
    out[#out + 1] = ("| %s: %s | %s | %s |"):format(r.name, r.fault, r.where, r.outcome)
  end
  return table.concat(out, "\n") .. "\n"
end

return M
