-- A C application embedding Lua 5.4 with ducky linked in (examples/embed):
-- built by `make`, run here with no ducky.so on any search path.
local H = require("spec.helpers")

describe("embedding in a C host", function()
  local embed = H.BUILD .. "/embed"
  local have = io.open(embed, "rb")
  if have then have:close() end

  local run_it = (have and (H.LUA == "lua5.4")) and it or pending
  run_it("runs a script whose require('ducky') is the linked-in module, and exits 0", function()
    local id = H.new_id("embed")
    local out, code = H.run(("LUA_CPATH='/nonexistent/?.so;;' DUCKY_BASE_URL=%q DUCKY_TOKEN_URL=%q"
      .. " DUCKY_AUDIENCE=%q DUCKY_CLIENT_ID=%q DUCKY_CLIENT_SECRET=%q XDG_CACHE_HOME=%q %s"
      .. " examples/embed/hello.lua")
      :format(H.base_url(), H.token_url(), H.audience(), id, H.secret(id), H.tmpdir(), embed))
    assert.equals(0, code, out)
    assert.matches("embedded ducky %d+%.%d+%.%d+: 200 {\"message\": \"pong\", \"ready\": true}", out)
    assert.equals(1, H.exchanges(id))
  end)

  run_it("reports a script error and exits 1", function()
    local out, code = H.run(embed .. " /nonexistent.lua")
    assert.equals(1, code)
    assert.matches("embed: cannot open /nonexistent.lua", out)
  end)
end)
