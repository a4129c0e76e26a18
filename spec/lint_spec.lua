-- tools/lint_c.sh (make lint) refuses what the layout rules forbid: a function
-- past 60 lines, a file past 600, a file of the plain-C core that includes a
-- Lua or binding header. Each case is a small tree of its own.
local H = require("spec.helpers")

local LINT = H.run("pwd"):gsub("%s+$", "") .. "/tools/lint_c.sh"

-- runs the lint in a fresh directory holding src/<name> = text for each file
local function lint(files)
  local dir = H.tmpdir()
  os.execute("mkdir -p '" .. dir .. "/src'")
  for name, text in pairs(files) do H.write_file(dir .. "/src/" .. name, text) end
  local out, code = H.run(("cd '%s' && sh '%s'"):format(dir, LINT))
  os.execute("rm -rf '" .. dir .. "'")
  return out, code
end

local function func(lines)
  local body = {}
  for i = 1, lines do body[i] = "\tx += " .. i .. ";" end
  return "int f(int x)\n{\n" .. table.concat(body, "\n") .. "\n}\n"
end

describe("make lint's C layout rules", function()
  it("pass the tree as it is", function()
    local out, code = H.run("sh tools/lint_c.sh")
    assert.equals(0, code, out)
  end)

  it("accept a 60-line function and refuse a 61-line one, naming it", function()
    local _, ok = lint({ ["a.c"] = func(60) })
    assert.equals(0, ok)
    local out, code = lint({ ["a.c"] = func(61) })
    assert.equals(1, code)
    assert.matches("src/a.c:2: int f%(int x%) is 61 lines %(at most 60%)", out)
  end)

  it("refuse a file past 600 lines", function()
    local out, code = lint({ ["big.c"] = string.rep("/* */\n", 601) })
    assert.equals(1, code)
    assert.matches("src/big.c: 601 lines %(at most 600%)", out)
  end)

  it("refuse a Lua header in the plain-C core, not in the binding", function()
    local out, code = lint({ ["token.c"] = "#include <lauxlib.h>\n" })
    assert.equals(1, code)
    assert.matches("src/token.c: the plain%-C core includes a Lua or binding header", out)
    out, code = lint({ ["core.c"] = '#include "client.h"\n' })
    assert.equals(1, code, out)
    local _, fine = lint({ ["call.c"] = "#include <lua.h>\n" })
    assert.equals(0, fine)
  end)
end)
