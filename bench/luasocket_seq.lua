-- luasocket's socket.http + ltn12 + lua-cjson: the token fetched once by hand,
-- then N protected GETs, each body decoded as ducky does.
-- socket.http has no keep-alive: it sends "Connection: close, TE" and opens a
-- new TCP connection for every request; this measures what it does.
-- usage: lua5.4 luasocket_seq.lua BASE_URL TOKEN_URL N
local http = require("socket.http")
local ltn12 = require("ltn12")
local cjson = require("cjson")
local socket = require("socket")

local base_url, token_url, n = arg[1], arg[2], tonumber(arg[3])
assert(base_url and token_url and n, "usage: luasocket_seq.lua BASE_URL TOKEN_URL N")

local function request(url, method, headers, body)
  local out = {}
  local _, status = http.request{
    url = url, method = method, headers = headers, sink = ltn12.sink.table(out),
    source = body and ltn12.source.string(body) or nil,
  }
  if status ~= 200 then error(("%s %s: %s"):format(method, url, tostring(status))) end
  return cjson.decode(table.concat(out))
end

local req = cjson.encode{ grant_type = "client_credentials", client_id = "bench",
  client_secret = "bench-secret", audience = "bench" }
local tok = request(token_url, "POST", { ["content-type"] = "application/json",
  ["content-length"] = tostring(#req) }, req)
local headers = { authorization = "Bearer " .. tok.access_token }
local url = base_url .. "/ping/protected"

local t0 = socket.gettime()
for _ = 1, n do
  local json = request(url, "GET", headers)
  if json.message ~= "pong" then error("unexpected answer") end
end
local s = socket.gettime() - t0
print(("%d requests in %.3f s: %.0f requests/s"):format(n, s, n / s))
