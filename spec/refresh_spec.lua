-- While a token is valid, only the caller that refreshes it waits (issue 14):
-- another thread, or another process sharing the file cache, gets the current
-- token at once instead of waiting for the exchange under way.
local H = require("spec.helpers")

local WORKER = "spec/support/workers/refresh_worker.lua"

-- "<role> <source> <time>" lines -> { role = { source =, done = } }
local function outcomes(out)
  local t = {}
  for role, source, done in out:gmatch("(%a+) (%a+) ([%d%.]+)") do
    t[role] = { source = source, done = tonumber(done) }
  end
  return t
end

local function check(out, other_source, id)
  local o = outcomes(out)
  assert.is_table(o.leader, out)
  assert.is_table(o.other, out)
  assert.equals("exchange", o.leader.source, out)
  assert.equals(other_source, o.other.source, out)
  -- the other caller was answered while the leader's exchange was still under way
  assert.is_true(o.other.done < o.leader.done, out)
  assert.equals(2, H.exchanges(id)) -- the first token and its one refresh
end

describe("a refresh under way", function()
  before_each(function() H.reset() end)

  it("another thread gets the current token without waiting", function()
    local id = H.new_id("refresh-threads")
    H.config(id, 4)
    local out, code = H.run(("%s %s/threads %s 2 THREAD %s memory"):format(
      H.CHILD_ENV .. " DUCKY_STANDIN_DIR='" .. H.standin().dir .. "'", H.BUILD, WORKER, id))
    assert.equals(0, code, out)
    check(out, "memory", id)
  end)

  it("another process finds the lock held and uses the valid token in the file cache", function()
    local id = H.new_id("refresh-procs")
    H.config(id, 4)
    local dir = H.tmpdir()
    local env = H.CHILD_ENV .. " DUCKY_STANDIN_DIR='" .. H.standin().dir .. "'"
    local cmd = ("%s %s %s %%s %s file > %s/%%s.out 2>&1"):format(env, H.LUA, WORKER, id, dir)
    local out, code = H.run(("(%s) & (%s) & wait"):format(cmd:format("leader", "leader"),
      cmd:format("other", "other")))
    assert.equals(0, code, out)
    out = (H.read_file(dir .. "/leader.out") or "") .. (H.read_file(dir .. "/other.out") or "")
    os.execute("rm -rf '" .. dir .. "'")
    check(out, "file", id)
  end)
end)
