-- Any API call: method, path, query, JSON body; errors as values.
--   lua5.4 examples/request.lua [METHOD] [PATH]     (default: GET /ping/protected)
local ducky = require("ducky")
local cjson = require("cjson")

local method, path = arg[1] or "GET", arg[2] or "/ping/protected"
local client = ducky.client{
  ca_file = os.getenv("DUCKY_CA_FILE"),
  log = os.getenv("DUCKY_VERBOSE") and function(event)
    io.stderr:write("ducky: ", cjson.encode(event), "\n")
  end,
}

local res, err = client:request(method, path, {
  query = { source = "ducky-example" },
  json = method ~= "GET" and method ~= "HEAD" and { note = "sent by examples/request.lua" } or nil,
})
if not res then
  io.stderr:write(tostring(err), "\n")
  os.exit(1)
end
print(("%s %s -> %d after %d attempt(s)"):format(method, path, res.status, res.attempts))
print(res.json and cjson.encode(res.json) or res.body)
client:close()
