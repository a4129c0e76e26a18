-- Token rule 4 and cross-process single-flight: the per-user file cache, an
-- explicit file, and everything odd about them (each ignored, never fatal).
local H = require("spec.helpers")
local cjson = require("cjson")

local build = os.getenv("DUCKY_BUILD") or "build"

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

-- Runs file_worker.lua in a child process; returns ok, events, output.
local function worker(id, env, cache, calls)
  local cmd = ("%s LUA_CPATH='./%s/?.so;;' %s spec/support/file_worker.lua %q %q %q %q %q %s %d")
    :format(env or "", build, H.LUA, H.base_url(), H.token_url(), H.audience(), id, H.secret(id),
      cache or "default", calls or 1)
  local out, code = H.run(cmd)
  local ok = code == 0
  local events = {}
  for line in out:gmatch("[^\n]+") do
    local good, e = pcall(cjson.decode, line)
    if good and type(e) == "table" then events[#events + 1] = e end
  end
  return ok, events, out
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
      .. " spec/support/file_worker.lua %q %q %q %q %q default >/dev/null || echo FAILED & done; wait")
      :format(os.getenv("PWD") or ".", env, build, H.base_url(), H.token_url(), H.audience(), id,
        H.secret(id))
    local out = run(cmd)
    assert.is_nil(out:find("FAILED"), out)
    assert.equals(1, H.exchanges(id))
  end)

  it("a process killed while holding the lock blocks nobody", function()
    local id = H.new_id("file-kill")
    H.fault{ path = "/oauth/token", client_id = id, delay = 30 }
    local pidfile = home .. "/pid"
    run(("%s LUA_CPATH='./%s/?.so;;' " .. H.LUA .. " spec/support/file_worker.lua %q %q %q %q %q default"
      .. " >/dev/null 2>&1 & echo $! > %q"):format(env, build, H.base_url(), H.token_url(),
        H.audience(), id, H.secret(id), pidfile))
    -- wait until the first process holds the lock (its lock file exists)
    for _ = 1, 100 do
      if sh("ls " .. home .. "/ducky/"):find("%.lock") then break end
      sh("sleep 0.05")
    end
    sh("sleep 0.2")
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
    { "a file of another user", function(file) sh("chown nobody " .. file) end, "another user" },
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
      "another user" },
    { "a symlinked directory", function()
        sh(("mv %s/ducky %s/elsewhere && ln -s %s/elsewhere %s/ducky"):format(home, home, home, home))
      end, "link" },
  }
  for _, case in ipairs(odd) do
    it("ignores " .. case[1] .. " and says so", function()
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
end)
