-- Run by examples/embed/embed: ducky is linked into the host, not loaded from disk.
local ducky = require("ducky")
local client = ducky.client{ ca_file = os.getenv("DUCKY_CA_FILE") }
local res = assert(client:ping_protected())
print(("embedded ducky %s: %d %s"):format(ducky._VERSION, res.status, res.body))
