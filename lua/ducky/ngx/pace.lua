-- ducky.ngx.pace: back-off steps, so that a token endpoint in trouble, or an
-- API answering 401 to everything, costs a few attempts rather than one per
-- request. Step n waits half to all of min(CAP, BASE * 2^(n-1)) seconds
-- (jittered, so that machines drift apart); a quiet RESET seconds start the
-- steps over. With a lua_shared_dict the state lives there, under the token's
-- key, so every worker of the machine shares one pace; without one, in the
-- worker (api.paces).
local ngx = ngx
local cjson = require("cjson")

local M = {}

M.BASE, M.CAP = 1, 10
local RESET = 60

function M.step(n)
  return math.min(M.CAP, M.BASE * 2 ^ (n - 1))
end

local function jittered(n)
  local step = M.step(n)
  return step / 2 + math.random() * step / 2
end

local function name_of(api, what) return api.key .. ":pace:" .. what end

-- The state of `what`: { n, at (time of the next attempt allowed), kind,
-- message (the last failure) }, or nil.
local function read(api, what)
  if not api.dict then return api.paces and api.paces[what] end
  local raw = api.dict:get(name_of(api, what))
  local ok, t = pcall(cjson.decode, raw or "")
  return ok and type(t) == "table" and type(t.at) == "number" and t or nil
end

local function write(api, what, t)
  if not api.dict then
    api.paces = api.paces or {}
    api.paces[what] = t
  elseif t then
    api.dict:set(name_of(api, what), cjson.encode(t), t.at - ngx.now() + RESET)
  else
    api.dict:delete(name_of(api, what))
  end
end

-- Seconds until `what` may be tried again (0: now), and the last failure
-- ({ kind, message }) while it may not.
function M.left(api, what)
  local t = read(api, what)
  local left = t and t.at - ngx.now() or 0
  if left <= 0 then return 0 end
  return left, t
end

-- The step after state t: the next one, unless t is older than RESET.
local function next_n(t)
  if t and ngx.now() - t.at < RESET then return t.n + 1 end
  return 1
end

-- Records a failure of `what` (err: an error table): the next attempt waits
-- a step. Returns the time of that attempt.
function M.failed(api, what, err)
  local n = next_n(read(api, what))
  local at = ngx.now() + jittered(n)
  write(api, what, { n = n, at = at, kind = err and err.kind or "config",
    message = err and tostring(err.message) or "failed" })
  return at
end

function M.succeeded(api, what)
  if read(api, what) then write(api, what, nil) end
end

-- For an action paced without a failure to wait on (dropping a token after
-- a 401): true when it may go now, and then the next one waits a step.
-- Atomic across workers (the dict's add()).
function M.take(api, what)
  local t = read(api, what)
  local n, now = next_n(t), ngx.now()
  local wait = jittered(n)
  if api.dict then
    if not api.dict:add(name_of(api, what .. ":gate"), true, wait) then return false end
  elseif t and t.at > now then
    return false
  end
  write(api, what, { n = n, at = now + wait })
  return true
end

return M
