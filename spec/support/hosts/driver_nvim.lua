-- spec/hosts_spec.lua's scenarios in Neovim (spec/support/hosts/luv_ways.lua on
-- its loop): nvim --headless -u NONE -c 'luafile spec/support/hosts/driver_nvim.lua',
-- with $DUCKY_HOSTS_PATH and $DUCKY_HOSTS_CPATH put first on package.path/cpath.
-- luacheck: read globals vim
package.path = (os.getenv("DUCKY_HOSTS_PATH") or "") .. package.path
package.cpath = (os.getenv("DUCKY_HOSTS_CPATH") or "") .. package.cpath
local ok, err = pcall(function()
  local D = { host = "nvim", adapter = require("ducky.nvim"), uv = vim.uv or vim.loop, callbacks = true,
    later = vim.schedule, survives_callback_errors = true }
  -- the editor's API where a callback runs (refused in the loop's own callbacks)
  function D.editor_api()
    return pcall(vim.api.nvim_buf_line_count, 0) and "works" or "refused"
  end
  function D.loop(finished)
    assert(vim.wait(120000, finished, 10), "the scenarios did not end within 120 s")
  end
  require("spec.support.hosts.luv_ways")(D)
  require("spec.support.hosts.child").main(D)
end)
if not ok then io.stderr:write(tostring(err), "\n") end
vim.cmd(ok and "qa!" or "cq!")
