rockspec_format = "3.0"
package = "ducky"
version = "0.1.0-1"
source = { url = "git+https://example.invalid/ducky.git", tag = "v0.1.0" }
description = {
  summary = "The Ducky carbon-footprint API for Lua, with Auth0 tokens handled underneath",
  detailed = [[
A C core over libcurl: one reused connection per client, retries with backoff,
and a process-wide token cache (one token exchange per credential per token life).
]],
  license = "MIT",
}
dependencies = { "lua >= 5.1", "lua-cjson" }
external_dependencies = {
  CURL = { library = "curl" },  -- by library: Debian keeps curl.h under a multiarch dir
  OPENSSL = { header = "openssl/evp.h", library = "crypto" },
}
build = {
  type = "builtin",
  modules = {
    ducky = {
      sources = { "src/batch.c", "src/client_batch.c", "src/client_token.c", "src/ducky.c", "src/error.c", "src/http.c", "src/store.c", "src/token.c" },
      libraries = { "curl", "crypto", "pthread" },
      incdirs = { "$(CURL_INCDIR)", "$(OPENSSL_INCDIR)" },
      libdirs = { "$(CURL_LIBDIR)", "$(OPENSSL_LIBDIR)" },
      defines = { "_POSIX_C_SOURCE=200809L" },
    },
    ["ducky.redis_store"] = "lua/ducky/redis_store.lua", -- needs lua-redis, or a client passed in
    ["ducky.ngx"] = "lua/ducky/ngx.lua", -- nginx/OpenResty: calls on a thread pool
  },
  install = {
    bin = { ducky = "bin/ducky" },
    conf = { ["ducky.1"] = "doc/ducky.1", ["ducky.bash"] = "completions/ducky.bash" },
  },
}
