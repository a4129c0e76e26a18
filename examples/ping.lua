-- Is the Ducky API up, and do our credentials work?
--   DUCKY_CLIENT_ID=… DUCKY_CLIENT_SECRET=… lua5.4 examples/ping.lua
-- Every setting comes from DUCKY_* environment variables (DUCKY_CA_FILE: a CA
-- bundle for a private server such as the local stand-in).
local ducky = require("ducky")

local client = ducky.client{ ca_file = os.getenv("DUCKY_CA_FILE") }

local res = assert(client:ping())
print("ping:           " .. res.status .. " " .. res.body)

res = assert(client:ping_protected())
print("ping_protected: " .. res.status .. " " .. res.body)

local _, seconds_left = assert(client:token())
print(("token:          valid for %.0f more seconds"):format(seconds_left))
client:close()
