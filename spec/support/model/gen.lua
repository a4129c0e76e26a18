-- The random model's generators (spec/support/model/model.lua): text, query,
-- JSON, bodies, headers, one call, and the fault at the stand-in for it.
local H = require("spec.helpers")
local U = require("spec.support.model.util")
local World = require("spec.support.model.world")
local cjson = require("cjson")

local METHODS = U.METHODS

local SAFE = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
local QCHARS = SAFE .. " -_.~!*'();:@&=+$,/?#[]%\"<>\\^`{|}"
local HCHARS = SAFE .. "-_.,;=/:()[]{}?!@#$%&*+"
local UTF8 = { "é", "ü", "日本", "€", "ß", "ça", "\240\159\166\134" }
local QKEYS = { "a", "b", "year", "q_1", "x-y", "k e y", "a&b", "c=d", "%", "+", "ü", "k\0z", "list" }

function World:chars(set, n)
  local t = {}
  for i = 1, n do
    local j = self.r:int(1, #set)
    t[i] = set:sub(j, j)
  end
  return table.concat(t)
end

function World:text()
  local r = self.r:float()
  if r < 0.6 then return self:chars(QCHARS, self.r:int(0, 12)) end
  if r < 0.9 then return self.r:pick(UTF8) .. self:chars(SAFE, self.r:int(0, 4)) end
  return "nul\0" .. self:chars(SAFE, 2)
end

function World:scalar()
  local r = self.r:float()
  if r < 0.45 then return self:text() end
  if r < 0.7 then return self.r:int(-1000000, 1000000) end
  if r < 0.85 then return self.r:int(-400, 400) / 4 end
  return self.r:chance(0.5)
end

-- a query table and the args the echo must show for it
function World:query()
  local q, expect = {}, {}
  for _ = 1, self.r:int(0, 4) do
    local k = self.r:pick(QKEYS)
    if q[k] == nil then
      local v
      local shown = {}
      if self.r:chance(0.25) then
        v = {}
        for j = 1, self.r:int(0, 3) do
          v[j] = self:scalar()
          shown[j] = tostring(v[j])
        end
      else
        v = self:scalar()
        shown[1] = tostring(v)
      end
      q[k] = v
      if #shown > 0 then expect[k] = shown end
    end
  end
  return q, expect
end

function World:json_value(depth)
  local r = self.r:float()
  if depth > 2 or r < 0.5 then
    local s = self.r:float()
    if s < 0.1 then return cjson.null end
    if s < 0.2 then return self.r:chance(0.5) end
    if s < 0.55 then return self:text() end
    if s < 0.8 then return self.r:int(-100000, 100000) end
    return self.r:int(-400, 400) / 4
  end
  local t = {}
  if r < 0.75 then
    for i = 1, self.r:int(1, 4) do t[i] = self:json_value(depth + 1) end
  else
    for i = 1, self.r:int(0, 4) do t["k" .. i .. self:chars(SAFE, 2)] = self:json_value(depth + 1) end
  end
  return t
end

function World:body()
  local r = self.r:float()
  local n = self.r:chance(0.1) and self.r:int(1000, 20000) or self.r:int(0, 300)
  if r < 0.3 then
    local t = {}
    for i = 1, n do t[i] = string.char(self.r:int(0, 255)) end
    return table.concat(t)
  end
  if r < 0.7 then return self:chars(QCHARS .. "\n\t", n) end
  local t = {}
  for i = 1, math.ceil(n / 4) do t[i] = self.r:pick(UTF8) end
  return table.concat(t)
end

function World:headers(expect)
  local h = {}
  for i = 1, self.r:int(1, 4) do
    local name = "X-M-" .. i .. self:chars(SAFE, self.r:int(0, 6))
    local value
    if self.r:chance(0.15) then
      value = self.r:int(0, 99999)
    else
      value = self:chars(SAFE, 1) .. self:chars(HCHARS .. "  ", self.r:int(0, 20)) .. self:chars(SAFE, 1)
    end
    h[name] = value
    expect[name:lower()] = tostring(value)
  end
  return h
end

-- rq's route and path: the echo (most), a status, a foreign URL or the ping.
function World:gen_route(rq)
  local r = self.r:float()
  local base = H.base_url(rq.cred.scheme)
  if r < 0.86 then
    rq.route = "echo"
    rq.fault_path = "/v3/echo/" .. rq.tag
    local style = self.r:int(1, 4)
    if style == 1 then rq.path = "/echo/" .. rq.tag
    elseif style == 2 then rq.path = "echo/" .. rq.tag
    elseif style == 3 then rq.path = base .. "/echo/" .. rq.tag
    else
      rq.path = "/echo/" .. rq.tag .. "?pq=" .. rq.tag
      rq.path_args.pq = { rq.tag }
    end
    if not rq.auth then -- the echo wants a token unless public=1
      rq.path = rq.path .. (rq.path:find("?", 1, true) and "&" or "?") .. "public=1"
      rq.path_args.public = { "1" }
    end
  elseif r < 0.93 then
    rq.route = "status"
    rq.code = self.r:pick({ 200, 201, 202, 204, 400, 403, 404, 409, 418, 422 })
    rq.path = "/status/" .. rq.code .. "?public=1"
    rq.path_args.public = { "1" }
  elseif r < 0.97 then
    rq.route = "foreign"
    rq.path = self.r:pick({ "http://elsewhere.invalid/v3/echo", "https://127.0.0.1:1/v3/echo",
      base:gsub("^http", "ftp") .. "/echo" })
  else
    rq.route = "ping"
    rq.path = self.r:pick({ "/ping", "ping" })
  end
end

-- rq's options (query, json or body, headers, timeout, retries, auth), noted in rq.
function World:gen_options(rq)
  local o = {}
  if self.r:chance(0.5) then o.query, rq.query_args = self:query() end
  local b = self.r:float()
  if b < 0.2 then
    o.json = self:json_value(0)
    rq.json, rq.has_json = o.json, true
    rq.ctype = "application/json"
  elseif b < 0.4 then
    o.body = self:body()
    rq.body = o.body
    rq.ctype = "application/octet-stream"
  end
  if self.r:chance(0.3) then
    o.headers = self:headers(rq.expect_headers)
    if rq.ctype and self.r:chance(0.3) then
      o.headers["Content-Type"] = "text/plain"
      rq.ctype = "text/plain"
    end
  end
  if self.r:chance(0.3) then
    o.timeout = self.r:chance(0.85) and self.r:pick({ 1, 2, 5, 8 }) or self.r:pick({ 0.05, 0.1, 0.2 })
    rq.timeout = o.timeout
  end
  if self.r:chance(0.3) then
    o.retries = self.r:int(0, 2)
    rq.retries = o.retries
  end
  if not rq.auth then
    o.auth = false
  elseif self.r:chance(0.05) then
    o.auth = true
  end
  return o
end

-- One call: method, path, options, and what the answer must look like.
function World:gen_request(cl, in_batch)
  local rq = { cl = cl, cred = cl.cred, tag = self:tag(), expect_headers = {}, path_args = {} }
  rq.auth = not self:pct("no_auth")
  local m = self.r:weighted(METHODS)
  rq.method = m
  rq.sent_method = self.r:chance(0.1) and m:lower() or m
  self:gen_route(rq)
  rq.timeout = cl.opts.timeout
  rq.retries = cl.opts.retries
  if rq.auth and self.r:chance(0.15) then return rq end -- no options at all
  rq.opts = self:gen_options(rq)
  rq.in_batch = in_batch
  return rq
end

-- A fault at the stand-in for this request's own path (the path is unique).
local API_FAULTS = { { "5xx", 30 }, { "401", 25 }, { "drop", 20 }, { "delay", 25 } }

function World:api_fault(rq, delay_budget)
  if rq.route ~= "echo" or not U.ROUTED[rq.method] or not self:pct("fault") then return 0 end
  if rq.auth and not rq.cred.good then return 0 end -- it would never be consumed
  local f = { path = rq.fault_path, times = 1 }
  if rq.auth then f.client_id = rq.cred.id end
  local kind = self.r:weighted(API_FAULTS)
  local spent = 0
  if kind == "5xx" then
    f.status = self.r:pick({ 500, 502, 503, 504 })
    f.headers = { ["Retry-After"] = "0" }
    f.times = self.r:int(1, 2)
  elseif kind == "401" then
    f.status = 401
    f.body = { error = "invalid_token", error_description = "model fault" }
    f.times = self.r:chance(0.75) and 1 or 2
    if rq.auth then rq.cred.faults_401 = rq.cred.faults_401 + f.times end
  elseif kind == "drop" then
    f.drop = self.r:pick({ "before_headers", "mid_body" })
  else
    f.delay = self.r:pick({ 0.05, 0.1, 0.2, 0.3 })
    if delay_budget and f.delay > delay_budget then return 0 end
    spent = f.delay
  end
  H.fault(f)
  rq.fault = f
  rq.fault_kind = kind == "drop" and f.drop or kind
  return spent
end
