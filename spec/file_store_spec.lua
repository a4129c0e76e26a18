-- Token rule 4 and cross-process single-flight: the per-user file cache, an
-- explicit file, and everything odd about them (each ignored, never fatal).
local H = require("spec.helpers")
local cjson = require("cjson")
local ducky = require("ducky")

local build = os.getenv("DUCKY_BUILD") or "build"
local WORKER = "spec/support/workers/file_worker.lua"
-- giving a file to another user (chown) takes root; as anyone else those cases are pending
local IS_ROOT = H.run("id -u"):match("^0%s") ~= nil

-- Runs cmd; its output. Workers keep the environment (a sanitizer runtime the
-- suite preloads); plain tools run without it.
local function run(cmd)
  local p = assert(io.popen(cmd .. " 2>&1"))
  local out = p:read("*a")
  p:close()
  return out
end

local function sh(cmd)
  return run("unset LD_PRELOAD; " .. cmd)
end

-- Runs file_worker.lua in a child process; returns ok, events, output, exit code.
-- With `limit` (seconds) the child runs under timeout(1) and is killed then
-- (exit 137), so a call that hangs fails its spec instead of hanging the suite.
local function worker(id, env, cache, calls, limit)
  local cmd = ("%s%s LUA_CPATH='./%s/?.so;;' %s %s %q %q %q %q %q %s %d")
    :format(limit and ("timeout -s KILL %d env "):format(limit) or "", env or "", build, H.LUA, WORKER,
      H.base_url(), H.token_url(), H.audience(), id, H.secret(id), cache or "default", calls or 1)
  local out, code = H.run(cmd)
  local ok = code == 0
  local events = {}
  for line in out:gmatch("[^\n]+") do
    local good, e = pcall(cjson.decode, line)
    if good and type(e) == "table" then events[#events + 1] = e end
  end
  return ok, events, out, code
end

local function find(events, name, field, value)
  for _, e in ipairs(events) do
    if e.event == name and (field == nil or e[field] == value) then return e end
  end
end

local function token_file(dir)
  return (sh("ls " .. dir .. "/ducky/*.token"):match("[^\n]+"))
end

describe("file token cache", function()
  local home, env

  before_each(function()
    home = H.tmpdir()
    env = "XDG_CACHE_HOME=" .. home
  end)

  after_each(function() sh("rm -rf " .. home) end)

  it("is the default: directory 0700, file 0600, token and expiry but no secret", function()
    local id = H.new_id("file")
    local ok, events, out = worker(id, env)
    assert.is_truthy(ok, out)
    assert.is_truthy(find(events, "token", "source", "exchange"))
    assert.equals("drwx------", sh("stat -c %A " .. home .. "/ducky"):match("%S+"))
    local file = token_file(home)
    assert.equals("-rw-------", sh("stat -c %A " .. file):match("%S+"))
    local text = H.read_file(file)
    assert.matches("^ducky%-token%-v1\n", text)
    assert.matches("\ntoken tok_%x+\n", text)
    assert.matches("\nexpires_at [%d.]+\n", text)
    assert.is_nil(text:find(H.secret(id), 1, true))
    assert.equals("", sh("grep -rl " .. H.secret(id) .. " " .. home))
  end)

  it("serves later processes: 10 sequential processes make one exchange", function()
    local id = H.new_id("file-seq")
    for i = 1, 10 do
      local ok, events, out = worker(id, env)
      assert.is_truthy(ok, out)
      if i > 1 then assert.is_truthy(find(events, "token", "source", "file"), out) end
    end
    assert.equals(1, H.exchanges(id))
  end)

  it("16 processes started together make one exchange (cross-process single-flight)", function()
    local id = H.new_id("file-par")
    H.fault{ path = "/oauth/token", client_id = id, delay = 0.3 } -- widen the race
    local cmd = ("cd %q && for i in $(seq 16); do %s LUA_CPATH='./%s/?.so;;' " .. H.LUA
      .. " %s %q %q %q %q %q default >/dev/null || echo FAILED & done; wait")
      :format(os.getenv("PWD") or ".", env, build, WORKER, H.base_url(), H.token_url(), H.audience(), id,
        H.secret(id))
    local out = run(cmd)
    assert.is_nil(out:find("FAILED"), out)
    assert.equals(1, H.exchanges(id))
  end)

  it("a process killed while holding the lock blocks nobody", function()
    local id = H.new_id("file-kill")
    H.fault{ path = "/oauth/token", client_id = id, delay = 30 }
    local pidfile = home .. "/pid"
    run(("%s LUA_CPATH='./%s/?.so;;' " .. H.LUA .. " %s %q %q %q %q %q default"
      .. " >/dev/null 2>&1 & echo $! > %q"):format(env, build, WORKER, H.base_url(), H.token_url(),
        H.audience(), id, H.secret(id), pidfile))
    -- the first process holds the lock while it exchanges: once its token request
    -- has reached the stand-in (which delays the answer), the lock is held
    H.wait_until(function() return H.token_requests(id).received >= 1 end, 10,
      "the first process's token request")
    sh("kill -9 " .. H.read_file(pidfile))
    H.reset() -- the stand-in forgets the delay fault
    local ok, events, out = worker(id, env)
    assert.is_truthy(ok, out)
    assert.is_truthy(find(events, "token", "source", "exchange"))
  end)

  it("ignores an expired token in the file", function()
    local id = H.new_id("file-exp")
    assert.is_truthy(worker(id, env))
    local file = token_file(home)
    local text = H.read_file(file):gsub("expires_at [%d.]+", "expires_at 1000.000")
    local f = assert(io.open(file, "wb"))
    f:write(text)
    f:close()
    local ok, events = worker(id, env)
    assert.is_truthy(ok)
    assert.is_truthy(find(events, "token", "source", "exchange"))
    assert.equals(2, H.exchanges(id))
  end)

  -- Each odd state: the request still succeeds, from a new exchange, and the
  -- problem is reported through log.
  local odd = {
    { "a file of another user", function(file) sh("chown nobody " .. file) end, "another user",
      root = true },
    { "a group-readable file", function(file) sh("chmod 0640 " .. file) end, "open to other users" },
    { "a world-readable file", function(file) sh("chmod 0604 " .. file) end, "open to other users" },
    { "a symlinked file", function(file)
        sh(("cp -p %s %s.real && rm %s && ln -s %s.real %s"):format(file, file, file, file, file))
      end, "symbolic link" },
    { "a hard-linked file", function(file) sh(("ln %s %s.twin"):format(file, file)) end, "hard links" },
    { "garbage", function(file) sh("head -c 300 /dev/urandom > " .. file) end, "not a ducky token file" },
    { "a truncated write", function(file)
        local text = H.read_file(file)
        local f = assert(io.open(file, "wb"))
        f:write(text:sub(1, #text - 10))
        f:close()
      end, "garbage" },
    { "an empty file", function(file) sh(": > " .. file) end, "empty" },
    { "a directory open to others", function() sh("chmod 0755 " .. home .. "/ducky") end,
      "open to other users" },
    { "a directory of another user", function() sh("chown nobody " .. home .. "/ducky") end,
      "another user", root = true },
    { "a symlinked directory", function()
        sh(("mv %s/ducky %s/elsewhere && ln -s %s/elsewhere %s/ducky"):format(home, home, home, home))
      end, "link" },
  }
  for _, case in ipairs(odd) do
    it("ignores " .. case[1] .. " and says so", function()
      if case.root and not IS_ROOT then return pending("needs root to give a file away") end
      local id = H.new_id("file-odd")
      assert.is_truthy(worker(id, env))
      case[2](token_file(home) or "")
      local ok, events, out = worker(id, env)
      assert.is_truthy(ok, out)
      local e = find(events, "store_error")
      assert.is_truthy(e, out)
      assert.equals("file", e.source)
      assert.matches(case[3], e.reason, 1, true)
      assert.is_truthy(find(events, "token", "source", "exchange"), out)
      assert.equals(2, H.exchanges(id))
    end)
  end

  -- found by review: garbage in ducky's own directory was never replaced, so
  -- the cache stayed off for that key until someone deleted the file
  it("replaces garbage at <key>.token in its own directory: the next process uses the file", function()
    local id = H.new_id("file-garbage")
    assert.is_truthy(worker(id, env))
    sh("head -c 300 /dev/zero > " .. token_file(home))
    assert.is_truthy(worker(id, env)) -- reports it, exchanges, writes the file anew
    assert.matches("^ducky%-token%-v1\n", H.read_file(token_file(home)))
    local ok, events, out = worker(id, env)
    assert.is_truthy(ok, out)
    assert.is_truthy(find(events, "token", "source", "file"), out)
    assert.equals(2, H.exchanges(id))
  end)

  it("works from memory when the cache directory cannot be created", function()
    local id = H.new_id("file-nodir")
    local ok, events, out = worker(id, "XDG_CACHE_HOME=/dev/null/nope")
    assert.is_truthy(ok, out)
    local e = find(events, "store_error")
    assert.is_truthy(e, out)
    assert.matches("cannot create", e.reason)
    assert.equals(1, H.exchanges(id))
  end)

  it("token_cache = false writes nothing", function()
    local id = H.new_id("file-off")
    assert.is_truthy(worker(id, env, "memory"))
    assert.equals("", sh("ls -A " .. home))
  end)

  it("token_cache = 'path' uses that file, shared by processes", function()
    local id = H.new_id("file-path")
    local path = home .. "/my-token"
    for _ = 1, 3 do assert.is_truthy(worker(id, env, path)) end
    assert.equals(1, H.exchanges(id))
    assert.equals("-rw-------", sh("stat -c %A " .. path):match("%S+"))
    assert.matches("\ntoken tok_", H.read_file(path))
    assert.is_nil(H.read_file(path):find(H.secret(id), 1, true))
  end)

  it("one named file holding another credential's token is not used", function()
    local a, b = H.new_id("file-a"), H.new_id("file-b")
    local path = home .. "/shared-token"
    assert.is_truthy(worker(a, env, path))
    local ok, events = worker(b, env, path)
    assert.is_truthy(ok)
    assert.is_truthy(find(events, "token", "source", "exchange"))
    assert.is_nil(find(events, "store_error"))
    assert.equals(1, H.exchanges(b))
  end)

  it("a 401 drops the file's token too, and the next process uses the new one", function()
    local id = H.new_id("file-401")
    assert.is_truthy(worker(id, env))
    H.revoke(id)
    local ok, events = worker(id, env)
    assert.is_truthy(ok)
    assert.is_truthy(find(events, "replay_401"))
    assert.equals(2, H.exchanges(id))
    local ok3, events3 = worker(id, env)
    assert.is_truthy(ok3)
    assert.is_truthy(find(events3, "token", "source", "file"))
    assert.equals(2, H.exchanges(id))
  end)

  -- Issue 13 item 1: a FIFO where the token file or its lock file lives (another
  -- local user can plant one in a shared sticky directory). Opening a FIFO for
  -- reading waits for a writer: the call must never block on it, and works from
  -- memory. Each case runs in a child under timeout(1) (see worker).
  local HANG = 15 -- seconds before the child is killed; the call itself takes well under 1 s

  local function key_of(file) return file:match("([%x]+)%.token$") end

  -- a first process leaves <key>.token and <key>.lock; returns the key
  local function default_files(id)
    local ok, _, out = worker(id, env)
    assert.is_truthy(ok, out)
    local file = token_file(home)
    assert.is_string(file, "no token file")
    return key_of(file)
  end

  local function fifo_call(id, cache, what)
    local ok, events, out, code = worker(id, env, cache, 1, HANG)
    assert.is_not.equals(137, code, what .. ": the call blocked on the FIFO (killed after " .. HANG .. " s)")
    assert.is_truthy(ok, out)
    local e = find(events, "store_error")
    assert.is_truthy(e, "no store_error event: " .. out)
    assert.equals("file", e.source)
    assert.is_truthy(find(events, "token", "source", "exchange"), out)
    return e.reason
  end

  it("a FIFO at token_cache's path: never blocks, works from memory (issue 13 item 1)", function()
    local id = H.new_id("file-fifo")
    local path = home .. "/token"
    sh("mkfifo " .. path)
    local reason = fifo_call(id, path, "token_cache path")
    assert.truthy(reason:find("token cache file", 1, true), reason)
    assert.truthy(reason:find("is not a regular file", 1, true), reason)
    assert.equals(1, H.exchanges(id))
  end)

  it("a FIFO at token_cache's lock path: never blocks, names the lock file (issue 13 item 1)", function()
    local id = H.new_id("file-fifo-lock")
    local path = home .. "/token"
    sh("mkfifo " .. path .. ".lock")
    local reason = fifo_call(id, path, "token_cache lock")
    assert.truthy(reason:find("lock file", 1, true), reason)
    assert.truthy(reason:find("not a regular file", 1, true), reason)
    assert.equals(1, H.exchanges(id))
  end)

  it("a FIFO at the default store's <key>.token: never blocks (issue 13 item 1)", function()
    local id = H.new_id("file-fifo-default")
    local key = default_files(id)
    local dir = home .. "/ducky/"
    sh(("rm -f %s%s.token && mkfifo %s%s.token"):format(dir, key, dir, key))
    local reason = fifo_call(id, nil, "<key>.token")
    assert.truthy(reason:find("token cache file", 1, true), reason)
    assert.truthy(reason:find("is not a regular file", 1, true), reason)
    assert.equals(2, H.exchanges(id))
  end)

  it("a FIFO at the default store's <key>.lock: never blocks, names it (issue 13 item 1)", function()
    local id = H.new_id("file-fifo-default-lock")
    local key = default_files(id)
    local dir = home .. "/ducky/"
    sh(("rm -f %s%s.token %s%s.lock && mkfifo %s%s.lock"):format(dir, key, dir, key, dir, key))
    local reason = fifo_call(id, nil, "<key>.lock")
    assert.truthy(reason:find("lock file", 1, true), reason)
    assert.truthy(reason:find("not a regular file", 1, true), reason)
    assert.equals(2, H.exchanges(id))
  end)

  -- Issue 13 item 20: a problem with the lock file names the lock file.
  local lock_odd = {
    { "a symbolic link", function(lock) sh("ln -s /nonexistent/elsewhere " .. lock) end },
    { "a directory", function(lock) sh("mkdir " .. lock) end },
    { "a file of another user", function(lock) sh(": > " .. lock .. " && chown nobody " .. lock) end,
      root = true },
  }
  for _, case in ipairs(lock_odd) do
    it("a lock file that is " .. case[1] .. ": reported naming the lock file (issue 13 item 20)", function()
      if case.root and not IS_ROOT then return pending("needs root to give a file away") end
      local id = H.new_id("file-lock-odd")
      local path = home .. "/token"
      case[2](path .. ".lock")
      local events = {}
      local c = ducky.client(H.opts { client_id = id, client_secret = H.secret(id), token_cache = path,
        log = function(e) events[#events + 1] = e end })
      assert(c:ping_protected())
      local e = find(events, "store_error")
      assert.is_truthy(e, "no store_error event")
      assert.equals("file", e.source)
      assert.truthy(e.reason:find("lock file", 1, true), e.reason)
      assert.is_nil(e.reason:find("token cache file", 1, true), e.reason)
      c:close()
    end)
  end

  -- Issue 13 item 2: token_cache naming a file that is not ducky's (a netrc, say)
  -- is never written over nor removed: not by a call, invalidate() or a 401 replay.
  local NETRC = "machine example.com login x password y\n"
  for _, mode in ipairs { "600", "644" } do
    it("never writes over nor removes a " .. mode .. " file that is not a token file (issue 13 item 2)",
      function()
        local id = H.new_id("file-netrc")
        local path = home .. "/netrc"
        H.write_file(path, NETRC)
        sh("chmod " .. mode .. " " .. path)
        local inode = sh("stat -c %i " .. path)
        local events = {}
        local c = ducky.client(H.opts { client_id = id, client_secret = H.secret(id), token_cache = path,
          log = function(e) events[#events + 1] = e end })
        local function unchanged(when)
          assert.equals(NETRC, H.read_file(path), "the file changed " .. when)
          assert.equals(inode, sh("stat -c %i " .. path), "the file was replaced " .. when)
        end
        assert(c:ping_protected())
        unchanged("by a call")
        if mode == "600" then
          local e = find(events, "store_error")
          assert.is_truthy(e, "no store_error event")
          assert.truthy(e.reason:find("not a ducky token file", 1, true), e.reason)
        end
        c:invalidate()
        unchanged("by invalidate()")
        assert(c:ping_protected()) -- a new token, to be revoked
        H.revoke(id)
        local res = assert(c:ping_protected())
        assert.equals(2, res.attempts) -- 401, new token, replay
        unchanged("by a 401 replay")
        c:close()
      end)
  end

  -- Issue 13 item 14: one size limit for tokens, 16,384 bytes, the same for the
  -- answer, the file and another process reading it.
  it("a 16,384-byte token is saved and loaded by another process (issue 13 item 14)", function()
    local id = H.new_id("file-big")
    local path = home .. "/token"
    local tok = "tok_" .. string.rep("Z", 16380)
    H.fault { path = "/oauth/token", client_id = id, status = 200,
      body = { access_token = tok, token_type = "Bearer", expires_in = 3600 } }
    local c = ducky.client(H.opts { client_id = id, client_secret = H.secret(id), token_cache = path })
    local got, _, info = c:token()
    assert.equals(tok, got)
    assert.equals("exchange", info.source)
    assert.is_truthy(H.read_file(path):find(tok, 1, true), "not in the file")
    local out, code = H.run_lua([[
      local H = require("spec.helpers")
      local ducky = require("ducky")
      local id = os.getenv("HX_ID")
      local c = ducky.client(H.opts { client_id = id, client_secret = H.secret(id),
        token_cache = os.getenv("HX_PATH") })
      local t, left, i = c:token()
      if not t then print("error " .. tostring(left)) os.exit(1) end
      print(("%s %d %s"):format(i.source, #t, i.fingerprint))
    ]], { HX_ID = id, HX_PATH = path })
    assert.equals(0, code, out)
    assert.equals(("file 16384 %s\n"):format(info.fingerprint), out:match("[^\n]*\n$"), out)
    assert.equals(0, H.exchanges(id)) -- the fault's token only
    c:close()
  end)

  it("a 16,385-byte token is a decode error naming the limit, and nothing is saved (issue 13 item 14)",
    function()
      local id = H.new_id("file-too-big")
      local path = home .. "/token"
      H.fault { path = "/oauth/token", client_id = id, status = 200,
        body = { access_token = "tok_" .. string.rep("Z", 16381), token_type = "Bearer", expires_in = 3600 } }
      local c = ducky.client(H.opts { client_id = id, client_secret = H.secret(id), token_cache = path })
      local tok, err = c:token()
      assert.is_nil(tok)
      assert.equals("decode", err.kind, tostring(err))
      assert.matches("16384", err.message, 1, true)
      assert.is_nil(H.read_file(path), "a token file was written")
      c:close()
    end)
end)
