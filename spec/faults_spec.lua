-- The fault matrix (spec/support/model/fault_matrix.lua, doc/fault-matrix.md): one
-- `it` per row, each asserting the exact outcome against the local stand-in —
-- status or err.kind, attempts, retries, and the token exchanges the stand-in
-- counted for the row's fresh client id.
local H = require("spec.helpers")
local M = require("spec.support.model.fault_matrix")
local ducky = require("ducky")

-- what the rows promise, in one readable list (name -> outcome)
local MATRIX = {}
for i, row in ipairs(M.rows) do MATRIX[i] = { name = row.name, where = row.where, outcome = row.outcome } end

describe("fault matrix", function()
  it("has unique row names and an outcome for every row", function()
    local seen = {}
    for _, r in ipairs(MATRIX) do
      assert.is_nil(seen[r.name], "duplicate row " .. r.name)
      seen[r.name] = true
      assert.is_string(r.outcome)
      assert.truthy(r.where == "token endpoint" or r.where == "API" or r.where == "TLS", r.where)
    end
    assert.is_true(#MATRIX >= 70, tostring(#MATRIX))
  end)

  it("doc/fault-matrix.md is the same matrix", function()
    assert.equals(M.markdown(), H.read_file("doc/fault-matrix.md"))
  end)

  for _, row in ipairs(M.rows) do
    local e = row.expect
    it(("%s: %s"):format(row.where, row.name), function()
      local ctx = M.run(row)
      if ctx.skipped then
        pending(ctx.skipped)
        return
      end
      local res, err = ctx.res, ctx.err
      local got = err and ("%s error: %s"):format(tostring(err.kind), tostring(err))
        or ("status " .. tostring(res and res.status))
      if e.kind then
        assert.is_nil(res, "expected a " .. e.kind .. " error, got " .. got)
        assert.is_true(ducky.is_error(err), "not a ducky.error: " .. tostring(err))
        assert.equals(e.kind, err.kind, got)
        assert.is_string(err.message)
        assert.is_nil(tostring(err):find("\n", 1, true), "tostring(err) is not one line")
        if e.status then assert.equals(e.status, err.status, got) end
        if e.code then assert.equals(e.code, err.code, got) end
        if e.description then assert.equals(e.description, err.description, got) end
        if e.retry_after then assert.equals(e.retry_after, err.retry_after, got) end
        assert.equals(e.attempts, err.attempts, "attempts; " .. got)
      else
        assert.is_nil(err, got)
        assert.equals(e.status, res.status)
        assert.equals(e.attempts, res.attempts, "attempts")
      end
      local retries = #M.retry_events(ctx)
      assert.equals(e.retries, retries, "retry events; " .. got)
      assert.equals(e.retries, ctx.client:stats().retries, "stats().retries; " .. got)
      assert.equals(e.exchanges, ctx.exchanges, "token exchanges; " .. got)
      if e.api_requests then
        assert.equals(e.api_requests, ctx.stats.requests_by_path[M.PROTECTED_PATH] or 0,
          "requests to " .. M.PROTECTED_PATH .. "; " .. got)
      end
      assert.equals(e.faults_left or 0, ctx.stats.faults_pending, "faults left unconsumed; " .. got)
      if row.check then row.check(ctx, assert) end
      ctx.client:close()
    end)
  end
end)
