-- spec/hosts_spec.lua's scenarios in lua5.x + luv (spec/support/hosts/luv_ways.lua).
local D = { host = "luv", adapter = require("ducky.luv"), uv = require("luv"), callbacks = true }
require("spec.support.hosts.luv_ways")(D)
require("spec.support.hosts.child").main(D)
