-- The spec helpers themselves (spec/helpers.lua): a helper that passes on
-- anything would make every spec that uses it pass on anything.
local H = require("spec.helpers")
local socket = require("socket")

-- the message of what f raised (f must raise)
local function failure_of(f)
  local ok, e = pcall(f)
  assert.is_false(ok, "expected the helper to fail the spec")
  return tostring(e)
end

describe("H.raises", function()
  it("returns the message when fn raises one containing the expected text", function()
    local msg = H.raises(function(a, b) error("bad " .. a .. b, 0) end, "bad xy", "x", "y")
    assert.equals("bad xy", msg)
  end)

  it("matches plain text: Lua pattern characters mean themselves", function()
    H.raises(function() error("option 'timeout' is out of range: -1 (min 0.1%)", 0) end,
      "range: -1 (min 0.1%)")
    local e = failure_of(function()
      H.raises(function() error("abc", 0) end, "a.c?")
    end)
    assert.truthy(e:find('expected an error containing "a.c?", got "abc"', 1, true), e)
  end)

  it("fails when fn does not raise", function()
    local e = failure_of(function() H.raises(function() return 1 end, "boom") end)
    assert.truthy(e:find('expected an error containing "boom", got none', 1, true), e)
  end)

  it("fails when fn raises another message", function()
    local e = failure_of(function() H.raises(error, "not an HTTP method name", "path holds a space") end)
    assert.truthy(e:find('got "path holds a space"', 1, true), e)
  end)

  it("fails without an expected message", function()
    local e = failure_of(function() H.raises(error) end)
    assert.truthy(e:find("H.raises: give the expected message", 1, true), e)
    e = failure_of(function() H.raises(error, "") end)
    assert.truthy(e:find("H.raises: give the expected message", 1, true), e)
  end)

  it("reads an error object through tostring", function()
    local obj = setmetatable({}, { __tostring = function() return "ducky config error: x" end })
    assert.equals("ducky config error: x", H.raises(error, "config error", obj))
  end)
end)

describe("H.wait_until", function()
  it("returns fn's first true value as soon as it comes", function()
    local n = 0
    local v = H.wait_until(function()
      n = n + 1
      return n >= 3 and "third"
    end, 5, "the third call")
    assert.equals("third", v)
    assert.equals(3, n)
  end)

  it("fails after the deadline naming what it waited for and fn's last detail", function()
    local t0 = socket.gettime()
    local e = failure_of(function()
      H.wait_until(function() return false, "still 0" end, 0.2, "a counter to reach 1")
    end)
    local want = "timed out after 0.2 s waiting for a counter to reach 1 (last: still 0)"
    assert.truthy(e:find(want, 1, true), e)
    assert.is_true(socket.gettime() - t0 >= 0.2)
  end)
end)

describe("H.show", function()
  it("quotes a string on one line", function()
    for _, s in ipairs { "G\r\nET", "GET\n", "a\0b", 'say "hi"' } do
      local shown = H.show(s)
      assert.is_nil(shown:find("[\r\n]"), shown)
      assert.equals(s, (loadstring or load)("return " .. shown)())
    end
  end)
end)
