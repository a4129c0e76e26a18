-- The build as a packager and a luarocks user get it:
-- * the rock (ducky-dev-1.rockspec, whose build is the Makefile) and `make` make the
--   same module: luaopen_ducky its only export, linked -z nodelete and with libm, and
--   a C host that opens and closes three lua_States in turn makes one token exchange
--   with either (the process-wide cache outlives each state);
-- * make honours CPPFLAGS, LDFLAGS, PKG_CONFIG and WERROR=0, names the .pc it misses,
--   installs every file under PREFIX (DESTDIR staged) and uninstalls them all;
-- * VERSION is the one version: the module, the man page and CHANGELOG.md agree.
local H = require("spec.helpers")
local socket = require("socket")

local VERSION = assert(H.read_file("VERSION")):match("^(%d+%.%d+%.%d+)\n$")

local q = H.quote

-- A shell command run without the sanitizer preload and without the flags of the
-- make that may be running this suite; returns its output and exit status.
local sh = H.sh

local function ok_sh(cmd)
  local out, code = sh(cmd)
  assert(code == 0, cmd .. " exited " .. tostring(code) .. ":\n" .. out)
  return out
end

-- Every Lua module of the tree, as a path under a Lua directory ("ducky/cli/args.lua"), sorted:
-- make install and the rock put each one there, subfolders kept.
local function lua_files()
  local list = {}
  for f in ok_sh("cd lua && find ducky -name '*.lua' | LC_ALL=C sort"):gmatch("[^\n]+") do
    list[#list + 1] = f
  end
  assert.is_true(#list >= 2)
  return list
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
    local rock_out -- what make rock printed

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
      -- a release build has no test hooks (make check's builds do: TEST_HOOKS=1)
      local hooks = ok_sh(("LUA_CPATH=%s lua5.4 -e 'io.write(tostring(require(\"ducky\")._test))'")
        :format(q(so:gsub("ducky%.so$", "?.so") .. ";;")))
      assert.equals("nil", hooks)
    end

    setup(function()
      if not plain then return end
      -- the Makefile build, in a directory of its own, with the three-state host
      ok_sh(("make -s BUILD=%s/make %s/make/ducky.so %s/make/states"):format(dir, dir, dir))
      modules.make = dir .. "/make/ducky.so"
      if have("luarocks") then
        rock_out = ok_sh(("make rock ROCKS_TREE=%s/tree"):format(dir))
        modules.rock = dir .. "/tree/lib/lua/5.4/ducky.so"
      end
    end)

    local run_it = plain and it or pending
    run_it("make: luaopen_ducky alone, -z nodelete, libm; three states, one exchange", function()
      check_module("make")
    end)

    local rock_it = (plain and have("luarocks")) and it or pending
    rock_it("the rock: the same, with every Lua module of the tree (subfolders kept)", function()
      check_module("rock")
      for _, f in ipairs(lua_files()) do
        assert.is_truthy(H.read_file(dir .. "/tree/share/lua/5.4/" .. f), f .. " not in the rock")
      end
    end)

    rock_it("the rock's build is the Makefile, and its ducky command runs from the tree", function()
      local spec = assert(H.read_file("ducky-dev-1.rockspec"))
      assert.matches('\nbuild = {\n  type = "make",', spec)
      local out = ok_sh(("eval \"$(luarocks --lua-version=5.4 --tree %s/tree path)\"; "
        .. "%s/tree/bin/ducky --version"):format(dir, dir))
      assert.equals("ducky " .. VERSION .. " (Lua 5.4)\n", out)
      -- issue 19 item 21: lua-cjson is there (Debian's package), so luarocks says nothing missing
      assert.matches("ducky dev%-1 is now installed", rock_out)
      assert.is_nil(rock_out:find("Missing dependencies", 1, true), rock_out)
    end)

    rock_it("make rock LUA=luajit builds a module LuaJIT loads, and its command runs LuaJIT", function()
      if not have("luajit") then
        pending("no luajit")
        return
      end
      local made = ok_sh(("make rock LUA=luajit ROCKS_TREE=%s/jit"):format(dir))
      assert.is_nil(made:find("Missing dependencies", 1, true), made)
      local out = ok_sh(("luajit -e 'package.cpath = %q .. package.cpath; "
        .. "print(require(\"ducky\")._VERSION)'"):format(dir .. "/jit/lib/lua/5.1/?.so;"))
      assert.equals(VERSION .. "\n", out)
      -- issue 19 item 21: luarocks --lua-version=5.1 took lua5.1 for the command
      assert.matches("exec '[^']*/luajit' ", assert(H.read_file(dir .. "/jit/bin/ducky")))
    end)
  end)

  describe("make", function()
    local run_it = plain and it or pending

    -- issue 19 item 15: the flags file was rewritten on every LUA=luajit run
    run_it("a second make compiles nothing, for every Lua; a changed flag rebuilds", function()
      for _, lua in ipairs({ "lua5.4", "luajit" }) do
        if have(lua) then
          local build = ("%s/again-%s"):format(dir, lua)
          ok_sh(("make -s LUA=%s BUILD=%s all"):format(lua, build))
          local out = ok_sh(("make LUA=%s BUILD=%s all"):format(lua, build))
          assert.is_nil(out:find("-c -o", 1, true), lua .. " compiled again:\n" .. out)
          out = ok_sh(("make LUA=%s BUILD=%s CFLAGS='-O1 -g' %s/url.o"):format(lua, build, build))
          assert.matches("%-O1 %-g %-c %-o [^\n]*url%.o", out)
        end
      end
    end)

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
      local files = ok_sh(("cd %s && find . -type f | LC_ALL=C sort"):format(q(stage)))
      local expected = { "./opt/ducky/bin/ducky", "./opt/ducky/include/ducky.h",
        "./opt/ducky/lib/lua/5.4/ducky.so", "./opt/ducky/share/bash-completion/completions/ducky",
        "./opt/ducky/share/man/man1/ducky.1" }
      for _, f in ipairs(lua_files()) do expected[#expected + 1] = "./opt/ducky/share/lua/5.4/" .. f end
      table.sort(expected)
      assert.equals(table.concat(expected, "\n") .. "\n", files)
      local script = assert(H.read_file(stage .. "/opt/ducky/bin/ducky"))
      assert.matches("^#!/usr/bin/env lua5%.4\npackage%.path, package%.cpath = "
        .. "%[==%[/opt/ducky/share/lua/5%.4/%?%.lua;%]==%] %.%. package%.path, "
        .. "%[==%[/opt/ducky/lib/lua/5%.4/%?%.so;%]==%] [^\n]*\n"
        .. "%-%- ducky: the command line", script)
      local man = assert(H.read_file(stage .. "/opt/ducky/share/man/man1/ducky.1"))
      assert.matches('\n%.TH DUCKY 1 "[^"@]+" "ducky ' .. VERSION:gsub("%.", "%%.") .. '"', man)
      ok_sh(("make -s uninstall DESTDIR=%s PREFIX=/opt/ducky"):format(stage))
      assert.equals("", ok_sh(("cd %s && find . -type f"):format(q(stage))))
    end)

    -- issue 19 item 21: the installed command is the Lua it is built for, with its module and
    -- pieces wherever PREFIX put them, and nothing on LUA_PATH or LUA_CPATH
    run_it("an installed command runs as it is: the Lua it is built for, its module found", function()
      for lua, shown in pairs({ ["lua5.4"] = "Lua 5.4", luajit = "LuaJIT" }) do
        if have(lua) then
          local prefix = ("%s/prefix-%s"):format(dir, lua)
          ok_sh(("make -s install LUA=%s PREFIX=%s"):format(lua, prefix))
          local script = assert(H.read_file(prefix .. "/bin/ducky"))
          assert.equals("#!/usr/bin/env " .. lua .. "\n", script:match("^[^\n]*\n"))
          local out = ok_sh(("cd / && env -u LUA_PATH -u LUA_CPATH %s/bin/ducky --version"):format(q(prefix)))
          assert.equals("ducky " .. VERSION .. " (" .. shown, out:sub(1, #VERSION + 8 + #shown))
          -- its pieces too: a command that needs them all
          out = sh(("cd / && env -u LUA_PATH -u LUA_CPATH DUCKY_BASE_URL=http://127.0.0.1:1/v3 %s/bin/ducky "
            .. "--retries 0 ping"):format(q(prefix)))
          assert.matches("^ducky: network error: ", out)
          ok_sh(("make -s uninstall LUA=%s PREFIX=%s"):format(lua, prefix))
        end
      end
    end)
  end)

  describe("make standin", function()
    -- Runs `make standin LUA=lua` in its own process group until it prints its lines;
    -- returns its export lines and its whole output, the group stopped.
    local function standin_lines(lua)
      local out_file, pgid_file = dir .. "/standin-" .. lua, dir .. "/pgid-" .. lua
      os.execute(H.CLEAN_ENV .. "-u MAKEFLAGS -u MAKELEVEL -u MFLAGS setsid sh -c " .. q(
        ("echo $$ >%s; exec make -s standin LUA=%s >%s 2>&1"):format(pgid_file, lua, out_file))
        .. " </dev/null &")
      local out
      local deadline = socket.gettime() + 60 -- a build first, then the stand-in's start-up
      repeat
        socket.sleep(0.05)
        out = H.read_file(out_file) or ""
      until out:find("Ctrl%-C stops it") or out:find("Error") or socket.gettime() > deadline
      os.execute(("kill -TERM -%d 2>/dev/null"):format(tonumber(H.read_file(pgid_file)) or 0))
      local lines = {}
      for line in out:gmatch("[^\n]+") do
        if line:find("^export ") then lines[#lines + 1] = line end
      end
      assert.is_true(#lines > 0, out)
      return table.concat(lines, "\n"), out
    end

    -- issue 19 item 16: the LUA_CPATH line of a lua5.4 build made LuaJIT fail on lua_rotate
    local run_it = plain and it or pending
    run_it("prints a module path for the Lua it was built for, which another Lua does not take", function()
      local env = standin_lines("lua5.4")
      -- a shell of the user's: none of the suite's module paths
      local load = "unset LUA_CPATH LUA_PATH LUA_CPATH_5_4\n%s\n%s -e 'print(require(\"ducky\")._VERSION)'"
      assert.equals(VERSION .. "\n", ok_sh(load:format(env, "lua5.4")))
      for _, other in ipairs({ "luajit", "lua5.1", "lua5.3" }) do
        if have(other) then
          local out, code = sh(load:format(env, other))
          assert.is_not.equals(0, code, other .. " loaded it")
          assert.matches("module 'ducky' not found", out, other)
          assert.is_nil(out:find("undefined symbol", 1, true), out)
        end
      end
      if have("luajit") then
        local jit, out = standin_lines("luajit")
        assert.matches("make standin LUA=", out)
        assert.equals(VERSION .. "\n", ok_sh(load:format(jit, "luajit")))
      end
    end)
  end)

  describe("make demo", function()
    -- LUA= is the Lua to build and run for: the demo ran lua5.4 on build-luajit's module
    -- ("undefined symbol: lua_tonumber"). _demo: make demo without tools/deps.sh's apt-get.
    local run_it = (plain and have("luajit")) and it or pending
    run_it("LUA=luajit runs the examples and the command on LuaJIT", function()
      local out, code = sh("make -s _demo LUA=luajit 2>&1")
      assert.equals(0, code, out)
      assert.matches("\n== luajit examples/ping%.lua\n", out)
      assert.is_nil(out:find("lua5.4 examples", 1, true), out)
      assert.matches('"ready": true\n}\n== make standin', out)
    end)
  end)

  -- make dist needs git; a packager's `make check` may run where there is none
  local git_describe = have("git") and describe or pending
  git_describe("make dist", function()
    -- the files a commit of this tree holds as they are now, unpacked in a directory of their
    -- own (no .git): in a checkout its tracked files; in an unpacked release (`make check`
    -- from the tarball: no .git, git ls-files fails) every file .gitignore does not leave out
    local function unpacked(name)
      local tree = dir .. "/" .. name
      ok_sh(([[mkdir -p %s && if [ "$(git rev-parse --show-toplevel 2>/dev/null)" = "$(pwd -P)" ]; then
          git ls-files -z
        else
          g=$(mktemp -d) && git --git-dir="$g" init -q && git --git-dir="$g" --work-tree=. \
            -c core.excludesFile=/dev/null ls-files -z --others --exclude-standard; rm -rf "$g"
        fi | xargs -0 tar -cf - | tar -xf - -C %s]]):format(q(tree), q(tree)))
      return tree
    end

    it("in an unpacked release (no .git): fails loudly and makes no tarball", function()
      local tree = unpacked("release")
      local out, code = sh(("cd %s && make dist"):format(q(tree)))
      assert.is_not.equals(0, code, out)
      assert.matches("dist: [^\n]* is not a git checkout of ducky", out)
      assert.equals("", ok_sh(("cd %s && find . -name '*.tar.gz' -o -name '*.rockspec' -path './dist/*'")
        :format(q(tree))))
    end)

    it("in a checkout: a tarball of every tracked file and a rockspec with its md5", function()
      local tree = unpacked("checkout")
      ok_sh(("cd %s && git init -q && git add -A && git -c user.name=spec -c user.email=spec@localhost "
        .. "commit -qm spec"):format(q(tree)))
      local out = ok_sh(("cd %s && make -s dist DIST_URL=https://example.invalid/r"):format(q(tree)))
      local name = "ducky-" .. VERSION
      assert.equals(("dist/%s.tar.gz\ndist/%s-1.rockspec\n"):format(name, name), out)
      local listed = ok_sh(("cd %s && tar -tzf dist/%s.tar.gz | grep -v '/$' | LC_ALL=C sort")
        :format(q(tree), name))
      local tracked = ok_sh(("cd %s && git ls-files | sed 's|^|%s/|' | LC_ALL=C sort"):format(q(tree), name))
      assert.equals(tracked, listed)
      -- as a packager unpacks it (as root, tar keeps the modes): nothing group or world writable
      local modes = ok_sh(("cd %s && tar -tvzf dist/%s.tar.gz | cut -c1-10 | LC_ALL=C sort -u")
        :format(q(tree), name))
      assert.equals("-rw-r--r--\n-rwxr-xr-x\ndrwxr-xr-x\n", modes)
      local md5 = ok_sh(("cd %s && md5sum dist/%s.tar.gz"):format(q(tree), name)):match("^(%x+)")
      local spec = assert(H.read_file(("%s/dist/%s-1.rockspec"):format(tree, name)))
      assert.matches(('source = { url = "https://example.invalid/r/%s.tar.gz", md5 = "%s", dir = "%s" }')
        :format(name, md5, name):gsub("[%p]", "%%%0"), spec)
    end)
  end)

  describe("the man page", function()
    -- issue 19 item 21: the checkout's page showed "ducky @VERSION@ @DATE@"
    it("reads in the checkout without make (no placeholder); make install writes version and date", function()
      local page = assert(H.read_file("doc/ducky.1"))
      assert.is_nil(page:find("@%u+@"), "a placeholder in doc/ducky.1")
      if have("man") then
        local shown = ok_sh("MANWIDTH=80 man -l doc/ducky.1 2>/dev/null")
        assert.matches("\nducky %(source checkout%)%s+DUCKY%(1%)\n*$", shown)
      end
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
