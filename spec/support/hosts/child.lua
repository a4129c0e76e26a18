-- The child's side of spec/hosts_spec.lua: runs the scenarios
-- (spec/support/hosts/scenarios.lua) in a host through its driver, and writes
-- one JSON line per scenario ({ name, ok, value | error }) to $DUCKY_HOSTS_OUT,
-- then {"name":"END"}. Environment: DUCKY_STANDIN_DIR (the stand-in's folder),
-- DUCKY_HOSTS_KIND ("http" or "https"), DUCKY_HOSTS_ONLY (optional: the names
-- of the scenarios to run, comma-separated), DUCKY_HOSTS_MODULE (optional:
-- another module of scenarios, bench/hosts/gaps.lua's).
local cjson = require("cjson")
local ducky = require("ducky")
local S = require(os.getenv("DUCKY_HOSTS_MODULE") or "spec.support.hosts.scenarios")

local C = {}

local unpack = table.unpack or unpack -- luacheck: compat

-- Lua 5.1's pcall cannot be yielded across: coxpcall's can, where the host
-- resumes the coroutine it was given (cqueues, copas). ducky.luv resumes the
-- coroutine that waits, which under coxpcall is coxpcall's own: there a
-- scenario runs unprotected (an error ends the run, and the spec shows it).
local plain_pcall, pcall = pcall, pcall
local function protect(D)
  if _VERSION ~= "Lua 5.1" or rawget(_G, "jit") then return pcall end
  if D.host == "luv" then return function(f, ...) return true, f(...) end end
  return require("coxpcall").pcall
end

local function read_json(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("*a")
  f:close()
  return cjson.decode(s)
end

local function origin(info, kind)
  if kind == "https" then return ("https://localhost:%d"):format(info.https_port) end
  return ("http://127.0.0.1:%d"):format(info.http_port)
end

-- What the scenarios get: clients of the adapter on fresh credentials, and the
-- stand-in's controls (through a blocking ducky client: no LuaSocket in Neovim).
function C.context(D)
  local info = read_json(assert(os.getenv("DUCKY_STANDIN_DIR")) .. "/standin.json")
  local kind = os.getenv("DUCKY_HOSTS_KIND") or "http"
  local root = origin(info, kind)
  local nonce = ("%d%04d"):format(os.time(), math.random(0, 9999))
  local ctx = { D = D, kind = kind, http_port = math.floor(info.http_port) }
  local control_client = ducky.client { base_url = origin(info, "http"), token_cache = false,
    client_id = "hosts-control", client_secret = "unused" }
  function ctx.control(name, body)
    local res, err = control_client:request(body and "POST" or "GET", "/_control/" .. name,
      { json = body, auth = false })
    return assert(res, tostring(err)).json
  end
  function ctx.exchanges(id) return ctx.control("stats").exchanges_by_client[id] or 0 end
  function ctx.options(name, extra)
    local id = ("hosts-%s-%s-%s-%s"):format(D.host, kind, name, nonce)
    local o = { client_id = id, client_secret = "secret-" .. id, base_url = root .. "/v3",
      token_url = root .. "/oauth/token", audience = info.audience, ca_file = info.ca_file,
      token_cache = false, retries = 0, timeout = 5 }
    for k, v in pairs(extra or {}) do o[k] = v end
    return o, id
  end
  function ctx.client(name, extra)
    local o, id = ctx.options(name, extra)
    return D.adapter.client(o), id
  end
  return ctx
end

-- Every method that waits, called outside the host's context: the messages.
local function outside(ctx)
  local c = ctx.client("outside")
  local msgs = {}
  local calls = { ping = {}, request = { "GET", "/echo" }, token = {}, batch = { {} } }
  for name, args in pairs(calls) do
    local ok, e = plain_pcall(c[name], c, unpack(args))
    msgs[name] = ok and "no error" or tostring(e)
  end
  c:close()
  return msgs
end

local function wanted()
  local only = os.getenv("DUCKY_HOSTS_ONLY")
  if not only or only == "" then return nil end
  local set = {}
  for name in only:gmatch("[^,]+") do set[name] = true end
  return set
end

-- Runs every scenario in driver D's host, then calls finish() if given.
function C.main(D, finish)
  local out = assert(io.open(assert(os.getenv("DUCKY_HOSTS_OUT")), "w"))
  local function emit(name, ok, value)
    out:write(cjson.encode { name = name, ok = ok, value = ok and value or nil,
      error = not ok and tostring(value) or nil }, "\n")
    out:flush()
  end
  local ctx = C.context(D)
  local only = wanted()
  pcall = protect(D)
  if not S.no_outside then emit("outside", plain_pcall(outside, ctx)) end -- nothing yields there
  D.run(function()
    local names = {}
    for _, n in ipairs(S.order) do names[#names + 1] = n end
    if D.callbacks then for _, n in ipairs(S.callbacks) do names[#names + 1] = n end end
    for _, name in ipairs(names) do
      if not only or only[name] then emit(name, pcall(S.fn[name], ctx)) end
    end
    out:write('{"name":"END"}\n')
    out:close()
    if finish then finish() end
  end)
end

return C
