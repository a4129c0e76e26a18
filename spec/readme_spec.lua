-- Every shell command README.md shows is run: by .ci/run (the line is there, as
-- written) or here. Here: the ```console sessions against the stand-in, output
-- compared (numbers and hex digits aside); the ```sh lines of RUN_HERE, in the
-- checkout, `sudo` replaced by a DESTDIR; `make …` written inline in the text,
-- as a dry run (`make -n`: the target and variables exist). A command in none of
-- these fails: a broken line in the README fails CI.
local H = require("spec.helpers")

local README = assert(H.read_file("README.md"))
local CI_RUN = assert(H.read_file(".ci/run"))

local q = H.quote
local function esc(s) return (s:gsub("%p", "%%%0")) end

-- A shell command in the checkout, without the sanitizer preload and the flags of
-- the make that may be running this suite.
local sh = H.sh

-- ```LANG blocks: { text = , line = }
local function blocks(lang)
  local found, n = {}, 0
  local inside, text, start
  for line in (README .. "\n"):gmatch("([^\n]*)\n") do
    n = n + 1
    if inside then
      if line == "```" then
        found[#found + 1] = { text = table.concat(text, "\n"), line = start }
        inside = false
      else
        text[#text + 1] = line
      end
    elseif line == "```" .. lang then
      inside, text, start = true, {}, n
    end
  end
  return found
end

-- The commands of a ```sh block: continuations joined, trailing comments dropped.
local function sh_commands(block)
  local cmds = {}
  local text = block.text:gsub("%s*\\\n%s*", " ")
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do
    line = line:gsub("%s%s+#.*$", ""):gsub("^%s+", ""):gsub("%s+$", "")
    if line ~= "" and line:sub(1, 1) ~= "#" then cmds[#cmds + 1] = line end
  end
  return cmds
end

local function in_ci(cmd)
  for line in CI_RUN:gmatch("[^\n]+") do
    if line:gsub("^%s+", ""):gsub("%s+$", "") == cmd then return true end
  end
  return false
end

local plain = H.LUA == "lua5.4" and (os.getenv("LD_PRELOAD") or "") == ""
local run_it = plain and it or pending

local EMBED_CC = "cc -Isrc -o %s examples/embed/embed.c build/libducky.a "
  .. "$(pkg-config --cflags --libs lua5.4 libcurl libcrypto) -lpthread -lm"

-- The ```sh commands this spec runs (each: how), all others must be in .ci/run.
local RUN_HERE = {
  ["make"] = "make",
  ["sudo make install"] = "make install DESTDIR=$STAGE",
  ["sudo make uninstall"] = "make uninstall DESTDIR=$STAGE && test -z \"$(find $STAGE -type f)\"",
  ["make rock"] = "make rock ROCKS_TREE=$STAGE/rocks",
  ["make standin"] = "STANDIN", -- in the background, its lines then used (below)
  ["make build/libducky.a"] = "make build/libducky.a",
  -- the embedding build, its program written to $STAGE rather than the checkout
  [EMBED_CC:format("embed")] = EMBED_CC:format("$STAGE/embed"),
  ["./embed examples/embed/hello.lua"] = "$STAGE/embed examples/embed/hello.lua",
}

describe("README.md", function()
  it("every ```sh command is run by .ci/run or by this spec", function()
    local missing = {}
    for _, b in ipairs(blocks("sh")) do
      for _, cmd in ipairs(sh_commands(b)) do
        if not RUN_HERE[cmd] and not in_ci(cmd) then
          missing[#missing + 1] = ("README.md:%d: %s"):format(b.line, cmd)
        end
      end
    end
    assert.equals("", table.concat(missing, "\n"), "commands nothing runs")
  end)

  run_it("the ```sh commands run here succeed (sudo: a DESTDIR instead; the stand-in's env set)", function()
    local stage = H.tmpdir()
    local id = H.new_id("readme")
    local env = ("export STAGE=%s XDG_CACHE_HOME=%s/cache DUCKY_BASE_URL=%s DUCKY_TOKEN_URL=%s "
      .. "DUCKY_AUDIENCE=%s DUCKY_CA_FILE=%s DUCKY_CLIENT_ID=%s DUCKY_CLIENT_SECRET=%s; ")
      :format(q(stage), q(stage), q(H.base_url()), q(H.token_url()), q(H.audience()), q(H.ca_file()), q(id),
        q(H.secret(id)))
    for _, b in ipairs(blocks("sh")) do
      for _, cmd in ipairs(sh_commands(b)) do
        local how = RUN_HERE[cmd]
        if how and how ~= "STANDIN" then
          local out, code = sh(env .. how)
          assert(code == 0, ("README.md:%d: %s (run as: %s) exited %s:\n%s"):format(b.line, cmd, how,
            tostring(code), out))
          if cmd:find("^%./embed") then assert.matches("embedded ducky [%d.]+: 200", out) end
        end
      end
    end
    os.execute("rm -rf " .. q(stage))
  end)

  run_it("make standin: its lines point a script, an example and the ducky command at it", function()
    local dir = H.tmpdir()
    -- in its own process group, so that the test can stop make, the script and the stand-in
    os.execute(H.CLEAN_ENV .. "-u MAKEFLAGS -u MAKELEVEL -u MFLAGS setsid sh -c " .. q(
      ("echo $$ >%s/pgid; exec make -s standin >%s/out 2>&1"):format(dir, dir)) .. " </dev/null &")
    local out
    for _ = 1, 300 do -- until it says how to stop it (at most ~30 s of builds and start-up)
      out = H.read_file(dir .. "/out") or ""
      if out:find("Ctrl%-C stops it") then break end
      os.execute("sleep 0.1")
    end
    local pgid = H.read_file(dir .. "/pgid")
    local lines = {}
    for line in out:gmatch("[^\n]+") do
      if line:find("^export ") then lines[#lines + 1] = line end
    end
    local check, code = sh(table.concat(lines, "\n") .. "\nexport XDG_CACHE_HOME=" .. q(dir .. "/cache")
      .. "\nducky ping --protected && lua5.4 examples/ping.lua")
    os.execute(("kill -TERM -%d 2>/dev/null"):format(tonumber(pgid) or 0))
    os.execute("rm -rf " .. q(dir))
    assert.matches("up at https://localhost:%d+/v3%.", out)
    assert.equals(7, #lines, out)
    assert.equals(0, code, check)
    assert.matches('"ready": true', check)
    assert.matches("ping_protected: 200", check)
  end)

  it("every `make …` written inline is a target make knows (make -n)", function()
    local bad = {}
    for span in README:gmatch("`([^`\n]+)`") do
      for part in (span .. "&&"):gmatch("%s*(.-)%s*&&") do
        part = part:gsub("^sudo ", "")
        if part == "make" or part:find("^make ") then
          local cmd = part:gsub("…", "lua5.1"):gsub("=DIR", "=/nonexistent")
          local out, code = sh(cmd:gsub("^make", "make -n") .. " >/dev/null")
          if code ~= 0 then bad[#bad + 1] = span .. ": " .. out end
        end
      end
    end
    assert.equals("", table.concat(bad, "\n"))
  end)

  -- the short list Install gives "to build and run" lacked lua5.4: nothing ran after it
  it("Install's packages to build and run are tools/deps.sh's, the interpreter among them", function()
    local listed = README:match("with the packages `make demo` installs %(or, to build and run only,"
      .. "%s*`apt%-get install ([^`]+)`")
    assert.is_string(listed, "Install's package list not found")
    local deps = assert(H.read_file("tools/deps.sh")):match('\nPKGS="([^"$]+)"\n')
    assert.equals(deps, (listed:gsub("%s+", " ")))
  end)

  it("shows the assert idiom that keeps the message on Lua 5.1 and 5.2 too", function()
    local idiom = "local res, err = client:ping_protected()\nassert(res, tostring(err))"
    assert.is_truthy(README:find(idiom, 1, true), "the idiom is not in README.md")
    for _, lua in ipairs({ "lua5.1", "lua5.2", "lua5.4", "luajit" }) do
      local build = lua == "lua5.4" and "build" or "build-" .. lua
      if H.read_file(build .. "/ducky.so") then
        local out = H.run(("%sLUA_CPATH='./%s/?.so;;' %s -e %s"):format(H.CLEAN_ENV, build, lua,
          q("local client = require('ducky').client{ base_url = 'http://127.0.0.1:1/v3', "
            .. "client_id = 'x', client_secret = 'y', token_url = 'http://127.0.0.1:1/t', retries = 0 }\n"
            .. idiom)))
        assert.matches("network error", out, lua)
        assert.is_nil(out:find("bad argument", 1, true), lua)
      end
    end
  end)

  describe("```console sessions, against the stand-in", function()
    run_it("print what README.md shows", function()
      local home = H.tmpdir()
      local script = { ("cd %s && export HOME=%s XDG_CONFIG_HOME=%s/.config XDG_CACHE_HOME=%s/.cache "
        .. "PATH=%s/bin:$PATH LUA_CPATH=%s DUCKY_BASE_URL=%s DUCKY_TOKEN_URL=%s DUCKY_AUDIENCE=%s "
        .. "DUCKY_CA_FILE=%s && unset DUCKY_LUA DUCKY_CLIENT_ID DUCKY_CLIENT_SECRET NO_COLOR")
        :format(q(home), q(home), q(home), q(home), q(io.popen("pwd"):read("*l")), q("./build/?.so;;"),
          q(H.base_url("https")), q(H.token_url("https")), q(H.audience()), q(H.ca_file())) }
      local expected, shown = {}, {}
      for _, b in ipairs(blocks("console")) do
        for line in (b.text .. "\n"):gmatch("([^\n]*)\n") do
          local cmd = line:match("^%$ (.*)$")
          if cmd then
            shown[#shown + 1] = cmd
            expected[#shown] = line .. "\n"
            script[#script + 1] = ("echo '@@ %d'\n{ %s\n} 2>&1\necho \"[exit $?]\""):format(#shown, cmd)
          else
            expected[#shown] = expected[#shown] .. line .. "\n"
          end
        end
      end
      local out = sh(table.concat(script, "\n"))
      local got = {}
      for i, cmd in ipairs(shown) do
        local chunk = out:match("@@ " .. i .. "\n(.-)%[exit %d+%]") or ""
        local code = out:match("@@ " .. i .. "\n.-%[exit (%d+)%]")
        if chunk ~= "" and chunk:sub(-1) ~= "\n" then chunk = chunk .. "\n" end
        got[i] = "$ " .. cmd .. "\n" .. chunk .. (code ~= "0" and "[exit " .. tostring(code) .. "]\n" or "")
      end
      local function norm(s)
        return (s:gsub(esc(home), "/home/you"):gsub("%x%x%x%x%x%x%x%x%x%x%x%x", "<hex>")
          :gsub("%d+%.?%d*", "N"):gsub("\n$", ""))
      end
      os.execute("rm -rf " .. q(home))
      for i = 1, #shown do
        local want, have = norm(expected[i]), norm(got[i])
        assert(want == have, "README.md's session differs; it ran as:\n"
          .. table.concat(got, ""):gsub(esc(home), "/home/you"))
      end
    end)
  end)
end)
