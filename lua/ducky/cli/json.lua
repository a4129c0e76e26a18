-- ducky.cli.json: JSON answers pretty-printed for a terminal. lua-cjson says
-- whether the text is JSON and decodes each key to sort by; the printer then
-- lays out the text's own tokens, so every number and string is shown exactly
-- as the API sent it (12345678901234567890, 1.50, "\u00e9"): nothing is
-- re-encoded, and an empty array stays an array.
local cjson = require("cjson").new() -- an instance of our own: its settings are ours alone

local M = {}

-- Text cjson accepted -> a tree of its tokens: { kind = "object"|"array", ... }
-- or { kind = "string"|"number"|"literal", text = <as written> }.
local function scan(s)
  local pos = 1
  local function skip() pos = s:find("[^ \t\r\n]", pos) or #s + 1 end
  local value
  local function string_token()
    local i = pos + 1
    while true do
      local j = s:find('["\\]', i)
      if s:sub(j, j) == "\\" then
        i = j + 2
      else
        local text = s:sub(pos, j)
        pos = j + 1
        return { kind = "string", text = text }
      end
    end
  end
  local function container(c)
    local node = { kind = c == "{" and "object" or "array" }
    local close = c == "{" and "}" or "]"
    pos = pos + 1
    skip()
    while s:sub(pos, pos) ~= close do
      if node.kind == "object" then
        local key = value()
        skip()
        pos = pos + 1 -- ":"
        node[#node + 1] = { key = key.text, sort = cjson.decode(key.text), value = value(), n = #node + 1 }
      else
        node[#node + 1] = value()
      end
      skip()
      if s:sub(pos, pos) == "," then pos = pos + 1 end
      skip()
    end
    pos = pos + 1
    return node
  end
  value = function()
    skip()
    local c = s:sub(pos, pos)
    if c == "{" or c == "[" then return container(c) end
    if c == '"' then return string_token() end
    local text = s:match("^[^,%]}%s]+", pos)
    pos = pos + #text
    return { kind = text:find("^[%-%d]") and "number" or "literal", text = text }
  end
  return value()
end

local function by_key(a, b)
  if a.sort ~= b.sort then return a.sort < b.sort end
  return a.n < b.n -- a repeated key keeps its order
end

-- Appends node's lines to out; paint(kind, text) colours a token.
local function render(node, indent, out, paint)
  if node.kind ~= "object" and node.kind ~= "array" then
    out[#out + 1] = paint(node.kind, node.text)
    return
  end
  local open, close = "[", "]"
  if node.kind == "object" then open, close = "{", "}" end
  if #node == 0 then
    out[#out + 1] = open .. close
    return
  end
  local items = node
  if node.kind == "object" then
    items = {}
    for k, v in ipairs(node) do items[k] = v end
    table.sort(items, by_key)
  end
  local inner = indent .. "  "
  out[#out + 1] = open .. "\n"
  for k, item in ipairs(items) do
    out[#out + 1] = inner
    if node.kind == "object" then
      out[#out + 1] = paint("key", item.key) .. ": "
      item = item.value
    end
    render(item, inner, out, paint)
    out[#out + 1] = k < #items and ",\n" or "\n"
  end
  out[#out + 1] = indent .. close
end

local function plain(_, text) return text end

-- text laid out with two-space indents and sorted keys, ending with a newline;
-- nil when text is not JSON. paint(kind, text), optional, colours the tokens
-- (kind: "key", "string", "number" or "literal").
function M.pretty(text, paint)
  if text:find("^%s*$") or not pcall(cjson.decode, text) then return nil end
  local out = {}
  render(scan(text), "", out, paint or plain)
  out[#out + 1] = "\n"
  return table.concat(out)
end

-- Whether an answer's headers say its body is JSON.
function M.is_json(headers)
  local ct = (headers and headers["content-type"] or ""):lower()
  return ct:find("json", 1, true) ~= nil
end

return M
