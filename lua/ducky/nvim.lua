-- ducky.nvim: ducky's client in Neovim (0.7 and later): ducky.luv on Neovim's
-- own loop (vim.uv, or vim.loop before 0.10), with every callback, and every
-- coroutine a call resumes, run through vim.schedule, so they may use the
-- editor's API. README "Event loops".
--
--   local client = require("ducky.nvim").client{ … }   -- ducky.client's options
--   client:ping_protected(function(res, err) vim.notify(…) end)
-- luacheck: read globals vim
local luv = require("ducky.luv")

local M = {}

-- Hands what the loop's callback queued to the editor's main loop.
local function deliver(self)
  local q = self.later
  self.later = {}
  for i = 1, #q do vim.schedule(q[i]) end
end

-- A client (ducky.client's options) on Neovim's loop.
function M.client(opts)
  return luv.new(opts, vim.uv or vim.loop, { name = "ducky.nvim", deliver = deliver })
end

return M
