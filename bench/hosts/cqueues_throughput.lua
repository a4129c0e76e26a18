-- N GETs of <base>/ping/protected over C coroutines of one cqueues controller,
-- the answer's JSON decoded, with `which` = "ducky" (one ducky.cqueues client
-- shared by every coroutine: connections kept alive) or "lua-http" (lua-http's
-- request:go, a connection per request). Prints "<which> <N> <seconds> <req/s>".
--   lua5.3 bench/hosts/cqueues_throughput.lua ducky|lua-http BASE_URL TOKEN_URL [N [C]]
-- (lua-http on Lua 5.3 needs Debian's 5.2 copies of lpeg_patterns, basexx and
-- fifo on LUA_PATH: bench/hosts/run.sh sets it.)
local cqueues = require("cqueues")
local cjson = require("cjson")

local which, base, token_url = arg[1], arg[2], arg[3]
local N, C = tonumber(arg[4]) or 2000, tonumber(arg[5]) or 50

local function ducky_getter()
  local client = require("ducky.cqueues").client { base_url = base, token_url = token_url,
    client_id = "bench", client_secret = "bench", token_cache = false }
  return function()
    local res, err = client:request("GET", "/ping/protected")
    assert(res and res.json.ready, tostring(err))
  end, function() client:close() end
end

local function lua_http_getter()
  local request = require("http.request")
  local token = "bench-token-0123456789abcdef0123456789abcdef"
  return function()
    local req = request.new_from_uri(base .. "/ping/protected")
    req.headers:upsert("authorization", "Bearer " .. token)
    local headers, stream = assert(req:go(10))
    assert(headers:get(":status") == "200")
    assert(cjson.decode(assert(stream:get_body_as_string())).ready)
  end, function() end
end

local get, close = (which == "ducky" and ducky_getter or lua_http_getter)()
local cq = cqueues.new()
local left = N
local t0 = cqueues.monotime()
for _ = 1, C do
  cq:wrap(function()
    while left > 0 do
      left = left - 1
      get()
    end
  end)
end
assert(cq:loop())
local took = cqueues.monotime() - t0
close()
print(("%s %d %.3f %.0f"):format(which, N, took, N / took))
