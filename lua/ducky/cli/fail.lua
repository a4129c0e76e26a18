-- ducky.cli.fail: how a run of the ducky command ends when it does not succeed.
-- A failure is raised as a table of its own (kind, message) and caught by the
-- command's main; the kind gives the exit status (README "Command line",
-- doc/ducky.1 EXIT STATUS).
local M = {}

-- Exit status by kind: the command's own kinds, then every kind of ducky.ERROR_KINDS
-- (spec/cli_modules_spec.lua checks that none is missing).
M.EXIT = {
  internal = 1, output = 1, usage = 2,
  config = 3, auth = 4, http = 5, network = 6, timeout = 6, tls = 6, decode = 7, limit = 8,
  cancelled = 1, -- the command never cancels a call: one would be a bug of its own
}

local Failure = {}

-- Ends the run: kind as above, the message as string.format(fmt, ...).
function M.fail(kind, fmt, ...)
  error(setmetatable({ kind = kind, message = string.format(fmt, ...) }, Failure), 0)
end

function M.usage(fmt, ...) M.fail("usage", fmt, ...) end

function M.is_failure(v) return getmetatable(v) == Failure end

-- The exit status of a failure of this kind (1 for a kind nobody knows).
function M.status(kind) return M.EXIT[kind] or 1 end

-- A ducky.error ends the run with its kind; tostring(err) is one line without the
-- secret or a token (the module's promise), "ducky " left out (the command says it).
function M.module_error(err)
  local line = tostring(err):gsub("^ducky ", "")
  M.fail(M.EXIT[err.kind] and err.kind or "internal", "%s", line)
end

return M
