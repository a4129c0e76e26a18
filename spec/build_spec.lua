-- The build as a packager and a luarocks user get it:
-- * the rock (ducky-dev-1.rockspec, whose build is the Makefile) and `make` make the
--   same module: luaopen_ducky its only export, linked -z nodelete and with libm, and
--   a C host that opens and closes three lua_States in turn makes one token exchange
--   with either (the process-wide cache outlives each state);
-- * make honours CPPFLAGS, LDFLAGS, PKG_CONFIG and WERROR=0, names the .pc it misses,
--   installs every file under PREFIX (DESTDIR staged) and uninstalls them all;
-- * VERSION is the one version: the module, the man page and CHANGELOG.md agree.
local H = require("spec.helpers")

local VERSION = assert(H.read_file("VERSION")):match("^(%d+%.%d+%.%d+)\n$")

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

-- A shell command run without the sanitizer preload and without the flags of the
-- make that may be running this suite; returns its output and exit status.
local function sh(cmd)
  return H.run(H.CLEAN_ENV .. "-u MAKEFLAGS -u MAKELEVEL -u MFLAGS sh -c " .. q(cmd))
end

local function ok_sh(cmd)
  local out, code = sh(cmd)
  assert(code == 0, cmd .. " exited " .. tostring(code) .. ":\n" .. out)
  return out
end

local function have(cmd) return select(2, sh("command -v " .. cmd .. " >/dev/null")) == 0 end

-- The plain suite on Lua 5.4 builds and runs these: under the sanitizer pass or on
-- another interpreter they would only repeat it.
local plain = H.LUA == "lua5.4" and (os.getenv("LD_PRELOAD") or "") == ""

describe("the build", function()
  local dir

  setup(function() dir = H.tmpdir() end)
  teardown(function() if dir then os.execute("rm -rf " .. q(dir)) end end)

  describe("rock and make", function()
    local modules = {} -- name -> path of ducky.so

    local function check_module(name)
      local so = modules[name]
      assert.is_string(so, name .. " was not built")
      local exports = ok_sh("nm -D --defined-only " .. q(so) .. " | awk '{ print $3 }'")
      assert.equals("luaopen_ducky\n", exports)
      local dynamic = ok_sh("readelf -d " .. q(so))
      assert.matches("Flags: [^\n]*NODELETE", dynamic)
      assert.matches("NEEDED%)%s+Shared library: %[libm%.so", dynamic)
      local id = H.new_id("states-" .. name)
      local out, code = sh(("LUA_CPATH=%s DUCKY_BASE_URL=%s DUCKY_TOKEN_URL=%s DUCKY_AUDIENCE=%s "
        .. "DUCKY_CLIENT_ID=%s DUCKY_CLIENT_SECRET=%s %s/states")
        :format(q(so:gsub("ducky%.so$", "?.so") .. ";;"), q(H.base_url()), q(H.token_url()),
          q(H.audience()), q(id), q(H.secret(id)), dir .. "/make"))
      assert.equals(0, code, out)
      assert.equals("states: 3 states done\n", out)
      assert.equals(1, H.exchanges(id), "three lua_States, one token exchange")
    end

    setup(function()
      if not plain then return end
      -- the Makefile build, in a directory of its own, with the three-state host
      ok_sh(("make -s BUILD=%s/make %s/make/ducky.so %s/make/states"):format(dir, dir, dir))
      modules.make = dir .. "/make/ducky.so"
      if have("luarocks") then
        ok_sh(("luarocks --lua-version=5.4 --tree %s/tree make --deps-mode=none ducky-dev-1.rockspec")
          :format(dir))
        modules.rock = dir .. "/tree/lib/lua/5.4/ducky.so"
      end
    end)

    local run_it = plain and it or pending
    run_it("make: luaopen_ducky alone, -z nodelete, libm; three states, one exchange", function()
      check_module("make")
    end)

    local rock_it = (plain and have("luarocks")) and it or pending
    rock_it("the rock: the same", function()
      check_module("rock")
    end)

    rock_it("the rock's build is the Makefile, and its ducky command runs from the tree", function()
      local spec = assert(H.read_file("ducky-dev-1.rockspec"))
      assert.matches('\nbuild = {\n  type = "make",', spec)
      local out = ok_sh(("eval \"$(luarocks --lua-version=5.4 --tree %s/tree path)\"; "
        .. "%s/tree/bin/ducky --version"):format(dir, dir))
      assert.equals("ducky " .. VERSION .. " (Lua 5.4)\n", out)
    end)

    rock_it("make rock LUA=luajit builds a module LuaJIT loads", function()
      if not have("luajit") then
        pending("no luajit")
        return
      end
      ok_sh(("make rock LUA=luajit ROCKS_TREE=%s/jit"):format(dir))
      local out = ok_sh(("luajit -e 'package.cpath = %q .. package.cpath; "
        .. "print(require(\"ducky\")._VERSION)'"):format(dir .. "/jit/lib/lua/5.1/?.so;"))
      assert.equals(VERSION .. "\n", out)
    end)
  end)

  describe("make", function()
    local run_it = plain and it or pending

    run_it("honours CPPFLAGS, LDFLAGS, PKG_CONFIG and WERROR=0", function()
      -- a pkg-config that notes it was asked (make -n still runs the $(shell) of a recipe)
      H.write_file(dir .. "/pc", '#!/bin/sh\necho "$@" >>"$0.log"\nexec pkg-config "$@"\n')
      ok_sh("chmod +x " .. q(dir .. "/pc"))
      local out = ok_sh(("make -n -B BUILD=%s/flags CPPFLAGS=-DSPEC_CPP LDFLAGS=-Wl,-z,relro "
        .. "PKG_CONFIG=%s/pc WERROR=0 all"):format(dir, dir))
      assert.matches("%-DSPEC_CPP", out)
      assert.matches("%-shared %-Wl,%-z,nodelete %-Wl,%-z,relro", out)
      assert.is_nil(out:find("-Werror", 1, true))
      assert.matches("libcurl", assert(H.read_file(dir .. "/pc.log")))
      assert.matches("%-Werror", ok_sh(("make -n -B BUILD=%s/flags all"):format(dir)))
    end)

    run_it("names the .pc file it misses and what to do", function()
      local out, code = sh(("make BUILD=%s/nopc LUA_PC=nolua all"):format(dir))
      assert.is_not.equals(0, code)
      assert.matches("pkg%-config finds no nolua%.pc%. Install Lua's development files %(Debian: "
        .. "liblua5%.4%-dev%), or name Lua's %.pc file with LUA_PC= %(Fedora and Homebrew: "
        .. "make LUA_PC=lua%)", out)
    end)

    run_it("installs every file under PREFIX (staged in DESTDIR), uninstall removes them all", function()
      local stage = dir .. "/stage"
      ok_sh(("make -s install DESTDIR=%s PREFIX=/opt/ducky"):format(stage))
      local files = ok_sh(("cd %s && find . -type f | sort"):format(q(stage)))
      local ngx_rooms = ok_sh("cd lua && ls ducky/ngx/*.lua | sort")
        :gsub("[^\n]+", "./opt/ducky/share/lua/5.4/%0")
      assert.equals(table.concat({
        "./opt/ducky/bin/ducky",
        "./opt/ducky/lib/lua/5.4/ducky.so",
        "./opt/ducky/share/bash-completion/completions/ducky",
        "./opt/ducky/share/lua/5.4/ducky/ngx.lua",
        ngx_rooms .. "./opt/ducky/share/lua/5.4/ducky/redis_store.lua",
        "./opt/ducky/share/man/man1/ducky.1", "" }, "\n"), files)
      local script = assert(H.read_file(stage .. "/opt/ducky/bin/ducky"))
      assert.matches("^#!/usr/bin/env lua5%.4\n%-%- ducky: the command line", script)
      local man = assert(H.read_file(stage .. "/opt/ducky/share/man/man1/ducky.1"))
      assert.matches('\n%.TH DUCKY 1 "[^"@]+" "ducky ' .. VERSION:gsub("%.", "%%.") .. '"', man)
      -- the installed command finds the installed module
      local out = ok_sh(("LUA_CPATH=%s/opt/ducky/lib/lua/5.4/?.so\\;\\; %s/opt/ducky/bin/ducky --version")
        :format(stage, stage))
      assert.equals("ducky " .. VERSION .. " (Lua 5.4)\n", out)
      ok_sh(("make -s uninstall DESTDIR=%s PREFIX=/opt/ducky"):format(stage))
      assert.equals("", ok_sh(("cd %s && find . -type f"):format(q(stage))))
    end)
  end)

  describe("the version", function()
    it("lives in VERSION: the module, the CHANGELOG's top entry and the Makefile agree", function()
      assert.is_string(VERSION, "VERSION holds x.y.z")
      assert.equals(VERSION, require("ducky")._VERSION)
      local changelog = assert(H.read_file("CHANGELOG.md"))
      local top = changelog:match("\n## (%S+) %(([^)]+)%)\n")
      assert.equals(VERSION, top)
      local date = changelog:match("\n## %S+ %(([^)]+)%)\n")
      assert.is_truthy(date == "unreleased" or date:match("^%d%d%d%d%-%d%d%-%d%d$"), date)
      assert.equals(VERSION .. "\n", ok_sh("make -s version"))
      -- nowhere else: no x.y.z of ours in the sources, the man page or the rockspec
      local hits = ok_sh("grep -rlF " .. q('"' .. VERSION .. '"')
        .. " src bin doc lua ducky-dev-1.rockspec || true")
      assert.equals("", hits)
    end)

    it("LICENSE is MIT, the ducky authors'", function()
      local license = assert(H.read_file("LICENSE"))
      assert.matches("^MIT License\n\nCopyright %(c%) %d+ the ducky authors\n", license)
      assert.matches('license = "MIT"', assert(H.read_file("ducky-dev-1.rockspec")))
    end)
  end)
end)
