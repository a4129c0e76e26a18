-- The rockspec of a checkout: `luarocks make` (or `make rock`) builds what sits
-- beside it. Its build is the Makefile's, so a rock and `make` produce the same
-- module (flags, exports, -z nodelete: spec/build_spec.lua checks). `make dist`
-- turns it into dist/ducky-<version>-1.rockspec, whose source is the release
-- tarball at $(DIST_URL) (README "Packaging").
rockspec_format = "3.0"
package = "ducky"
version = "dev-1"
source = { url = "git+file://." } -- not fetched by `luarocks make`; releases use the tarball
description = {
  summary = "The Ducky carbon-footprint API for Lua, with Auth0 tokens handled underneath",
  detailed = [[
A C core over libcurl: one reused connection per client, retries with backoff,
and a process-wide token cache (one token exchange per credential per token life).
]],
  license = "MIT",
}
dependencies = { "lua >= 5.1", "lua-cjson" }
build = {
  type = "make",
  variables = { -- for both passes: the same build, then its install
    CFLAGS = "$(CFLAGS)",
    LUA_INCDIR = "$(LUA_INCDIR)",
    LUA_BIN = "$(LUA)",
    BUILD = "build-rock",
    WERROR = "0", -- a newer compiler's new warning must not stop a user's install
    PREFIX = "$(PREFIX)",
    BINDIR = "$(BINDIR)",
    LUA_LIBDIR = "$(LIBDIR)",
    LUA_LMOD = "$(LUADIR)",
    -- the command's paths come from luarocks' wrapper (the files leave LUADIR when deployed)
    INSTALLED_PATHS = "-- its paths: the luarocks wrapper of this command sets them",
  },
}
