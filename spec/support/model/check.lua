-- The random model's expectations and checks of one answer
-- (spec/support/model/model.lua).
local U = require("spec.support.model.util")
local World = require("spec.support.model.world")
local ducky = require("ducky")

local show, deep_eq, echo_text, matches_any = U.show, U.deep_eq, U.echo_text, U.matches_any
local KINDS, TOKEN_FAULT_KINDS, IDEMPOTENT, HOSTILE_RAISE = U.KINDS, U.TOKEN_FAULT_KINDS, U.IDEMPOTENT,
  U.HOSTILE_RAISE

-- What may come back for rq: ok (success allowed), kinds (error kinds allowed),
-- status (the status an http/auth error must carry, when known). In a batch,
-- batch_timeout bounds every item, and an item's own timeout counts from the
-- start of the batch: one that ran for elapsed seconds may have timed out any
-- item whose timeout is shorter.
local function expect(rq, batch_timeout, elapsed)
  local e = { ok = true, kinds = {}, must_fail = false }
  local timeout = rq.timeout
  if batch_timeout and batch_timeout < timeout then timeout = batch_timeout end
  if elapsed and timeout <= elapsed + 0.5 then e.kinds.timeout = true end
  local function fail_only(kind, status)
    e.must_fail = true
    e.kinds[kind] = true
    if status then e.status, e.status_kind = status, kind end
  end
  if rq.route == "foreign" then
    fail_only("config")
    return e
  end
  local needs_token = rq.auth
  if needs_token and not rq.cred.good then
    fail_only("auth")
  elseif needs_token and rq.cred.risk then
    for _, k in ipairs(TOKEN_FAULT_KINDS) do e.kinds[k] = true end
  end
  -- a revoked token may linger in a store another client of the credential did
  -- not drop it from: the replay can get it again, and a second 401
  if needs_token and rq.cred.revoked_ever then e.kinds.auth = true end
  if timeout < 1 then e.kinds.timeout = true end
  if not U.ROUTED[rq.method] then
    fail_only("http", 501)
  elseif rq.route == "status" and rq.code >= 300 then
    fail_only("http", rq.code)
  elseif rq.fault then
    local f, idem = rq.fault, IDEMPOTENT[rq.method]
    local k = rq.fault_kind
    if k == "5xx" then
      e.kinds.http = true
      e.ok = idem and rq.retries >= f.times
    elseif k == "401" then
      e.kinds.auth = true
      e.ok = rq.auth and f.times == 1
    elseif k == "before_headers" then -- libcurl itself resends on a reused connection
      e.kinds.network = true
      e.ok = idem
    elseif k == "mid_body" then
      e.kinds.network = true
      e.ok = (idem and rq.retries >= 1) or rq.method == "HEAD"
    elseif k == "delay" then
      if timeout <= f.delay then
        e.kinds.timeout = true
        e.ok = false
      elseif timeout < f.delay + 1 then
        e.kinds.timeout = true
      end
    end
  end
  if e.must_fail then e.ok = false end
  return e
end

function World:check_error(rq, err, e, where)
  self:check(ducky.is_error(err), "%s: err is not a ducky.error: %s", where, show(err))
  self:check(KINDS[err.kind], "%s: err.kind %s is not a contract kind", where, tostring(err.kind))
  self:check(type(err.message) == "string", "%s: err.message is %s", where, type(err.message))
  local line = tostring(err)
  self:check(type(line) == "string" and not line:find(rq.cred.secret, 1, true),
    "%s: tostring(err) holds the secret", where)
  if err.kind == "timeout" then rq.cred.timeouts = rq.cred.timeouts + 1 end
  self:check(e.kinds[err.kind], "%s: unexpected %s error: %s", where, err.kind, line)
  if e.status and err.kind == e.status_kind and not rq.cred.risk then
    self:check(err.status == e.status, "%s: expected status %d, got %s (%s)", where, e.status,
      tostring(err.status), line)
  end
end

function World:check_echo(rq, res, where)
  local j = res.json
  self:check(type(j) == "table", "%s: the echo's body is not JSON: %s", where, show(res.body))
  self:check(j.method == rq.method, "%s: sent %s, the echo saw %s", where, rq.method, tostring(j.method))
  self:check(j.path == "/v3/echo/" .. rq.tag, "%s: sent /v3/echo/%s, the echo saw %s", where, rq.tag,
    tostring(j.path))
  local args = {}
  for k, v in pairs(rq.query_args or {}) do args[k] = v end
  for k, v in pairs(rq.path_args) do args[k] = v end
  self:check(deep_eq(j.args, args), "%s: query args %s, expected %s (query string %s)", where,
    show(j.args), show(args), show(j.query))
  local h = j.headers or {}
  for name, value in pairs(rq.expect_headers) do
    self:check(h[name] == value, "%s: header %s is %s, expected %s", where, name, show(h[name]), show(value))
  end
  self:check(h.expect == nil, "%s: an Expect header was sent", where)
  if rq.auth then
    self:check(type(h.authorization) == "string" and h.authorization:match("^Bearer tok_%x+$"),
      "%s: no bearer token: %s", where, show(h.authorization))
    self:check(j.client_id == rq.cred.id, "%s: the token belongs to %s, not to %s", where,
      tostring(j.client_id), rq.cred.id)
  else
    self:check(h.authorization == nil, "%s: auth=false sent %s", where, show(h.authorization))
  end
  if rq.ctype then
    self:check(h["content-type"] == rq.ctype, "%s: content-type %s, expected %s", where,
      show(h["content-type"]), rq.ctype)
  end
  if rq.has_json then
    self:check(deep_eq(j.json, rq.json), "%s: json %s came back as %s", where, show(rq.json), show(j.json))
  elseif rq.body then
    self:check(j.body == echo_text(rq.body), "%s: a body of %d bytes came back as %s", where, #rq.body,
      show(j.body))
  end
end

-- rq's outcome: ok = pcall's first value, then res, err as returned.
function World:check_answer(rq, e, ctx, ok, res, err, where)
  if not ok then
    local msg = tostring(res)
    if matches_any(msg, { "closed" }) and (ctx.may_close[rq.cl] or rq.cl.closed) then return end
    if ctx.may_raise_boom and msg:find("hostile boom", 1, true) then return end
    if #ctx.actions > 0 and matches_any(msg, HOSTILE_RAISE) then return end
    self:fail("%s raised: %s", where, msg)
  end
  self:check(rq.cl.closed ~= true, "%s on a closed client did not raise", where)
  if res == nil then
    self:check(err ~= nil, "%s: neither res nor err", where)
    self:check_error(rq, err, e, where)
    return
  end
  self:check(err == nil, "%s: both res and err", where)
  self:check(type(res) == "table", "%s: res is a %s", where, type(res))
  self:check(e.ok, "%s: expected an error (%s), got status %s", where, show(e.kinds), tostring(res.status))
  self:check(type(res.status) == "number" and res.status >= 200 and res.status < 300,
    "%s: res.status %s", where, tostring(res.status))
  self:check(type(res.headers) == "table", "%s: res.headers is %s", where, type(res.headers))
  for k, v in pairs(res.headers) do
    self:check(type(k) == "string" and k == k:lower() and type(v) == "string",
      "%s: header %s=%s", where, show(k), show(v))
  end
  self:check(type(res.body) == "string", "%s: res.body is %s", where, type(res.body))
  self:check(next(res.headers) ~= nil or res.body ~= "", "%s: a silent empty answer: status %s, no headers, "
    .. "no body", where, tostring(res.status))
  self:check(not res.body:find(rq.cred.secret, 1, true), "%s: the body holds the secret", where)
  self:check(type(res.attempts) == "number" and res.attempts >= 1, "%s: attempts %s", where,
    tostring(res.attempts))
  local max_attempts = (rq.retries + 1) * (rq.auth and 2 or 1)
  self:check(res.attempts <= max_attempts, "%s: %d attempts, at most %d expected", where, res.attempts,
    max_attempts)
  self:check(res.headers["x-request-id"] ~= nil, "%s: %d answer without x-request-id (headers %s)",
    where, res.status, show(res.headers))
  if rq.route == "echo" then
    self:check(res.status == 200, "%s: echo answered %d", where, res.status)
    if rq.method == "HEAD" then
      self:check(res.body == "" and tonumber(res.headers["content-length"] or "0") > 0,
        "%s: HEAD answer: body %d bytes, content-length %s", where, #res.body,
        tostring(res.headers["content-length"]))
    else
      self:check(#res.body > 0, "%s: a 200 from the echo with an empty body (headers %s)", where,
        show(res.headers))
      self:check_echo(rq, res, where)
    end
    if not rq.fault and not rq.cred.revoked_ever and not rq.cred.risk then
      self:check(res.attempts == 1, "%s: %d attempts without any fault", where, res.attempts)
    end
  elseif rq.route == "status" then
    self:check(res.status == rq.code, "%s: status %d, expected %d", where, res.status, rq.code)
  elseif rq.route == "ping" then
    self:check(rq.method == "HEAD" or (res.json and res.json.message == "pong"),
      "%s: ping answered %s", where, show(res.body))
  end
end

return { expect = expect }
