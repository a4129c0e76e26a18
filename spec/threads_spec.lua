-- Token rules 1 and 3 across threads: 8 pthreads, each with its own lua_State,
-- share one token and make one exchange between them (spec/support/hosts/threads.c).
local H = require("spec.helpers")

local build = os.getenv("DUCKY_BUILD") or "build"

local function run_threads(n, calls, id, cache)
  local cmd = ("LUA_CPATH='./%s/?.so;;' %s/threads spec/support/workers/thread_worker.lua"
    .. " %d %q %q %q %q %q %d %s")
    :format(build, build, n, H.base_url(), H.token_url(), H.audience(), id, H.secret(id), calls,
      cache or "memory")
  local out, code = H.run(cmd)
  return code == 0 or nil, out
end

describe("threads", function()
  it("8 threads x 200 protected calls make one token exchange", function()
    local id = H.new_id("threads")
    local before = H.stats().requests_by_path["/v3/ping/protected"] or 0
    local ok, out = run_threads(8, 200, id)
    assert.is_true(ok, out)
    assert.matches("8 threads, 0 failed", out)
    assert.equals(1, H.exchanges(id))
    assert.equals(before + 1600, H.stats().requests_by_path["/v3/ping/protected"])
  end)

  it("8 threads x 200 protected calls with the file cache make one token exchange", function()
    local id = H.new_id("threads-file")
    local ok, out = run_threads(8, 200, id, "file")
    assert.is_true(ok, out)
    assert.matches("8 threads, 0 failed", out)
    assert.equals(1, H.exchanges(id))
  end)

  it("a refused credential fails in every thread without crashing", function()
    local id = H.new_id("threads-bad")
    H.ban(id)
    local ok, out = run_threads(4, 3, id)
    assert.is_falsy(ok)
    assert.matches("4 threads, 4 failed", out)
    assert.matches("auth error", out)
    assert.equals(0, H.exchanges(id))
  end)
end)
