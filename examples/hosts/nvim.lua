-- Neovim (0.7 and later) commands that call the Ducky API without freezing the
-- editor: :DuckyPing, and :DuckyGet PATH (the answer in a scratch buffer).
--   :luafile examples/hosts/nvim.lua     (or put it under plugin/ in your config)
-- ducky must be built for Neovim's LuaJIT (make LUA=luajit) and on its paths:
--   package.cpath = "/path/to/ducky/build-luajit/?.so;" .. package.cpath
--   package.path = "/path/to/ducky/lua/?.lua;" .. package.path
-- Every setting comes from DUCKY_* environment variables, as for examples/ping.lua.
-- Headless, against the stand-in (`make demo` does this):
--   nvim --headless -u NONE -c 'luafile examples/hosts/nvim.lua' -c DuckyPing \
--     -c 'lua vim.wait(10000, function() return vim.g.ducky_done end)' -c 'qa!'
-- luacheck: globals vim
local client = require("ducky.nvim").client { ca_file = os.getenv("DUCKY_CA_FILE") }

-- Callbacks run through vim.schedule: the editor's API is theirs to use.
vim.api.nvim_create_user_command("DuckyPing", function()
  client:ping_protected(function(res, err)
    local line = res and ("ducky: %d %s"):format(res.status, res.body) or ("ducky: " .. tostring(err))
    vim.api.nvim_echo({ { line } }, true, {})
    vim.g.ducky_done = true
  end)
end, {})

vim.api.nvim_create_user_command("DuckyGet", function(cmd)
  client:request("GET", cmd.args, function(res, err)
    local text = res and res.body or tostring(err)
    vim.cmd("new")
    vim.bo.buftype, vim.bo.bufhidden = "nofile", "wipe"
    vim.api.nvim_buf_set_lines(0, 0, -1, false, vim.split(text, "\n"))
    vim.g.ducky_done = true
  end)
end, { nargs = 1 })
