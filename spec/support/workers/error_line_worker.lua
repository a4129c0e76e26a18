-- A child process for spec/hostile_input_spec.lua: makes one call whose error
-- carries a long message and prints tostring(err) facts as JSON, so that a crash
-- while formatting the error fails one spec instead of killing the whole run.
--   DUCKY_STANDIN_DIR=… lua5.4 spec/support/workers/error_line_worker.lua CASE CLIENT_ID
-- CASE: long_path (100,000-character path), long_404 (2,000-character path),
--       long_query (100,000-byte query value). Exits 0 after printing.
local H = require("spec.helpers")
local ducky = require("ducky")
local cjson = require("cjson")

local case, id = arg[1], arg[2]
local c = ducky.client(H.opts { client_id = id, client_secret = H.secret(id) })
local res, err
if case == "long_path" then
  res, err = c:request("GET", "/echo/" .. string.rep("a", 100000))
elseif case == "long_404" then
  res, err = c:request("GET", "/no/" .. string.rep("b", 2000))
elseif case == "long_query" then
  res, err = c:request("GET", "/echo", { query = { k = string.rep("x", 100000) } })
else
  error("unknown case " .. tostring(case))
end
if res then
  print(cjson.encode { status = res.status })
else
  local line = tostring(err)
  print(cjson.encode { kind = err.kind, status = err.status, attempts = err.attempts,
    message = err.message, request_id = err.request_id, line = line })
end
c:close()
