-- ducky.cli.args: the command line of the ducky command as tables (the client's
-- settings, the options, the commands) and the parser they drive. Nothing here
-- shows back a value typed in the wrong place: it may be a secret.
local fail = require("ducky.cli.fail")

local usage = fail.usage

local M = {}

-- Settings of the client: flag, environment variable, config-file key (= name).
-- type: how a value is read (ducky.cli.config); choices: the module's list of the
-- allowed values (ducky[choices]); secret: what a config file holding it holds
-- (never a flag: every user can read argv with ps); pem_file: a PEM file's path.
M.SETTINGS = {
  { name = "client_id", flag = "client-id", env = "DUCKY_CLIENT_ID" },
  { name = "client_secret", env = "DUCKY_CLIENT_SECRET", secret = "the secret" },
  { name = "client_secret_file", flag = "secret-file", env = "DUCKY_CLIENT_SECRET_FILE" },
  { name = "base_url", flag = "base-url", env = "DUCKY_BASE_URL" },
  { name = "token_url", flag = "token-url", env = "DUCKY_TOKEN_URL" },
  { name = "audience", flag = "audience", env = "DUCKY_AUDIENCE" },
  { name = "token_auth", flag = "token-auth", env = "DUCKY_TOKEN_AUTH", choices = "TOKEN_AUTHS" },
  -- private_key_jwt (RFC 7523): the key's file; its PEM text only in a private config file
  { name = "private_key_file", flag = "private-key-file", env = "DUCKY_PRIVATE_KEY_FILE", arg = "FILE",
    pem_file = true },
  { name = "private_key", secret = "the private key" },
  { name = "key_id", flag = "key-id", env = "DUCKY_KEY_ID", arg = "ID" },
  { name = "signing_alg", flag = "signing-alg", env = "DUCKY_SIGNING_ALG", arg = "ALG",
    choices = "SIGNING_ALGS" },
  { name = "assertion_audience", flag = "assertion-audience", env = "DUCKY_ASSERTION_AUDIENCE", arg = "URL" },
  -- a TLS client certificate (tls_client_auth, RFC 8705, or any mTLS API); its key's password never a flag
  { name = "client_cert", flag = "client-cert", env = "DUCKY_CLIENT_CERT", arg = "FILE", pem_file = true },
  { name = "client_key", flag = "client-key", env = "DUCKY_CLIENT_KEY", arg = "FILE", pem_file = true },
  { name = "client_key_password", env = "DUCKY_CLIENT_KEY_PASSWORD", secret = "the key password" },
  { name = "ca_file", flag = "ca-file", env = "DUCKY_CA_FILE" },
  { name = "ca_path", flag = "ca-path", env = "DUCKY_CA_PATH" },
  { name = "insecure", flag = "insecure", env = "DUCKY_INSECURE", type = "boolean" },
  { name = "proxy", flag = "proxy", env = "DUCKY_PROXY" },
  { name = "timeout", flag = "timeout", env = "DUCKY_TIMEOUT", type = "seconds" },
  { name = "connect_timeout", flag = "connect-timeout", env = "DUCKY_CONNECT_TIMEOUT", type = "seconds" },
  { name = "retries", flag = "retries", env = "DUCKY_RETRIES", type = "count" },
  { name = "max_body", flag = "max-body", env = "DUCKY_MAX_BODY", type = "count" },
}
M.SETTING = {}
for _, s in ipairs(M.SETTINGS) do M.SETTING[s.name] = s end

-- Options of the command itself. arg: takes a value; list: repeatable; cmds: only
-- for these commands ("request": every command that sends a request).
M.OPTIONS = {
  { "config", arg = "FILE" },
  { "secret-stdin" },
  { "raw" },
  { "include", short = "i" },
  { "verbose", short = "v" },
  { "help", short = "h" },
  { "version" },
  { "protected", cmds = { ping = true } },
  { "show", cmds = { token = true } },
  { "forget", cmds = { token = true } },
  { "query", short = "q", arg = "KEY=VALUE", list = true, cmds = "request" },
  { "header", short = "H", arg = "'NAME: VALUE'", list = true, cmds = "request" },
  { "json", arg = "STRING|@FILE|-", cmds = "request" },
  { "data", arg = "STRING|@FILE|-", cmds = "request" },
  { "no-auth", cmds = "request" },
}
for _, s in ipairs(M.SETTINGS) do
  if s.flag then
    M.OPTIONS[#M.OPTIONS + 1] = { s.flag, arg = s.type ~= "boolean" and (s.arg or s.name:upper()) or nil,
      setting = s.name }
  end
end
M.LONG, M.SHORT = {}, {}
for _, o in ipairs(M.OPTIONS) do
  o.name = o[1]
  M.LONG[o.name] = o
  if o.short then M.SHORT[o.short] = o end
end

M.METHOD_OF = { get = "GET", post = "POST", put = "PUT", patch = "PATCH", delete = "DELETE" }
-- args: how many (-1: 0 or 1); help: its text in ducky.cli.help
M.COMMANDS = {
  ping = { args = 0, help = "ping" },
  token = { args = 0, help = "token" },
  request = { args = 2, help = "request", request = true },
  help = { args = -1, help = "help" },
}
for cmd in pairs(M.METHOD_OF) do M.COMMANDS[cmd] = { args = 1, help = "request", request = true } end

-- The name in names nearest to word (at most 2 edits away), or nil: what a typo
-- meant. Only such a near miss is ever shown back.
function M.near(word, names)
  if #word > 24 then return nil end
  local best, best_d = nil, 3
  for _, name in ipairs(names) do
    local prev = {}
    for j = 0, #name do prev[j] = j end
    for i = 1, #word do
      local cur = { [0] = i }
      for j = 1, #name do
        local cost = word:sub(i, i) == name:sub(j, j) and 0 or 1
        cur[j] = math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
      end
      prev = cur
    end
    if prev[#name] < best_d then best, best_d = name, prev[#name] end
  end
  return best
end

-- Options of curl that people type out of habit: what to write instead.
local METHOD_HINT = "the method is the command: ducky post PATH, or ducky request METHOD PATH"
local QUIET_HINT = "ducky prints only the answer unless -v"
local USER_HINT = "the credentials come from --client-id and --secret-file (see ducky --help)"
local LOCATION_HINT = "ducky never follows redirects"
local CERT_HINT = "--client-cert (and --client-key)"
M.CURL_HINTS = {
  d = "--data or --json", ["data-raw"] = "--data", ["data-binary"] = "--data",
  X = METHOD_HINT, request = METHOD_HINT,
  k = "--insecure", cacert = "--ca-file", capath = "--ca-path", x = "--proxy",
  m = "--timeout", ["max-time"] = "--timeout",
  o = "redirect standard output: ducky get PATH >FILE", output = "ducky get PATH >FILE",
  s = QUIET_HINT, silent = QUIET_HINT, u = USER_HINT, user = USER_HINT,
  L = LOCATION_HINT, location = LOCATION_HINT, E = CERT_HINT, cert = CERT_HINT,
  key = "--client-key (the key of a private_key_jwt client: --private-key-file)",
}

-- Secrets that have no flag: where they come from instead.
local SECRET_FROM = "give the secret with --secret-file, --secret-stdin, DUCKY_CLIENT_SECRET "
  .. "or the config file"
local KEY_FROM = "the key's PEM text never goes on the command line: give its file with --private-key-file "
  .. "(or DUCKY_PRIVATE_KEY_FILE, or private_key in a private config file)"
local PASSWORD_FROM = "the client key's password never goes on the command line: "
  .. "give it with DUCKY_CLIENT_KEY_PASSWORD or client_key_password in a private config file"
M.NO_FLAG = {
  ["client-secret"] = SECRET_FROM, secret = SECRET_FROM,
  ["private-key"] = KEY_FROM,
  ["client-key-password"] = PASSWORD_FROM, ["key-password"] = PASSWORD_FROM, pass = PASSWORD_FROM,
}

local function unknown_option(shown, name)
  local hint = M.CURL_HINTS[name]
  -- only the option's name: a value typed with it may be a secret put where it does not belong
  if hint then usage("unknown option %s (curl's %s: here, %s)", shown, shown, hint) end
  usage("unknown option %s (see 'ducky --help')", shown)
end

-- An unknown command: a curl habit, or a near miss, gets a hint; nothing else is shown.
function M.unknown_command(word)
  if word:find("^%u+$") and #word <= 10 then -- an HTTP method, curl-style: ducky GET /x
    local short = M.METHOD_OF[word:lower()] and ("ducky " .. word:lower() .. " PATH, or ") or ""
    usage("no command %s: methods are commands in lower case (%sducky request %s PATH)", word, short, word)
  end
  if word:find("^%a+://") then
    usage("no command: a path relative to the base URL comes after one (ducky get /PATH)")
  end
  local names = {}
  for name in pairs(M.COMMANDS) do names[#names + 1] = name end
  table.sort(names)
  local meant = M.near(word, names)
  if meant then usage("no command %s (did you mean %s?)", word, meant) end
  usage("no such command (see 'ducky --help')")
end

-- Stores option o's value (a list for a repeatable one) in opts.
local function store(opts, o, value)
  if o.list then
    opts[o.name] = opts[o.name] or {}
    table.insert(opts[o.name], value)
  else
    opts[o.name] = value == nil and true or value
  end
end

-- The value of option `shown` (as written: --name, -c), which takes one (arg
-- names it): `value` when the word itself held it, else the next word, argv[i + 1];
-- returns the value and the index of the last word it took.
local function option_value(argv, i, value, shown, arg)
  if value ~= nil then return value, i end
  i = i + 1
  if argv[i] == nil then usage("%s needs a value (%s)", shown, arg) end
  return argv[i], i
end

-- --name or --name=value at argv[i]; returns the index of the last word it took.
local function long_option(argv, i, opts)
  local a = argv[i]
  local name, value = a:match("^%-%-([^=]+)=(.*)$")
  name = name or a:sub(3)
  local o = M.LONG[name]
  -- never echo what follows "=": it may be a secret put where it does not belong
  if not o then
    if M.NO_FLAG[name] then usage("no --%s: %s", name, M.NO_FLAG[name]) end
    unknown_option("--" .. name, name)
  end
  if value ~= nil and not o.arg then usage("--%s takes no value", name) end
  if o.arg then value, i = option_value(argv, i, value, "--" .. name, o.arg) end
  store(opts, o, value)
  return i
end

-- One or more short options at argv[i]: -iv, -q k=v, -qk=v; returns as long_option.
local function short_options(argv, i, opts)
  local a = argv[i]
  for j = 2, #a do
    local c = a:sub(j, j)
    local o = M.SHORT[c]
    if not o then unknown_option("-" .. c, c) end
    if o.arg then
      local rest = a:sub(j + 1)
      local value
      value, i = option_value(argv, i, rest ~= "" and rest or nil, "-" .. c, o.arg)
      store(opts, o, value)
      return i
    end
    store(opts, o, nil)
  end
  return i
end

-- argv -> { command = , args = {…}, opts = { name = value or list } }
function M.parse(argv)
  local opts, positional = {}, {}
  local i, only_positional = 1, false
  while i <= #argv do
    local a = argv[i]
    if only_positional or a == "-" or a:sub(1, 1) ~= "-" then
      positional[#positional + 1] = a
    elseif a == "--" then
      only_positional = true
    elseif a:sub(1, 2) == "--" then
      i = long_option(argv, i, opts)
    else
      i = short_options(argv, i, opts)
    end
    i = i + 1
  end
  local command = table.remove(positional, 1)
  return { command = command, args = positional, opts = opts }
end

-- The command of a parsed line that is neither help nor --version, checked: it
-- exists, has its number of arguments, and every option given applies to it.
-- Returns its entry of COMMANDS; usage is the text of its help's first line.
function M.check(p, usage_line)
  local command, o = p.command, p.opts
  if not command then usage("a command is needed (see 'ducky --help')") end
  local spec = M.COMMANDS[command]
  if not spec then M.unknown_command(command) end
  if #p.args ~= spec.args then
    local want = usage_line(spec.help)
    if command ~= "request" and spec.request then
      want = "ducky " .. command .. " PATH [REQUEST OPTIONS] [OPTIONS]"
    end
    usage("wrong number of arguments; usage: %s", want)
  end
  for name in pairs(o) do
    local cmds = M.LONG[name].cmds
    local allowed = cmds == nil or (cmds == "request" and spec.request)
      or (type(cmds) == "table" and cmds[command])
    if not allowed then usage("--%s does not apply to %s", name, command) end
  end
  local stdin_users = (o["secret-stdin"] and 1 or 0) + (o.json == "-" and 1 or 0) + (o.data == "-" and 1 or 0)
  if stdin_users > 1 then usage("standard input can feed only one of --secret-stdin, --json -, --data -") end
  return spec
end

return M
