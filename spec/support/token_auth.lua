-- What the specs of private_key_jwt and tls_client_auth share (spec/token_auth_spec.lua,
-- spec/token_auth_tls_spec.lua, spec/token_auth_secrets_spec.lua):
--   local A = require("spec.support.token_auth")
local H = require("spec.helpers")
local ducky = require("ducky")
local assert = require("luassert") -- busted's assert, which a spec file sees as a global

local A = {}

A.TOKEN = "/oauth/token"

-- a call's res, err: an answer, no error (returns res)
function A.ok_call(res, err)
  assert.is_nil(err, err and tostring(err))
  assert.is_table(res)
  return res
end

-- token()'s returns: a token (returned)
function A.ok_token(tok, left)
  assert.is_string(tok, tostring(left))
  return tok
end

-- a call's res, err: an auth error of status 401 with OAuth code `code`
-- (default invalid_client); returns err
function A.auth_error(res, err, code)
  assert.is_nil(res)
  assert.is_true(ducky.is_error(err), "expected a ducky.error, got " .. tostring(err))
  assert.equals("auth", err.kind, tostring(err))
  assert.equals(401, err.status, tostring(err))
  assert.equals(code or "invalid_client", err.code, tostring(err))
  return err
end

-- The config error a client with options o gives, and no token request made:
-- raised by ducky.client as a ducky.error, or returned by the first call that
-- needs a token (then also the client, closed).
function A.config_error(o)
  local before = H.requests_to(A.TOKEN)
  local ok, c = pcall(ducky.client, o)
  if not ok then
    assert.is_true(ducky.is_error(c), "ducky.client raised something else than a ducky.error: "
      .. tostring(c))
    assert.equals("config", c.kind, tostring(c))
    return c
  end
  local res, err = c:ping_protected()
  assert.is_nil(res)
  assert.is_true(ducky.is_error(err), tostring(err))
  assert.equals("config", err.kind, tostring(err))
  assert.equals(before, H.requests_to(A.TOKEN))
  c:close()
  return err, c
end

-- a copy of a key file with this mode, in a fresh 0700 directory
function A.key_copy(src, mode)
  local dir = H.tmpdir()
  local path = dir .. "/key.pem"
  H.write_file(path, H.read_file(src))
  assert(os.execute(("chmod %s '%s'"):format(mode, path)))
  return path, dir
end

function A.rm(dir) os.execute("rm -rf '" .. dir .. "'") end

-- the token request's fields minus the assertion itself, and the assertion
function A.token_request()
  local tr = H.stats().last_token_request
  local params = {}
  for k, v in pairs(tr.params or {}) do params[k] = v end
  local assertion = params.client_assertion
  params.client_assertion = nil
  return tr, params, assertion
end

return A
