-- ducky.cli.config: the client's settings of one run of the ducky command, from
-- flags, else DUCKY_* variables, else the config file, else the module's defaults.
-- Every file holding settings or a secret is checked by the module's own reader
-- (ducky.read_private_file: a regular file, this user's, mode 0600 or stricter,
-- bounded) before a byte of it is read: a FIFO cannot hang the command, nor
-- /dev/zero fill its memory.
local ducky = require("ducky")
local args = require("ducky.cli.args")
local fail = require("ducky.cli.fail")

local SETTINGS, SETTING = args.SETTINGS, args.SETTING

local M = {}

M.MAX_FILE = 64 * 1024 -- bytes of a config file, or of a secret file the command reads itself

local function trim(s) return (s:gsub("^%s+", ""):gsub("%s+$", "")) end

-- A variable's value; set but empty counts as unset, as for the module.
function M.env(name)
  local v = os.getenv(name)
  if v == nil or v == "" then return nil end
  return v
end

-- Values as text -> values. Numbers are read strictly, as the module reads its
-- DUCKY_* variables (options.c): decimal digits, and a fraction after a dot
-- where one is taken, nothing else (no sign, exponent, hex, space); a count is
-- digits alone. nil: not one.
M.READ = {
  seconds = function(s)
    if s:find("^%d+$") or s:find("^%d+%.%d+$") then
      local n = tonumber(s)
      if n > 0 then return n end
    end
  end,
  count = function(s)
    if s:find("^%d+$") then return tonumber(s) end
  end,
  -- the spellings of the module's DUCKY_INSECURE (it exports no reader of them)
  boolean = function(s)
    if s == true or s == "1" or s == "true" or s == "yes" then return true end
    if s == "0" or s == "false" or s == "no" then return false end
  end,
}
local EXPECTED = { seconds = "a number of seconds above 0 (digits, and a fraction after a dot)",
  count = "a whole number (digits only)", boolean = "1, true, yes, 0, false or no" }

-- A setting's value checked and converted; where names it in a message, and kind
-- is the failure's ("usage" for a flag, "config" for the others).
function M.convert(s, value, where, kind)
  if s.pem_file and (value:find("\n") or value:find("-----BEGIN", 1, true)) then
    -- the module names the file in its errors: key text put here would be printed back
    fail.fail(kind, "%s wants the path of a PEM file, not its text", where)
  end
  if s.type then
    local v = M.READ[s.type](value)
    if v == nil then fail.fail(kind, "%s must be %s", where, EXPECTED[s.type]) end
    return v
  end
  if s.choices then
    for _, c in ipairs(ducky[s.choices]) do
      if c == value then return value end
    end
    fail.fail(kind, "%s must be one of %s", where, table.concat(ducky[s.choices], ", "))
  end
  return value
end

-- The known key an unknown one was meant to be ("ca-file", "--client-secret", "client_sekret").
local function meant_key(key)
  local names = {}
  for _, setting in ipairs(SETTINGS) do names[#names + 1] = setting.name end
  return args.near((key:gsub("^%-%-", ""):gsub("-", "_")), names)
end

local PEM_BEGIN, PEM_END = "^%-%-%-%-%-BEGIN [%u ]+%-%-%-%-%-$", "^%-%-%-%-%-END [%u ]+%-%-%-%-%-$"

-- private_key's PEM text pasted as it is: lines[n] is its BEGIN line; returns
-- the text and the number of its END line.
local function pem_value(lines, n, path, value)
  local first, pem = n, { value }
  repeat
    n = n + 1
    if n > #lines then
      fail.fail("config", "%s:%d: private_key: no -----END line after its BEGIN line", path, first)
    end
    pem[#pem + 1] = trim(lines[n])
  until pem[#pem]:find(PEM_END)
  return table.concat(pem, "\n") .. "\n", n
end

-- key = value lines (# comments, blank lines) -> settings. A line is never
-- shown back, only its number: it may hold the secret.
function M.parse_config(text, path)
  local lines = {}
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do lines[#lines + 1] = line end
  local values, n = {}, 0
  while n < #lines do
    n = n + 1
    local line = trim(lines[n])
    if line ~= "" and line:sub(1, 1) ~= "#" then
      local key, value = line:match("^([^%s=]+)%s*=%s*(.-)$")
      if not key then fail.fail("config", "%s:%d: expected key = value", path, n) end
      if not SETTING[key] then
        local meant = meant_key(key)
        if meant then fail.fail("config", "%s:%d: unknown key %s (did you mean %s?)", path, n, key, meant) end
        fail.fail("config", "%s:%d: unknown key (the keys are the settings' names: client_id, ca_file, ...; "
          .. "see ducky(1))", path, n)
      end
      local q = value:sub(1, 1)
      if #value >= 2 and (q == '"' or q == "'") and value:sub(-1) == q then value = value:sub(2, -2) end
      local at = n
      if key == "private_key" and value:find(PEM_BEGIN) then value, n = pem_value(lines, n, path, value) end
      values[key] = M.convert(SETTING[key], value, path .. ":" .. at .. ": " .. key, "config")
    end
  end
  return values
end

-- The config file's settings ({} when the default file does not exist). It names
-- where the secret goes and often holds it: it must be yours and private.
function M.read_config(path, explicit)
  local text, why = ducky.read_private_file(path, M.MAX_FILE)
  if not text then
    if not explicit and why:find(" does not exist$") then return {} end
    fail.fail("config", "config file %s", why)
  end
  return M.parse_config(text, path)
end

-- The config file to read, and whether it was named (by --config or DUCKY_CONFIG).
function M.config_path(opts)
  if opts.config then return opts.config, true end
  if M.env("DUCKY_CONFIG") then return M.env("DUCKY_CONFIG"), true end
  local base = M.env("XDG_CONFIG_HOME") or (M.env("HOME") and M.env("HOME") .. "/.config")
  if base then return base .. "/ducky/config", false end
end

-- The client secret in text read from where: its last line break dropped.
function M.secret_of(text, where)
  local s = text:gsub("[\r\n]+$", "")
  if s == "" then fail.fail("config", "%s: the client secret is empty", where) end
  if s:find("[%z\r\n]") then fail.fail("config", "%s: the client secret holds a line break or NUL", where) end
  return s
end

local function succeeded(r) return r == true or r == 0 end -- os.execute on 5.2+ and on 5.1

-- All of standard input, up to the size of a secret file; on a terminal, one
-- line typed without echo after a prompt.
local function read_stdin_secret()
  if not succeeded(os.execute("test -t 0")) then
    local text = io.stdin:read(M.MAX_FILE + 1) or ""
    if #text > M.MAX_FILE then
      fail.fail("config", "standard input: the client secret is longer than %d bytes", M.MAX_FILE)
    end
    return text
  end
  io.stderr:write("client secret: ")
  io.stderr:flush()
  os.execute("stty -echo 2>/dev/null")
  local line = io.stdin:read("*l")
  os.execute("stty echo 2>/dev/null")
  io.stderr:write("\n")
  return line or ""
end

-- Settings that say the same thing two ways: the text, or the file that holds it.
local EITHER = { { "client_secret", "client_secret_file" }, { "private_key", "private_key_file" } }

-- The three layers: flags, environment, config file (each name -> value).
local function layers(opts)
  local flags, environment = {}, {}
  for _, s in ipairs(SETTINGS) do
    if s.flag and opts[s.flag] ~= nil then
      flags[s.name] = M.convert(s, opts[s.flag], "--" .. s.flag, "usage")
    end
    if s.env and M.env(s.env) then environment[s.name] = M.convert(s, M.env(s.env), s.env, "config") end
  end
  if opts["secret-stdin"] then flags.client_secret = true end
  local path, explicit = M.config_path(opts)
  local file = path and M.read_config(path, explicit) or {}
  if flags.client_secret and flags.client_secret_file then
    fail.usage("--secret-stdin or --secret-file, not both")
  end
  if environment.client_secret and environment.client_secret_file then
    fail.fail("config", "DUCKY_CLIENT_SECRET or DUCKY_CLIENT_SECRET_FILE, not both")
  end
  for _, pair in ipairs(EITHER) do
    if file[pair[1]] and file[pair[2]] then
      fail.fail("config", "%s: %s or %s, not both", path, pair[1], pair[2])
    end
  end
  return { file, environment, flags }
end

-- Everything the client needs, flags > environment > config file; the module
-- gives the rest. The secret stays in its file (client_secret_file) unless it
-- came inline or from standard input.
function M.resolve(opts)
  local cfg = {}
  for _, layer in ipairs(layers(opts)) do
    -- a layer that names the secret or the key (inline or in a file) replaces the lower ones'
    for _, pair in ipairs(EITHER) do
      if layer[pair[1]] ~= nil or layer[pair[2]] ~= nil then cfg[pair[1]], cfg[pair[2]] = nil, nil end
    end
    for k, v in pairs(layer) do cfg[k] = v end
  end
  if cfg.client_secret == true then cfg.client_secret = M.secret_of(read_stdin_secret(), "standard input") end
  return cfg
end

-- The client's options for cfg. A secret file is the module's to read, except
-- when DUCKY_CLIENT_SECRET is set too: the module would take that variable over
-- the file a flag named, so the file is read here, by the same checked reader.
function M.client_options(cfg)
  local t = {}
  for _, s in ipairs(SETTINGS) do t[s.name] = cfg[s.name] end
  if t.client_secret_file and M.env("DUCKY_CLIENT_SECRET") then
    local text, why = ducky.read_private_file(t.client_secret_file, M.MAX_FILE)
    if not text then fail.fail("config", "secret file %s", why) end
    t.client_secret, t.client_secret_file = M.secret_of(text, t.client_secret_file), nil
  end
  return t
end

return M
