-- Loaded by examples/hosts/haproxy.cfg (lua-load): ducky inside HAProxy.
--  * http-request lua.ducky_auth: sets Authorization: Bearer <token> on the
--    request; a background task keeps the token fresh, so no request waits for
--    an exchange but the very first ones.
--  * lua.ducky_ping: a service that calls the API from HAProxy, yielding to it
--    while the call is under way (the rest of the proxy goes on meanwhile).
-- The client options come from DUCKY_* variables; DUCKY_CA_FILE names a CA
-- bundle for a private server such as the local stand-in.
-- luacheck: read globals core
local ducky_haproxy = require("ducky.haproxy")

local client = ducky_haproxy.register_authorization("ducky_auth", { ca_file = os.getenv("DUCKY_CA_FILE") })

core.register_service("ducky_ping", "http", function(applet)
  local res, err = client:ping_protected()
  local body = res and res.body or tostring(err)
  applet:set_status(res and 200 or 502)
  applet:add_header("content-type", res and "application/json" or "text/plain")
  applet:add_header("content-length", tostring(#body))
  applet:start_response()
  applet:send(body)
end)
