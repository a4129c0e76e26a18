-- A finalizer that closes a client while one of its calls starts: the call
-- either raises "closed" or runs on an open client, never on a closed one.
-- Found by the random model on Lua 5.1 (seed 7, step 76): pushing the call's
-- body function allocates there (and on LuaJIT), the collector ran the
-- finalizer after the closed check and before the busy mark, and the call went
-- on with the client's references released ("json: attempt to call a nil
-- value"). On Lua 5.4 nothing allocates at that point and this passes anyway.
local H = require("spec.helpers")
local ducky = require("ducky")

local CLOSED = "client:request: attempt to use a closed ducky client"

-- garbage whose finalizer closes c
local function closer(c)
  local function close() pcall(c.close, c) end
  if newproxy then -- Lua 5.1 and LuaJIT: tables take no __gc
    getmetatable(newproxy(true)).__gc = close
  else
    setmetatable({}, { __gc = close })
  end
end

describe("a finalizer closing the client as a call starts", function()
  it("leaves the call raising 'closed' or answering, never running on a closed client", function()
    local wrong, answered, refused = {}, 0, 0
    -- the collector's pace and k allocations move the moment the finalizer runs
    for _, stepmul in ipairs { 100, 200, 1000 } do
      for k = 0, 300 do
        local c = ducky.client(H.opts())
        local pause, mul = collectgarbage("setpause", 0), collectgarbage("setstepmul", stepmul)
        collectgarbage()
        closer(c)
        local junk = {}
        for i = 1, k do junk[i] = {} end
        local ok, res, err = pcall(c.request, c, "POST", "/echo", { json = { k = #junk } })
        collectgarbage("setpause", pause)
        collectgarbage("setstepmul", mul)
        collectgarbage()
        if ok and res then
          answered = answered + 1
        elseif not ok and tostring(res):find(CLOSED, 1, true) then
          refused = refused + 1
        else
          wrong[#wrong + 1] = ("stepmul %d, k %d: %s"):format(stepmul, k, tostring(ok and err or res))
        end
        pcall(c.close, c)
      end
    end
    assert.equals("", table.concat(wrong, "\n"))
    assert.equals(903, answered + refused)
  end)
end)
