-- No shared secret: the client proves who it is with a JWT signed by its own
-- private key (RFC 7523, Auth0 "Private Key JWT"). Register the public key with
-- the application in Auth0 (Credentials tab); keep the private key to yourself
-- (the file must be yours, mode 0600: ducky refuses one that others can read).
--   DUCKY_CLIENT_ID=… DUCKY_PRIVATE_KEY_FILE=key.pem [DUCKY_KEY_ID=…]
--   [DUCKY_SIGNING_ALG=RS256|RS384|PS256|ES256] lua5.4 examples/private_key_jwt.lua
-- DUCKY_ASSERTION_AUDIENCE overrides the JWT's `aud` (default: the token URL's
-- origin with a trailing slash, which is what Auth0 wants); the other DUCKY_*
-- variables work as in examples/ping.lua.
local ducky = require("ducky")

local key_file = os.getenv("DUCKY_PRIVATE_KEY_FILE")
if not key_file or key_file == "" then
  io.stderr:write("set DUCKY_PRIVATE_KEY_FILE to the PEM file of your private key\n")
  os.exit(2)
end

local client = ducky.client{
  token_auth = "private_key_jwt",
  private_key_file = key_file,
  key_id = os.getenv("DUCKY_KEY_ID"),                       -- the credential's kid, if any
  signing_alg = os.getenv("DUCKY_SIGNING_ALG") or "RS256",
  assertion_audience = os.getenv("DUCKY_ASSERTION_AUDIENCE"),
  ca_file = os.getenv("DUCKY_CA_FILE"),
}

local res, err = client:ping_protected()
if not res then
  -- a refused key is an `auth` error carrying Auth0's answer; an unusable key
  -- file (missing, readable by others, not fitting signing_alg) a `config` one
  io.stderr:write(tostring(err), "\n")
  os.exit(1)
end
print("ping_protected: " .. res.status .. " " .. res.body)

local _, seconds_left = assert(client:token())
print(("token:          valid for %.0f more seconds, no secret involved"):format(seconds_left))
client:close()
