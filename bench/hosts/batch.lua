-- client:batch of 4 calls the stand-in answers in 0.5 s each (GET /v3/ping,
-- delayed by a fault), over plain HTTP/1.1, with concurrency 4: the blocking
-- client's batch and ducky.cqueues' batch. Prints "<how> <seconds>" per run.
--   lua5.4 bench/hosts/batch.lua STANDIN_DIR [RUNS]
local cjson = require("cjson")
local ducky = require("ducky")
local cqueues = require("cqueues")

local f = assert(io.open(arg[1] .. "/standin.json"))
local info = cjson.decode(f:read("*a"))
f:close()
local RUNS = tonumber(arg[2]) or 5
local root = ("http://127.0.0.1:%d"):format(math.floor(info.http_port))
local control = ducky.client { base_url = root, token_cache = false, client_id = "c", client_secret = "c" }
local opts = { base_url = root .. "/v3", token_url = root .. "/oauth/token", audience = info.audience,
  client_id = "bench-batch", client_secret = "secret-bench-batch", token_cache = false, http_version = "1.1" }
local list = { { "GET", "/ping" }, { "GET", "/ping" }, { "GET", "/ping" }, { "GET", "/ping" } }

local function slow()
  local fault = { path = "/v3/ping", delay = 0.5, times = 4 }
  assert(control:request("POST", "/_control/fault", { auth = false, json = fault }))
end

local function check(results)
  for i = 1, 4 do assert(results[i].res and results[i].res.status == 200, tostring(results[i].err)) end
end

local blocking = ducky.client(opts)
local adapter = require("ducky.cqueues").client(opts)
for _ = 1, RUNS do
  slow()
  local t0 = cqueues.monotime()
  check(blocking:batch(list, { concurrency = 4 }))
  print(("blocking %.3f"):format(cqueues.monotime() - t0))
  slow()
  local cq = cqueues.new()
  cq:wrap(function()
    local t1 = cqueues.monotime()
    check(adapter:batch(list, { concurrency = 4 }))
    print(("cqueues %.3f"):format(cqueues.monotime() - t1))
  end)
  assert(cq:loop())
end
