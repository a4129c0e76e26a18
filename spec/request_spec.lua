-- client:request(method, path, opts): how a request is built, seen through the
-- stand-in's echo route (/v3/echo answers with what it received).
local H = require("spec.helpers")
local ducky = require("ducky")

local function api_requests()
  local st = H.stats()
  local n = 0
  for path, count in pairs(st.requests_by_path) do
    if path:sub(1, 4) == "/v3/" then n = n + count end
  end
  return n
end

local function origin(kind)
  return (H.base_url(kind):gsub("/v3$", ""))
end

describe("request", function()
  local c, id

  before_each(function()
    local o = H.opts()
    id = o.client_id
    c = ducky.client(o)
  end)

  after_each(function() c:close() end)

  describe("methods", function()
    for _, m in ipairs({ "GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS" }) do
      it(m .. " reaches the echo route as " .. m, function()
        local res, err = c:request(m, "/echo")
        assert.is_nil(err)
        assert.equals(200, res.status)
        assert.equals(1, res.attempts)
        assert.equals(m, res.json.method)
        assert.equals("/v3/echo", res.json.path)
        assert.equals(id, res.json.client_id)
      end)
    end

    it("HEAD answers with headers and an empty body", function()
      local before = H.stats().requests_by_path["/v3/echo"] or 0
      local res, err = c:request("HEAD", "/echo")
      assert.is_nil(err)
      assert.equals(200, res.status)
      assert.equals("", res.body)
      assert.is_nil(res.json)
      assert.matches("^application/json", res.headers["content-type"])
      assert.equals(before + 1, H.stats().requests_by_path["/v3/echo"])
    end)

    it("upper-cases lower-case method names", function()
      for _, m in ipairs({ "get", "post", "Put", "patch", "delete", "options" }) do
        local res = assert(c:request(m, "/echo"))
        assert.equals(m:upper(), res.json.method)
      end
      local res = assert(c:request("head", "/echo"))
      assert.equals(200, res.status)
      assert.equals("", res.body)
    end)

    for _, m in ipairs({ "GE T", "G\r\nET", "", "GET\0", "GET\n", "G:T", " GET" }) do
      it("raises on the non-token method " .. H.show(m), function()
        local before = api_requests()
        H.raises(c.request, "client:request: not an HTTP method name", c, m, "/echo")
        assert.equals(before, api_requests())
      end)
    end

    it("raises when method or path is not a string", function()
      local must = "client:request: the method and the path must be strings, not "
      H.raises(c.request, must .. "nil and string", c, nil, "/echo")
      H.raises(c.request, must .. "string and nil", c, "GET", nil)
      H.raises(c.request, must .. "string and table", c, "GET", {})
    end)
  end)

  describe("paths", function()
    it('"/echo" and "echo" both hit base_url .. "/echo"', function()
      for _, p in ipairs({ "/echo", "echo" }) do
        local res = assert(c:request("GET", p))
        assert.equals("/v3/echo", res.json.path)
      end
    end)

    it("deeper paths stay under base_url", function()
      local res = assert(c:request("GET", "/echo/a/b"))
      assert.equals("/v3/echo/a/b", res.json.path)
      res = assert(c:request("GET", "echo/a/b"))
      assert.equals("/v3/echo/a/b", res.json.path)
    end)

    it("a base_url with a trailing slash makes no double slash", function()
      local d = ducky.client(H.opts{ base_url = H.base_url() .. "/" })
      for _, p in ipairs({ "/echo", "echo" }) do
        local res = assert(d:request("GET", p))
        assert.equals("/v3/echo", res.json.path)
      end
      d:close()
    end)

    it("an absolute URL on base_url's origin works", function()
      local res, err = c:request("GET", H.base_url() .. "/echo")
      assert.is_nil(err)
      assert.equals(200, res.status)
      assert.equals("/v3/echo", res.json.path)
      assert.equals(id, res.json.client_id)
    end)

    local elsewhere = {
      ["another host"] = function() return "http://localhost:" .. H.standin().http_port .. "/v3/echo" end,
      ["another port"] = function() return "http://127.0.0.1:" .. H.standin().https_port .. "/v3/echo" end,
      ["another scheme"] = function() return "https://127.0.0.1:" .. H.standin().http_port .. "/v3/echo" end,
      ["userinfo that looks like the origin"] = function()
        return origin() .. "@localhost:" .. H.standin().http_port .. "/v3/echo"
      end,
    }
    for what, url in pairs(elsewhere) do
      it("an absolute URL on " .. what .. " gives a config error and sends nothing", function()
        assert(c:ping_protected()) -- a token exists, so one could leak
        local before = api_requests()
        local tok_before = H.stats().requests_by_path["/oauth/token"] or 0
        local res, err = c:request("GET", url())
        assert.is_nil(res)
        assert.is_true(ducky.is_error(err))
        assert.equals("config", err.kind)
        assert.equals(before, api_requests())
        assert.equals(tok_before, H.stats().requests_by_path["/oauth/token"] or 0)
      end)
    end

    it("an absolute URL elsewhere with auth=false is refused too", function()
      local before = api_requests()
      local res, err = c:request("GET", "http://localhost:" .. H.standin().http_port
        .. "/v3/echo?public=1", { auth = false })
      assert.is_nil(res)
      assert.equals("config", err.kind)
      assert.equals(before, api_requests())
    end)
  end)

  describe("query", function()
    it("encodes reserved and unicode characters so they come back intact", function()
      local values = {
        space = "a b  c",
        amp = "x&y",
        eq = "k=v",
        plus = "1+1",
        pct = "100%",
        hash = "a#b",
        reserved = "/?#[]@!$'()*,;:",
        uni = "café ☃ 日本",
      }
      local res = assert(c:request("GET", "/echo", { query = values }))
      for k, v in pairs(values) do
        assert.same({ v }, res.json.args[k], k)
      end
      -- nothing unencoded that would split or end the query
      local raw = res.json.query
      assert.is_nil(raw:find(" ", 1, true))
      assert.is_nil(raw:find("#", 1, true))
      local n = select(2, raw:gsub("&", ""))
      assert.equals(7, n) -- 8 pairs, 7 separators
    end)

    it("encodes keys too", function()
      local res = assert(c:request("GET", "/echo", { query = { ["a b&c=d"] = "v" } }))
      assert.same({ "v" }, res.json.args["a b&c=d"])
    end)

    it("sends numbers and booleans as text", function()
      local res = assert(c:request("GET", "/echo", {
        query = { n = 42, neg = -7, f = 1.5, t = true, no = false } }))
      assert.same({ "42" }, res.json.args.n)
      assert.same({ "-7" }, res.json.args.neg)
      assert.same({ "1.5" }, res.json.args.f)
      assert.same({ "true" }, res.json.args.t)
      assert.same({ "false" }, res.json.args.no)
    end)

    it("repeats arrays, in order", function()
      local res = assert(c:request("GET", "/echo", { query = { id = { "x", "y z", 3 } } }))
      assert.same({ "x", "y z", "3" }, res.json.args.id)
      assert.equals("id=x&id=y", res.json.query:sub(1, 9))
    end)

    it("sorts keys", function()
      local res = assert(c:request("GET", "/echo", {
        query = { zeta = 1, alpha = 2, mid = { "a", "b" }, beta = 3 } }))
      local keys = {}
      for k in res.json.query:gmatch("([^&=]+)=[^&]*") do keys[#keys + 1] = k end
      assert.same({ "alpha", "beta", "mid", "mid", "zeta" }, keys)
    end)

    it("an empty query table adds nothing", function()
      local res = assert(c:request("GET", "/echo", { query = {} }))
      assert.equals("", res.json.query)
    end)

    it("raises on a value that cannot be encoded", function()
      local value = "client:request: query value for '%s' must be a string, number, boolean or an array "
        .. "of them"
      H.raises(c.request, value:format("f"), c, "GET", "/echo", { query = { f = function() end } })
      H.raises(c.request, value:format("a"), c, "GET", "/echo", { query = { a = { { 1 } } } })
      H.raises(c.request, "client:request: query keys must be strings", c, "GET", "/echo",
        { query = { [1] = "x" } })
      H.raises(c.request, "client:request: option 'query' must be a table, not string", c, "GET", "/echo",
        { query = "a=1" })
    end)

    it("raises on a table value that is not an array (rather than dropping it)", function()
      local before = api_requests()
      H.raises(c.request, "client:request: query value for 't' must be a string, number, boolean or an array "
        .. "of them", c, "GET", "/echo", { query = { t = { nested = "x" } } })
      assert.equals(before, api_requests())
    end)
  end)

  describe("json", function()
    it("encodes the value, sets content-type application/json", function()
      local doc = { name = "café", n = 3, list = { 1, 2, 3 }, nested = { ok = true } }
      local res = assert(c:request("POST", "/echo", { json = doc }))
      assert.equals("application/json", res.json.headers["content-type"])
      assert.same(doc, res.json.json)
      assert.equals(tostring(#res.json.body), res.json.headers["content-length"])
    end)

    it("works with PUT and PATCH too, and with a string or number as the document", function()
      local res = assert(c:request("PUT", "/echo", { json = "text" }))
      assert.equals("text", res.json.json)
      res = assert(c:request("PATCH", "/echo", { json = 12 }))
      assert.equals(12, res.json.json)
    end)

    it("a content-type header from the caller wins", function()
      local res = assert(c:request("POST", "/echo", { json = { a = 1 },
        headers = { ["Content-Type"] = "application/vnd.ducky+json" } }))
      assert.equals("application/vnd.ducky+json", res.json.headers["content-type"])
      assert.same({ a = 1 }, res.json.json)
    end)

    it("json and body together raise", function()
      local before = api_requests()
      H.raises(c.request, "client:request: json and body exclude each other", c, "POST", "/echo",
        { json = { a = 1 }, body = "x" })
      assert.equals(before, api_requests())
    end)

    it("an unencodable value raises", function()
      local before = api_requests()
      local cannot = "client:request: json: Cannot serialise function"
      H.raises(c.request, cannot, c, "POST", "/echo", { json = function() end })
      H.raises(c.request, cannot, c, "POST", "/echo", { json = { f = function() end } })
      assert.equals(before, api_requests())
    end)
  end)

  describe("body", function()
    it("sends a raw string as application/octet-stream", function()
      local body = "hello=world&x=1\nline two"
      local res = assert(c:request("POST", "/echo", { body = body }))
      assert.equals("application/octet-stream", res.json.headers["content-type"])
      assert.equals(body, res.json.body)
      assert.equals(tostring(#body), res.json.headers["content-length"])
    end)

    it("keeps NUL bytes in the body", function()
      local body = "a\0b\0c"
      local res = assert(c:request("PUT", "/echo", { body = body }))
      assert.equals(body, res.json.body)
      assert.equals("5", res.json.headers["content-length"])
    end)

    it("a content-type header overrides, without a second one", function()
      local res = assert(c:request("POST", "/echo", {
        body = "plain", headers = { ["content-type"] = "text/plain" } }))
      assert.equals("text/plain", res.json.headers["content-type"])
      assert.equals("plain", res.json.body)
    end)

    it("an empty body is sent as empty", function()
      local res = assert(c:request("POST", "/echo", { body = "" }))
      assert.equals("", res.json.body)
    end)

    it("a body that is not a string raises", function()
      H.raises(c.request, "client:request: option 'body' must be a string, not table", c, "POST", "/echo",
        { body = { 1 } })
      H.raises(c.request, "client:request: option 'body' must be a string, not boolean", c, "POST", "/echo",
        { body = true })
    end)
  end)

  describe("headers", function()
    it("per-request headers are sent", function()
      local res = assert(c:request("GET", "/echo", {
        headers = { ["X-One"] = "1", ["x-two"] = "two words" } }))
      assert.equals("1", res.json.headers["x-one"])
      assert.equals("two words", res.json.headers["x-two"])
    end)

    it("numbers are accepted as header values", function()
      local res = assert(c:request("GET", "/echo", { headers = { ["X-N"] = 5 } }))
      assert.equals("5", res.json.headers["x-n"])
    end)

    it("client headers are sent on every API request, per-request ones override by name", function()
      local d = ducky.client(H.opts{ headers = { ["X-Client"] = "c", ["X-Both"] = "client" } })
      local res = assert(d:request("GET", "/echo"))
      assert.equals("c", res.json.headers["x-client"])
      assert.equals("client", res.json.headers["x-both"])

      res = assert(d:request("POST", "/echo", { json = { a = 1 } }))
      assert.equals("c", res.json.headers["x-client"])

      res = assert(d:request("GET", "/echo", { auth = false, query = { public = "1" } }))
      assert.equals("c", res.json.headers["x-client"])

      res = assert(d:request("GET", "/echo", { headers = { ["x-both"] = "request", ["X-Req"] = "r" } }))
      assert.equals("c", res.json.headers["x-client"])
      assert.equals("request", res.json.headers["x-both"])
      assert.equals("r", res.json.headers["x-req"])

      -- and the override was for that request only
      res = assert(d:request("GET", "/echo"))
      assert.equals("client", res.json.headers["x-both"])
      assert.is_nil(res.json.headers["x-req"])
      d:close()
    end)

    local in_value = "header 'X-A' holds CR, LF or NUL"
    local bad = { -- the headers, and the message (a name is shown up to its first NUL)
      { { ["X-A"] = "a\r\nX-Injected: 1" }, in_value }, { { ["X-A"] = "a\rb" }, in_value },
      { { ["X-A"] = "a\nb" }, in_value }, { { ["X-A"] = "a\0b" }, in_value },
      { { ["X-A\r\nX-B"] = "v" }, "invalid header name 'X-A\r\nX-B'" },
      { { ["X-A\n"] = "v" }, "invalid header name 'X-A\n'" },
      { { ["X\0A"] = "v" }, "invalid header name 'X'" },
    }
    for i, case in ipairs(bad) do
      it("a header holding CR, LF or NUL raises and sends nothing (#" .. i .. ")", function()
        local before = api_requests()
        H.raises(c.request, "client:request: " .. case[2], c, "GET", "/echo", { headers = case[1] })
        assert.equals(before, api_requests())
        -- the client still works afterwards
        assert.equals(200, assert(c:request("GET", "/echo")).status)
      end)
    end
  end)

  describe("options", function()
    it("an unknown option raises naming it", function()
      H.raises(c.request, "client:request: unknown option 'querry'", c, "GET", "/echo",
        { querry = { a = 1 } })
    end)

    it("opts that are not a table raise", function()
      H.raises(c.request, "client:request: options must be a table", c, "GET", "/echo", "query")
    end)

    it("timeout and retries are accepted", function()
      local res = assert(c:request("GET", "/echo", { timeout = 2, retries = 1 }))
      assert.equals(200, res.status)
    end)

    -- found by review: 1.5 was taken as 1 (the client's own option raised)
    it("retries must be a whole number from 0 to 100, as the client's; nothing is sent else", function()
      local before = api_requests()
      H.raises(c.request, "client:request: option 'retries' must be a whole number, not 1.5", c, "GET",
        "/echo", { retries = 1.5 })
      H.raises(c.request, "client:request: option 'retries' is out of range: -1", c, "GET", "/echo",
        { retries = -1 })
      H.raises(c.request, "client:request: option 'retries' is out of range: 101", c, "GET", "/echo",
        { retries = 101 })
      H.raises(c.request, "client:request: option 'retries' is out of range", c, "GET", "/echo",
        { retries = 0 / 0 })
      H.raises(c.start, "option 'retries' must be a whole number", c, "GET", "/echo", { retries = 0.5 })
      assert.equals(before, api_requests())
    end)

    it("auth = false sends no Authorization header and fetches no token", function()
      local res = assert(c:request("GET", "/echo", { auth = false, query = { public = "1" } }))
      assert.is_nil(res.json.headers.authorization)
      local st = H.stats()
      assert.is_false(st.last_api_auth.authorization)
      assert.equals(0, H.exchanges(id))
      assert.equals(0, c:stats().token_fetches)
    end)

    it("auth = false after a token exists still sends none", function()
      assert(c:ping_protected())
      local res = assert(c:request("GET", "/echo", { auth = false, query = { public = "1" } }))
      assert.is_nil(res.json.headers.authorization)
    end)

    it("auth defaults to true: a Bearer token is sent", function()
      local res = assert(c:request("GET", "/echo"))
      assert.matches("^Bearer %S+$", res.json.headers.authorization)
      assert.equals(id, res.json.client_id)
      res = assert(c:request("GET", "/echo", { auth = true }))
      assert.equals(id, res.json.client_id)
    end)
  end)

  describe("user_agent", function()
    it("defaults to ducky-lua/<version> libcurl/<version>", function()
      local res = assert(c:request("GET", "/echo"))
      local ua = res.json.headers["user-agent"]
      assert.matches("^ducky%-lua/", ua)
      assert.equals("ducky-lua/" .. ducky._VERSION, ua:match("^(%S+)"))
      assert.matches(" libcurl/%d", ua)
    end)

    it("an override is sent", function()
      local d = ducky.client(H.opts{ user_agent = "my-app/2.1 (+https://example.org)" })
      local res = assert(d:request("GET", "/echo"))
      assert.equals("my-app/2.1 (+https://example.org)", res.json.headers["user-agent"])
      d:close()
    end)
  end)
end)
