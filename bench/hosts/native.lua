-- The hosts' own HTTP means for bench/hosts/gaps.lua, each a GET of
-- http://127.0.0.1:<port><path> made inside the host the way its users would,
-- returning the status: host -> function(ctx, port, path).
-- luacheck: read globals vim core
local N = {}

local function status_of(text) return tonumber((text or ""):match("^HTTP/%d%.%d (%d%d%d)")) end

local function request(path) return ("GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n"):format(path) end

-- luv (and Neovim's loop): a TCP connection, the request, read to the end.
local function uv_get(uv, later, port, path)
  local co, chunks = coroutine.running(), {}
  local tcp = uv.new_tcp()
  tcp:connect("127.0.0.1", port, function(err)
    assert(not err, err)
    tcp:write(request(path))
    tcp:read_start(function(err2, data)
      assert(not err2, err2)
      if data then
        chunks[#chunks + 1] = data
      else
        tcp:close()
        later(function() assert(coroutine.resume(co)) end)
      end
    end)
  end)
  coroutine.yield()
  return status_of(table.concat(chunks))
end

function N.luv(ctx, port, path) return uv_get(ctx.D.uv, function(f) f() end, port, path) end

function N.nvim(ctx, port, path) return uv_get(ctx.D.uv, vim.schedule, port, path) end

-- Neovim: curl as a job (jobstart), the way plugins often do it.
function N.nvim2(_, port, path)
  local co, out = coroutine.running(), {}
  local url = "http://127.0.0.1:" .. port .. path
  vim.fn.jobstart({ "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", url }, {
    stdout_buffered = true,
    on_stdout = function(_, data) out = data end,
    on_exit = function() assert(coroutine.resume(co)) end,
  })
  coroutine.yield()
  return tonumber(out[1])
end

-- cqueues: lua-http's request:go (a new connection per request).
function N.cqueues(_, port, path)
  local headers, stream = require("http.request").new_from_uri("http://127.0.0.1:" .. port .. path):go(10)
  assert(headers, stream)
  stream:get_body_as_string()
  return tonumber(headers:get(":status"))
end

-- copas: its connect, send and receive on a LuaSocket socket.
function N.copas(_, port, path)
  local copas, socket = require("copas"), require("socket")
  local skt = socket.tcp()
  skt:settimeout(0)
  copas.connect(skt, "127.0.0.1", port)
  copas.send(skt, request(path))
  local text = copas.receive(skt, "*a")
  skt:close()
  return status_of(text)
end

-- HAProxy: core.httpclient().
function N.haproxy(_, port, path)
  local res = core.httpclient():get { url = "http://127.0.0.1:" .. port .. path }
  return res and res.status
end

return N
