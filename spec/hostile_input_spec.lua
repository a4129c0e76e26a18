-- Hostile input from the caller: methods, paths, query, headers, JSON bodies and
-- option numbers that must either raise (a programmer error, the message naming
-- the culprit, nothing sent) or travel safely encoded — never raw on the wire.
local H = require("spec.helpers")
local ducky = require("ducky")
local cjson = require("cjson")

-- every request the stand-in received, control requests excepted
local function total_requests() return H.stats().requests end

-- requests_by_path without the token endpoint (a child process exchanges its own token)
local function api_paths()
  local out = {}
  for path, n in pairs(H.stats().requests_by_path) do
    if path ~= "/oauth/token" then out[path] = n end
  end
  return out
end

-- a query string made only of unreserved characters, %XX escapes, = and &
local function assert_encoded(q)
  assert.is_string(q)
  assert.matches("^[%w%-%._~%%=&]*$", q, nil, nil)
  for esc in q:gmatch("%%(..)") do assert.matches("^%x%x$", esc) end
end

local function clean(line)
  assert.is_string(line)
  assert.is_nil(line:find("[%z\1-\31\127]"),
    "tostring(err) holds control bytes: " .. ("%q"):format(line:sub(1, 200)))
  return line
end

describe("hostile input", function()
  local c, id

  before_each(function()
    local o = H.opts()
    id = o.client_id
    c = ducky.client(o)
    assert(c:token()) -- the token first: a raising call must send nothing at all
  end)

  after_each(function() c:close() end)

  -- c:request(...) raises with `message` (after "client:request: "), and the
  -- stand-in receives nothing
  local function refused(message, ...)
    local before = total_requests()
    local e = H.raises(c.request, "client:request: " .. message, c, ...)
    assert.equals(before, total_requests(), "a request reached the stand-in")
    return e
  end

  -- run in a child process: formatting a long error must not crash anything
  local function long_error(case)
    local cmd = ("DUCKY_STANDIN_DIR=%q %s %s spec/support/workers/error_line_worker.lua %s %q")
      :format(H.standin().dir, H.CHILD_ENV, H.LUA, case, id)
    local out, code = H.run(cmd)
    assert.equals(0, code, "the worker died (exit " .. tostring(code) .. "): " .. out:sub(1, 300))
    local ok, t = pcall(cjson.decode, out:match("[^\n]*\n?$") or out)
    assert.is_true(ok, "worker output: " .. out:sub(1, 300))
    return t
  end

  describe("methods", function()
    local bad = {
      { "CR", "GET\r" }, { "LF", "GET\n" }, { "CRLF injection", "GET /x HTTP/1.1\r\nX: y\r\n\r\nGET" },
      { "NUL", "GE\0T" }, { "space", "GE T" }, { "leading space", " GET" }, { "empty", "" },
      { "colon", "G:T" }, { "slash", "GET/" }, { "parenthesis", "GE(T" }, { "quote", 'GE"T' },
      { "non-ASCII", "G\195\137T" }, { "DEL", "GET\127" }, { "tab", "GE\tT" },
      { "10k characters", string.rep("A", 10000) },
    }
    for _, b in ipairs(bad) do
      it("a method with " .. b[1] .. " raises naming the method, nothing sent", function()
        refused("not an HTTP method name", b[2], "/echo")
      end)
    end

    it("a method that is not a string raises", function()
      refused("the method and the path must be strings, not table and string", {}, "/echo")
    end)
  end)

  describe("paths", function()
    for _, b in ipairs {
      { "CR", "/echo\rx" }, { "LF", "/echo\nx" }, { "CRLF injection", "/echo HTTP/1.1\r\nX-Evil: 1\r\n" },
      { "NUL", "/echo\0x" }, { "space", "/echo x" },
    } do
      it("a path with " .. b[1] .. " raises naming the path, nothing sent", function()
        refused("path holds a space, CR, LF or NUL", "GET", b[2])
      end)
    end

    for _, b in ipairs { { "a tab", "/echo\tx" }, { "DEL", "/echo\127x" } } do
      it("a path with " .. b[1] .. " is a config error, nothing sent", function()
        local before = total_requests()
        local res, err = c:request("GET", b[2])
        assert.is_nil(res)
        assert.is_true(ducky.is_error(err))
        assert.equals("config", err.kind, tostring(err))
        clean(tostring(err))
        assert.equals(before, total_requests())
      end)
    end

    it("non-ASCII bytes in a path are percent-encoded on the wire", function()
      local res = assert(c:request("GET", "/echo/\195\169"))
      assert.equals("/v3/echo/%c3%a9", res.json.path:lower())
    end)

    it("a 100,000-character path: the server's 414 as an http error with a clean message", function()
      local before = api_paths()
      local e = long_error("long_path")
      assert.equals("http", e.kind, e.line)
      assert.equals(414, e.status)
      assert.equals(1, e.attempts)
      -- the stand-in refuses the request line before routing it: nothing counted
      assert.same(before, api_paths())
      clean(e.line)
      assert.matches("^ducky http error: GET http://127%.0%.0%.1:%d+/v3/echo/a+ answered 414", e.line)
      assert.equals("ducky http error: " .. e.message, e.line)
    end)

    it("a 2,000-character path's 404: the URL is cut short in the message, tostring(err) is it", function()
      local e = long_error("long_404")
      assert.equals(404, e.status)
      assert.truthy(e.message:find(string.rep("b", 200), 1, true))
      assert.is_nil(e.message:find(string.rep("b", 400), 1, true))
      assert.equals("ducky http error: " .. e.message .. " [request id " .. e.request_id .. "]",
        clean(e.line))
    end)

    it("../ is resolved against base_url and stays on its origin", function()
      -- "relative to base_url": /v3/../echo is /echo on the same server, never another host
      local before = total_requests()
      local res, err = c:request("GET", "../v3/echo")
      assert.is_nil(err, err and tostring(err))
      assert.equals("/v3/echo", res.json.path)
      assert.equals(id, res.json.client_id)
      res, err = c:request("GET", "/../../../no/route")
      assert.is_nil(res)
      assert.equals("http", err.kind)
      assert.equals(404, err.status)
      assert.equals(1, H.stats().requests_by_path["/no/route"])
      assert.equals(before + 2, total_requests())
    end)
  end)

  describe("query", function()
    it("NUL, CR, LF, space, reserved and unicode in keys and values are percent-encoded", function()
      local q = {
        ["k\r\n x"] = "v\0\r\n y",
        ["a&b=c"] = "d&e=f#g?h",
        ["\226\130\172uro"] = "\240\159\166\134 \195\169",
        plain = "100% +1",
      }
      local res = assert(c:request("GET", "/echo", { query = q }))
      assert_encoded(res.json.query)
      for k, v in pairs(q) do
        assert.same({ v }, res.json.args[k], ("%q"):format(k))
      end
    end)

    it("a NUL in a key is percent-encoded and never mixed up with another key", function()
      local res = assert(c:request("GET", "/echo", { query = { ["a\0b"] = "x", a = "y" } }))
      assert_encoded(res.json.query)
      assert.equals("a=y&a%00b=x", res.json.query)
      assert.same({ "y" }, res.json.args.a)
      assert.same({ "x" }, res.json.args["a\0b"])
    end)

    it("a long unicode value (8,000 characters) arrives whole and encoded", function()
      local v = string.rep("\195\169", 8000)
      local res = assert(c:request("GET", "/echo", { query = { k = v } }))
      assert_encoded(res.json.query)
      assert.same({ v }, res.json.args.k)
    end)

    it("a 100,000-byte value: the server's 414 as an http error with a clean message", function()
      local e = long_error("long_query")
      assert.equals("http", e.kind, e.line)
      assert.equals(414, e.status)
      assert.matches("^ducky http error: GET http://127%.0%.0%.1:%d+/v3/echo%?k=x+ answered 414",
        clean(e.line))
    end)

    it("a value that is a function, a nested table or userdata raises naming the key", function()
      for _, v in ipairs { function() end, { a = 1 }, io.stdout } do
        refused("query value for 'k' must be a string, number, boolean or an array of them", "GET",
          "/echo", { query = { k = v } })
      end
    end)

    it("a key that is not a string raises", function()
      refused("query keys must be strings", "GET", "/echo", { query = { [1] = "x" } })
      refused("query keys must be strings", "GET", "/echo", { query = { [true] = "x" } })
    end)
  end)

  describe("headers", function()
    local bad_names = {
      { "a colon", "X:A" }, { "an empty name", "" }, { "a space", "X A" }, { "a tab", "X\tA" },
      { "CR", "X-A\r" }, { "LF", "X-A\n" }, { "CRLF injection", "X-A: 1\r\nX-B" }, { "NUL", "X\0A" },
      { "non-ASCII", "X-\195\169" }, { "a slash", "X/A" },
    }
    local bad_values = {
      { "CR", "a\rb" }, { "LF", "a\nb" }, { "CRLF injection", "a\r\nX-Injected: 1" }, { "NUL", "a\0b" },
      { "a trailing CRLF", "a\r\n" },
    }

    for _, b in ipairs(bad_names) do
      -- the message shows the name up to its first NUL
      local message = ("invalid header name '%s'"):format(b[2]:match("^[^%z]*"))
      it("a request header name with " .. b[1] .. " raises naming the header, nothing sent", function()
        refused(message, "GET", "/echo", { headers = { [b[2]] = "v" } })
      end)
      it("a client header name with " .. b[1] .. " raises naming the header", function()
        H.raises(ducky.client, "ducky.client: " .. message, H.opts { headers = { [b[2]] = "v" } })
      end)
    end

    for _, b in ipairs(bad_values) do
      it("a request header value with " .. b[1] .. " raises naming the header, nothing sent", function()
        refused("header 'X-A' holds CR, LF or NUL", "GET", "/echo", { headers = { ["X-A"] = b[2] } })
      end)
      it("a client header value with " .. b[1] .. " raises naming the header", function()
        H.raises(ducky.client, "ducky.client: header 'X-A' holds CR, LF or NUL",
          H.opts { headers = { ["X-A"] = b[2] } })
      end)
    end

    it("a header value that is a table, boolean or function raises", function()
      for _, v in ipairs { {}, true, function() end } do
        refused("header names and values must be strings", "GET", "/echo", { headers = { ["X-A"] = v } })
        H.raises(ducky.client, "ducky.client: header names and values must be strings",
          H.opts { headers = { ["X-A"] = v } })
      end
    end)

    it("a 10,000-character value and name arrive whole (request and client headers)", function()
      local name, value = "X-" .. string.rep("n", 10000), string.rep("v", 10000)
      local d = ducky.client(H.opts { client_id = id, client_secret = H.secret(id),
        headers = { ["X-Client"] = value } })
      local res = assert(d:request("GET", "/echo", { headers = { [name] = value } }))
      assert.equals(value, res.json.headers[name:lower()])
      assert.equals(value, res.json.headers["x-client"])
      d:close()
    end)

    it("a 100,000-character value: the server's 431 as an http error, nothing routed", function()
      local before = H.stats().requests_by_path
      local res, err = c:request("GET", "/echo", { headers = { ["X-A"] = string.rep("v", 100000) } })
      assert.is_nil(res)
      assert.equals("http", err.kind, tostring(err))
      assert.equals(431, err.status)
      assert.equals(1, err.attempts)
      clean(tostring(err))
      assert.same(before, H.stats().requests_by_path)
    end)
  end)

  describe("json", function()
    local sparse = { [1] = 1, [1000] = 2 }
    local cyclic = {}
    cyclic.self = cyclic
    local nan = "Cannot serialise number: must not be NaN or Inf"
    for _, b in ipairs {
      { "a function", function() end, "Cannot serialise function" },
      { "a sparse array", sparse, "Cannot serialise table: excessively sparse array" },
      { "userdata", io.stdout, "Cannot serialise userdata" },
      { "a table with a function inside", { a = { b = function() end } }, "Cannot serialise function" },
      { "a coroutine", coroutine.create(function() end), "Cannot serialise thread" },
      { "NaN", 0 / 0, nan }, { "inf", 1 / 0, nan }, { "-inf", -1 / 0, nan },
      { "NaN inside a table", { x = 0 / 0 }, nan },
      { "a cycle", cyclic, "Cannot serialise, excessive nesting" },
    } do
      it(b[1] .. " raises naming json, nothing sent", function()
        refused("json: " .. b[3], "POST", "/echo", { json = b[2] })
        refused("json: " .. b[3], "PUT", "/echo", { json = { wrapped = b[2] } })
      end)
    end
  end)

  describe("option numbers out of range", function()
    local client_cases = {
      { "timeout", 0 }, { "timeout", -1 }, { "timeout", 0 / 0 }, { "timeout", 1 / 0 },
      { "connect_timeout", 0 }, { "connect_timeout", -1 }, { "connect_timeout", 0 / 0 },
      { "retries", -1 }, { "retries", 1000 }, { "retries", 0 / 0 },
      { "max_body", 0 }, { "max_body", -1 }, { "max_body", 0 / 0 },
      { "refresh_margin", -1 }, { "refresh_margin", 0 / 0 },
      { "auth_backoff", -1 }, { "auth_backoff", 0 / 0 },
      { "max_exchanges_per_hour", 0 }, { "max_exchanges_per_hour", -1 },
      { "max_retry_after", -1 }, { "max_retry_after", 0 / 0 },
    }
    for _, case in ipairs(client_cases) do
      local name, value = case[1], case[2]
      it(("ducky.client raises naming %s = %s"):format(name, tostring(value)), function()
        local before = total_requests()
        H.raises(ducky.client, ("ducky.client: option '%s' is out of range"):format(name),
          H.opts { [name] = value })
        assert.equals(before, total_requests())
      end)
    end

    local request_cases = {
      { "timeout", 0 }, { "timeout", -1 }, { "timeout", 0 / 0 }, { "timeout", 1 / 0 },
      { "retries", -1 }, { "retries", 1000 }, { "retries", 0 / 0 },
    }
    for _, case in ipairs(request_cases) do
      local name, value = case[1], case[2]
      it(("request raises naming %s = %s, nothing sent"):format(name, tostring(value)), function()
        refused(("option '%s' is out of range"):format(name), "GET", "/echo", { [name] = value })
      end)
    end

    it("request option numbers of the wrong type raise naming the option", function()
      refused("option 'timeout' must be a number, not string", "GET", "/echo", { timeout = "1" })
      refused("option 'retries' must be a number, not string", "GET", "/echo", { retries = "2" })
    end)
  end)
end)
