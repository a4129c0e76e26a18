-- ducky.cli.help: the texts of `ducky --help` and `ducky help COMMAND`. The man
-- page (doc/ducky.1) and the bash completion say the same; spec/cli_spec.lua
-- checks that they know every option, and that the lists below are the module's
-- (ducky.TOKEN_AUTHS, ducky.SIGNING_ALGS).
local HELP = {}
HELP.main = [[
usage: ducky [OPTIONS] COMMAND [ARGS]

Calls the Ducky carbon-footprint API. The Auth0 token is fetched, cached per
user and shared by every ducky process until it runs out.

commands:
  ping [--protected]               GET /ping (no token), or /ping/protected
  token [--show | --forget]        the token's source, seconds left, fingerprint
  request METHOD PATH [REQUEST OPTIONS]
                                   any API call; PATH is relative to the base URL
  get|post|put|patch|delete PATH [REQUEST OPTIONS]
  help [COMMAND]                   this text, or a command's

request options:
  -q, --query KEY=VALUE            a query parameter (repeatable; keys may repeat)
  -H, --header 'NAME: VALUE'       a request header (repeatable)
      --json STRING|@FILE|-        a JSON body, checked and sent as given
      --data STRING|@FILE|-        a raw body (application/octet-stream unless -H)
      --no-auth                    send no token

output:
      --raw                        the body as received, not pretty-printed
  -i, --include                    the status and headers before the body
  -v, --verbose                    token source, retries, attempts, timing on stderr

configuration (flags, then DUCKY_* variables, then the config file):
      --config FILE                $DUCKY_CONFIG, else $XDG_CONFIG_HOME/ducky/config
      --client-id ID               $DUCKY_CLIENT_ID
      --secret-file FILE           $DUCKY_CLIENT_SECRET_FILE (or $DUCKY_CLIENT_SECRET)
      --secret-stdin               read the client secret from standard input
      --base-url URL               $DUCKY_BASE_URL (https://api.ducky.eco/v3)
      --token-url URL              $DUCKY_TOKEN_URL
      --audience NAME              $DUCKY_AUDIENCE
      --token-auth MODE            $DUCKY_TOKEN_AUTH: json (Auth0, the default), form, basic,
                                   private_key_jwt (a signed assertion, no secret),
                                   tls_client_auth (a client certificate, no secret)
      --private-key-file FILE      $DUCKY_PRIVATE_KEY_FILE: private_key_jwt's PEM key (mode 0600)
      --key-id ID                  $DUCKY_KEY_ID: the assertion's kid
      --signing-alg ALG            $DUCKY_SIGNING_ALG: RS256 (default), RS384, PS256, ES256
      --assertion-audience URL     $DUCKY_ASSERTION_AUDIENCE (the token URL's origin + "/")
      --client-cert FILE           $DUCKY_CLIENT_CERT: a PEM client certificate (mTLS)
      --client-key FILE            $DUCKY_CLIENT_KEY: its key (mode 0600); the key's password
                                   only in $DUCKY_CLIENT_KEY_PASSWORD or the config file
      --ca-file FILE               $DUCKY_CA_FILE
      --ca-path DIR                $DUCKY_CA_PATH
      --insecure                   $DUCKY_INSECURE: no TLS verification
      --proxy URL                  $DUCKY_PROXY
      --timeout SECONDS            $DUCKY_TIMEOUT (30, retries included)
      --connect-timeout SECONDS    $DUCKY_CONNECT_TIMEOUT (10)
      --retries N                  $DUCKY_RETRIES (2)
      --max-body BYTES             $DUCKY_MAX_BODY (64 MiB)
  -h, --help                       help
      --version                    the version

exit status: 0 success, 1 internal error, 2 usage, 3 config, 4 auth, 5 http,
6 network/timeout/tls, 7 decode, 8 limit. See ducky(1).
]]

HELP.ping = [[
usage: ducky ping [--protected] [OPTIONS]

GET /ping, which needs no token, and print the answer. With --protected,
GET /ping/protected with the token: it tells whether the API is ready.

Global options: see `ducky --help`.
]]

HELP.token = [[
usage: ducky token [--show | --forget] [OPTIONS]

Get the token (from memory, the per-user file cache or an exchange) and print
  source: exchange|file|memory|store
  seconds_left: N
  fingerprint: 12 hex digits of the token's SHA-256
--show    print the access token itself instead, alone on its line
          (curl -H "Authorization: Bearer $(ducky token --show)" ...)
--forget  drop the cached token (memory and file); the next call exchanges

Global options: see `ducky --help`.
]]

HELP.request = [[
usage: ducky request METHOD PATH [REQUEST OPTIONS] [OPTIONS]
       ducky get|post|put|patch|delete PATH [REQUEST OPTIONS] [OPTIONS]

Send METHOD PATH (relative to the base URL; an absolute URL only on the base
URL's host) with the token and print the answer's body: JSON pretty-printed
with sorted keys, anything else as received. An error status's body is printed
too, and the exit status tells the error kind.

  -q, --query KEY=VALUE        a query parameter; repeat a key for a list
  -H, --header 'NAME: VALUE'   a header; overrides the default of that name
      --json STRING|@FILE|-    a JSON body: the string, FILE's content, or standard
                               input; checked, sent as given, with
                               Content-Type: application/json
      --data STRING|@FILE|-    a raw body, Content-Type: application/octet-stream
                               unless -H 'Content-Type: ...' says otherwise
      --no-auth                send no token
      --raw, -i, -v            see `ducky --help`

Global options: see `ducky --help`.
]]
HELP.help = "usage: ducky help [COMMAND]\n\nThe help of ducky, or of COMMAND.\n"

return HELP
