std = "max"
max_line_length = 110
files["spec"] = { std = "+busted" }
exclude_files = { "build", "build-*" }
files["lua/ducky/ngx.lua"] = { read_globals = { "ngx" } }
files["lua/ducky/ngx"] = { read_globals = { "ngx" } }
-- bin/ducky starts with `_=[[ … ]]`: the checkout launcher, a string to Lua
files["bin/ducky"] = { globals = { "_" } }
files["ducky-dev-1.rockspec"] = { std = "min", allow_defined_top = true }
