std = "max"
max_line_length = 110
files["spec"] = { std = "+busted" }
exclude_files = { "build", "build-*" }
files["lua/ducky/ngx.lua"] = { read_globals = { "ngx" } }
