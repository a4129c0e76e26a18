-- ducky.cli.request: the request options of the ducky command (-q, -H, --json,
-- --data, --no-auth) as the opts table of client:request().
local cjson = require("cjson").new() -- an instance of our own: its settings are ours alone
local fail = require("ducky.cli.fail")

local usage = fail.usage

local M = {}

local function trim(s) return (s:gsub("^%s+", ""):gsub("%s+$", "")) end

-- -q KEY=VALUE, repeatable; a repeated key makes a list (sent repeated).
function M.query(list)
  local q = {}
  for _, kv in ipairs(list) do
    local k, v = kv:match("^([^=]+)=(.*)$")
    if not k then usage("--query wants KEY=VALUE") end
    if q[k] == nil then
      q[k] = v
    elseif type(q[k]) == "table" then
      table.insert(q[k], v)
    else
      q[k] = { q[k], v }
    end
  end
  return q
end

-- -H 'NAME: VALUE', repeatable; the same name twice (in any case) is joined with ", ".
-- Returns the headers and whether one of them is Content-Type.
function M.headers(list)
  local headers, content_type = {}, false
  for _, h in ipairs(list) do
    local name, value = h:match("^([^:]+):%s*(.-)%s*$")
    if not name or not trim(name):find("^[%w!#$%%&'*+.^_`|~-]+$") then
      usage("--header wants 'NAME: VALUE'")
    end
    name = trim(name)
    local lower = name:lower()
    if lower == "content-type" then content_type = true end
    local old
    for k in pairs(headers) do
      if k:lower() == lower then old = k end
    end
    if old then
      headers[old] = headers[old] .. ", " .. value
    else
      headers[name] = value
    end
  end
  return headers, content_type
end

-- The body a --json or --data value names: the text, @FILE's content, or (-) standard input.
function M.body(value)
  if value == "-" then return io.stdin:read("*a") or "" end
  if value:sub(1, 1) ~= "@" then return value end
  local f, err = io.open(value:sub(2), "rb")
  if not f then usage("cannot read %s", err) end
  local s = f:read("*a")
  f:close()
  if s == nil then usage("cannot read %s", value:sub(2)) end
  return s
end

-- The opts of client:request() for the command's options o.
function M.build(o)
  local req = {}
  if o.query then req.query = M.query(o.query) end
  local headers, content_type = M.headers(o.header or {})
  if o.json and o.data then usage("--json or --data, not both") end
  if o.json then
    local text = M.body(o.json)
    local ok, e = pcall(cjson.decode, text)
    if not ok then usage("--json: not valid JSON (%s)", (tostring(e):gsub("^.-: ", ""))) end
    req.body = text
    if not content_type then headers["Content-Type"] = "application/json" end
  elseif o.data then
    req.body = M.body(o.data)
  end
  if o["no-auth"] then req.auth = false end
  if next(headers) ~= nil then req.headers = headers end
  return req
end

return M
