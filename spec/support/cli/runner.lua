-- Runs bin/ducky, the command line, as a child process of the interpreter and build
-- under test, for the cli_*_spec files: each test gets a fresh directory (its
-- config and cache homes), a fresh client id of the stand-in and its secret, and
-- an environment pointing at the stand-in.
--   local R = require("spec.support.cli.runner")
--   local run
--   R.each(function(r) run = r end) -- in a describe block: a fresh run for each test
--   local out, err, code = run:ducky({ "ping" }, { DUCKY_TIMEOUT = "1" }, stdin)
local H = require("spec.helpers")
local assert = require("luassert")
local busted = require("busted") -- the hooks a spec file sees as globals

local R = {}

-- every variable ducky reads, removed from the child's environment before the test's own
R.UNSET = { "NO_COLOR", "DUCKY_CONFIG", "DUCKY_CLIENT_ID", "DUCKY_CLIENT_SECRET",
  "DUCKY_CLIENT_SECRET_FILE", "DUCKY_BASE_URL", "DUCKY_TOKEN_URL", "DUCKY_AUDIENCE", "DUCKY_TOKEN_AUTH",
  "DUCKY_CA_FILE", "DUCKY_CA_PATH", "DUCKY_INSECURE", "DUCKY_PROXY", "DUCKY_TIMEOUT",
  "DUCKY_CONNECT_TIMEOUT", "DUCKY_RETRIES", "DUCKY_MAX_BODY", "DUCKY_PRIVATE_KEY_FILE", "DUCKY_KEY_ID",
  "DUCKY_SIGNING_ALG", "DUCKY_ASSERTION_AUDIENCE", "DUCKY_CLIENT_CERT", "DUCKY_CLIENT_KEY",
  "DUCKY_CLIENT_KEY_PASSWORD" }

R.q = H.quote
local q = R.q

-- Writes s to path, then chmods it to mode (when given).
function R.write(path, s, mode)
  H.write_file(path, s)
  if mode then assert(os.execute(H.CLEAN_ENV .. "chmod " .. mode .. " " .. q(path))) end
end

-- A shell command's output (stdout and stderr), without the sanitizer preload.
function R.sh(cmd)
  local p = assert(io.popen(H.CLEAN_ENV .. "sh -c " .. q(cmd) .. " 2>&1"))
  local out = p:read("*a")
  p:close()
  return out
end

-- The environment and command line of one bin/ducky run (a string for sh): env
-- (name -> value, false: unset) added to a clean one; limit: seconds it may take
-- (timeout(1) ends it after them, exit status 124).
function R.command(args, env, limit)
  local parts = { "env" }
  for _, name in ipairs(R.UNSET) do parts[#parts + 1] = "-u " .. name end
  local names = {}
  for k in pairs(env) do names[#names + 1] = k end
  table.sort(names)
  for _, k in ipairs(names) do
    if env[k] then parts[#parts + 1] = q(k .. "=" .. env[k]) end
  end
  if limit then -- timeout(1) itself without the sanitizer runtime the suite may preload into Lua
    local preload = q(os.getenv("LD_PRELOAD") or "")
    parts[#parts + 1] = ("LD_PRELOAD= timeout %d env LD_PRELOAD=%s"):format(limit, preload)
  end
  parts[#parts + 1] = H.CHILD_ENV .. " " .. H.LUA .. " bin/ducky"
  for _, a in ipairs(args) do parts[#parts + 1] = q(a) end
  return table.concat(parts, " ")
end

local Run = {}
Run.__index = Run

-- A fresh directory, client id, secret and environment.
function R.new()
  local self = setmetatable({ dir = H.tmpdir(), id = H.new_id("cli") }, Run)
  self.secret = H.secret(self.id)
  assert(os.execute(("%smkdir -p %s %s"):format(H.CLEAN_ENV, q(self.dir .. "/config/ducky"),
    q(self.dir .. "/cache"))))
  self.env = {
    XDG_CACHE_HOME = self.dir .. "/cache", XDG_CONFIG_HOME = self.dir .. "/config",
    DUCKY_BASE_URL = H.base_url(), DUCKY_TOKEN_URL = H.token_url(), DUCKY_AUDIENCE = H.audience(),
    DUCKY_CLIENT_ID = self.id, DUCKY_CLIENT_SECRET = self.secret, DUCKY_TIMEOUT = "5",
  }
  return self
end

function Run:close() os.execute(H.CLEAN_ENV .. "rm -rf " .. q(self.dir)) end

-- In a describe block: before each test a fresh run (R.new) given to set(run),
-- after it that run closed.
function R.each(set)
  local run
  busted.before_each(function()
    run = R.new()
    set(run)
  end)
  busted.after_each(function() run:close() end)
end

-- This run's environment with env added (false: removed).
function Run:env_with(env)
  local e = {}
  for k, v in pairs(self.env) do e[k] = v end
  for k, v in pairs(env or {}) do e[k] = v end
  return e
end

-- Runs bin/ducky with args, env added, stdin as standard input (a string; default
-- /dev/null), limit as R.command's; returns stdout, stderr, exit code. The secret
-- never comes back.
function Run:ducky(args, env, stdin, limit)
  local input = "/dev/null"
  if stdin then
    input = self.dir .. "/stdin"
    R.write(input, stdin)
  end
  local errfile = self.dir .. "/stderr"
  local p = assert(io.popen(R.command(args, self:env_with(env), limit) .. " <" .. q(input)
    .. " 2>" .. q(errfile) .. "; echo \"__exit=$?\""))
  local out = p:read("*a")
  p:close()
  local code = tonumber(out:match("__exit=(%d+)\n?$"))
  out = out:gsub("__exit=%d+\n?$", "")
  local err = H.read_file(errfile) or ""
  assert.is_nil(out:find(self.secret, 1, true), "the secret on stdout")
  assert.is_nil(err:find(self.secret, 1, true), "the secret on stderr")
  return out, err, code
end

-- An error: exit status code, one line on stderr matching pattern (when given);
-- returns stdout. The last three arguments are what Run:ducky returned.
function R.failed(code, pattern, out, err, got)
  assert.equals(code, got, err)
  assert.matches("^ducky: [^\n]+\n$", err)
  if pattern then assert.matches(pattern, err) end
  return out
end

-- s with every magic character of a Lua pattern escaped.
function R.esc(s) return (s:gsub("%p", "%%%0")) end

return R
