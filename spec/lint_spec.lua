-- make lint's layout rules refuse what they forbid. C (tools/lint_c.sh): a
-- function past 60 lines, a file past 600, a file of the plain-C core that
-- includes a Lua or binding header. Lua (tools/lint_lua.sh): a function past
-- 60 lines, a file past 600; spec files keep the file rule only. Each case is
-- a small tree of its own.
local H = require("spec.helpers")

local ROOT = H.run("pwd"):gsub("%s+$", "")
local LINT = ROOT .. "/tools/lint_c.sh"
local LINT_LUA = ROOT .. "/tools/lint_lua.sh"

-- runs a lint in a fresh directory holding path = text for each file
local function lint_tree(script, files)
  local dir = H.tmpdir()
  for path, text in pairs(files) do
    os.execute(H.CLEAN_ENV .. "mkdir -p '" .. dir .. "/" .. path:match("^(.*)/") .. "'")
    H.write_file(dir .. "/" .. path, text)
  end
  local out, code = H.run(("%ssh -c \"cd '%s' && sh '%s'\""):format(H.CLEAN_ENV, dir, script))
  os.execute(H.CLEAN_ENV .. "rm -rf '" .. dir .. "'")
  return out, code
end

-- runs the C lint on src/<name> = text for each file
local function lint(files)
  local tree = {}
  for name, text in pairs(files) do tree["src/" .. name] = text end
  return lint_tree(LINT, tree)
end

local function func(lines)
  local body = {}
  for i = 1, lines do body[i] = "\tx += " .. i .. ";" end
  return "int f(int x)\n{\n" .. table.concat(body, "\n") .. "\n}\n"
end

-- A Lua function of that many lines between its header and its end.
local function lua_func(lines, header)
  local body = {}
  for i = 1, lines do body[i] = "  x = x + " .. i end
  return (header or "local function f(x)") .. "\n" .. table.concat(body, "\n") .. "\n  return x\nend\n"
end

describe("make lint's C layout rules", function()
  it("pass the tree as it is", function()
    local out, code = H.run(H.CLEAN_ENV .. "sh tools/lint_c.sh")
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

describe("make lint's Lua layout rules", function()
  it("accept a 60-line function and refuse a 61-line one, naming it, nested ones apart", function()
    local out, code = lint_tree(LINT_LUA, { ["lua/ducky/a.lua"] = lua_func(59) })
    assert.equals(0, code, out)
    out, code = lint_tree(LINT_LUA, { ["lua/ducky/a.lua"] = "local M = {}\n"
      .. lua_func(60, "function M.go(x)") })
    assert.equals(1, code)
    assert.equals("lua/ducky/a.lua:2: function M.go(x) is 61 lines (at most 60)\n", out)
    -- each function by its own range: the one holding a long one is long too; a command in bin/
    out, code = lint_tree(LINT_LUA, { ["bin/tool"] = "#!/usr/bin/env lua\nlocal t = { f = function(x)\n"
      .. lua_func(70, "  local function inner(x)") .. "end }\n" })
    assert.equals(1, code)
    assert.equals("bin/tool:2: local t = { f = function(x) is 73 lines (at most 60)\n"
      .. "bin/tool:3: local function inner(x) is 71 lines (at most 60)\n", out)
  end)

  it("refuse a file past 600 lines, a spec file too; a spec's functions may be long", function()
    local big = string.rep("-- a line\n", 601)
    local out, code = lint_tree(LINT_LUA, { ["spec/support/big.lua"] = big })
    assert.equals(1, code)
    assert.equals("spec/support/big.lua: 601 lines (at most 600)\n", out)
    out, code = lint_tree(LINT_LUA, { ["spec/x_spec.lua"] = lua_func(200, "describe('x', function()")
      :gsub("end\n$", "end)\n") })
    assert.equals(0, code, out)
    out, code = lint_tree(LINT_LUA, { ["spec/x_spec.lua"] = big })
    assert.equals(1, code)
    assert.equals("spec/x_spec.lua: 601 lines (at most 600)\n", out)
    local _, fine = lint_tree(LINT_LUA, { ["tools/ok.lua"] = string.rep("-- a line\n", 600) })
    assert.equals(0, fine)
  end)

  it("refuse a file luac cannot read", function()
    local out, code = lint_tree(LINT_LUA, { ["examples/bad.lua"] = "local = 1\n" })
    assert.equals(1, code)
    assert.matches("examples/bad%.lua:1:", out)
  end)

  it("pass the command's files (bin/ducky, lua/ducky/cli/, their specs and support)", function()
    local out, code = H.run(H.CLEAN_ENV .. "sh tools/lint_lua.sh bin/ducky lua/ducky/cli/*.lua "
      .. "spec/support/cli/*.lua spec/cli_spec.lua spec/cli_*_spec.lua spec/build_spec.lua "
      .. "spec/lint_spec.lua tools/*.lua")
    assert.equals(0, code, out)
  end)
end)
