-- What a call returns: res fields on success; nil + a ducky.error on any
-- non-2xx status and on every failure (auth, decode, limit, network, timeout).
local H = require("spec.helpers")
local ducky = require("ducky")
local socket = require("socket")

local function check_error(err, kind)
  assert.is_true(ducky.is_error(err), "not a ducky.error: " .. tostring(err))
  assert.equals(kind, err.kind, tostring(err))
  assert.is_string(err.message)
  local line = tostring(err)
  assert.is_string(line)
  assert.is_nil(line:find("\n", 1, true), line)
  return line
end

describe("response", function()
  local c, id

  before_each(function()
    H.reset()
    local o = H.opts()
    id = o.client_id
    c = ducky.client(o)
  end)

  after_each(function() c:close() end)

  -- a fault on path for this test's client only
  local function fault(t)
    t.client_id = t.client_id or id
    return H.fault(t)
  end

  describe("on success", function()
    it("has status, lower-case headers, body, json and attempts", function()
      local res, err = c:request("GET", "/headers")
      assert.is_nil(err)
      assert.equals(200, res.status)
      assert.equals(1, res.attempts)
      assert.equals("{}", res.body)
      assert.same({}, res.json)
      assert.is_table(res.headers)
      for name in pairs(res.headers) do
        assert.equals(name:lower(), name)
      end
      assert.equals("Yes", res.headers["x-mixed-case"])
      assert.equals("a=1, b=2", res.headers["set-cookie"])
      assert.equals("req-123", res.headers["x-request-id"])
      assert.equals("application/json", res.headers["content-type"])
      assert.equals("2", res.headers["content-length"])
    end)

    it("looks headers up in any case; pairs sees lower-case names; ducky.headers re-applies it", function()
      local res = assert(c:request("GET", "/headers"))
      assert.equals("Yes", res.headers["X-Mixed-Case"])
      assert.equals("application/json", res.headers["Content-Type"])
      assert.equals(res.headers["content-type"], res.headers["CONTENT-TYPE"])
      assert.is_nil(res.headers["No-Such-Header"])
      assert.is_nil(res.headers[1])
      local names = {}
      for name, value in pairs(res.headers) do
        assert.equals(name:lower(), name)
        assert.is_string(value)
        names[#names + 1] = name
      end
      assert.is_true(#names >= 4)
      -- a copy that crossed a boundary (a thread, a VM) as plain data
      local copy = {}
      for k, v in pairs(res.headers) do copy[k] = v end
      assert.is_nil(copy["Content-Type"])
      assert.equals(copy, ducky.headers(copy))
      assert.equals("application/json", copy["Content-Type"])
      H.raises(ducky.headers, "ducky.headers: expects a table, not string", "x")
    end)

    it("decodes JSON for application/json with parameters and for +json types", function()
      for _, ct in ipairs({ "application/json", "application/json; charset=utf-8",
                            "Application/JSON", "application/problem+json" }) do
        fault{ path = "/v3/echo", status = 200, body = '{"a":[1,2]}', content_type = ct }
        local res, err = c:request("GET", "/echo")
        assert.is_nil(err, ct)
        assert.same({ a = { 1, 2 } }, res.json, ct)
        assert.equals('{"a":[1,2]}', res.body)
      end
    end)

    it("has no json for other content types, even when the body is JSON", function()
      for _, ct in ipairs({ "text/plain", "text/html", "application/octet-stream",
                            "application/jsonx" }) do
        fault{ path = "/v3/echo", status = 200, body = '{"a":1}', content_type = ct }
        local res, err = c:request("GET", "/echo")
        assert.is_nil(err, ct)
        assert.equals(200, res.status)
        assert.is_nil(res.json, ct)
        assert.equals('{"a":1}', res.body)
        assert.equals(ct, res.headers["content-type"])
      end
    end)

    it("an empty 2xx body has no json and is not an error", function()
      fault{ path = "/v3/echo", status = 204 }
      local res, err = c:request("DELETE", "/echo")
      assert.is_nil(err)
      assert.equals(204, res.status)
      assert.equals("", res.body)
      assert.is_nil(res.json)
    end)

    it("other 2xx statuses are successes", function()
      local res, err = c:request("POST", "/status/201")
      assert.is_nil(err)
      assert.equals(201, res.status)
      assert.same({ status = 201 }, res.json)
    end)

    it("a gzip body is decoded", function()
      fault{ path = "/v3/echo", gzip = true }
      local res, err = c:request("GET", "/echo", { query = { x = "y" } })
      assert.is_nil(err)
      assert.equals(200, res.status)
      assert.equals("gzip", res.headers["content-encoding"])
      assert.equals("/v3/echo", res.json.path)
      assert.same({ "y" }, res.json.args.x)
      assert.equals(0, H.stats().faults_pending)
    end)

    it("a chunked body works", function()
      fault{ path = "/v3/echo", chunked = true }
      local res, err = c:request("POST", "/echo", { json = { big = string.rep("z", 5000) } })
      assert.is_nil(err)
      assert.equals("chunked", res.headers["transfer-encoding"])
      assert.is_nil(res.headers["content-length"])
      assert.equals(string.rep("z", 5000), res.json.json.big)
      assert.equals(0, H.stats().faults_pending)
    end)

    it("a gzip and chunked body works", function()
      fault{ path = "/v3/echo", gzip = true, chunked = true }
      local res = assert(c:request("GET", "/echo"))
      assert.equals("/v3/echo", res.json.path)
    end)

    it("an HTTP/1.0 answer without Content-Length works", function()
      fault{ path = "/v3/echo", http10 = true }
      local res = assert(c:request("GET", "/echo"))
      assert.equals("/v3/echo", res.json.path)
    end)

    it("a body exactly max_body long is accepted", function()
      local d = ducky.client(H.opts{ client_id = id, client_secret = H.secret(id), max_body = 1000 })
      fault{ path = "/v3/echo", huge = 1000 }
      local res, err = d:request("GET", "/echo")
      assert.is_nil(err)
      assert.equals(1000, #res.body)
      assert.equals(986, #res.json.padding)
      d:close()
    end)
  end)

  describe("non-2xx", function()
    for _, code in ipairs({ 404, 403, 500, 418, 302 }) do
      it("status " .. code .. " gives nil and an http error with the answer", function()
        local res, err = c:request("GET", "/status/" .. code)
        assert.is_nil(res)
        local line = check_error(err, "http")
        assert.equals(code, err.status)
        assert.equals(1, err.attempts)
        assert.is_table(err.headers)
        assert.matches("^application/json", err.headers["content-type"])
        assert.is_string(err.body)
        assert.same({ status = code }, err.json)
        assert.matches("^req%-%d+$", err.request_id)
        assert.equals(err.headers["x-request-id"], err.request_id)
        assert.truthy(line:find(tostring(code), 1, true), line)
        assert.truthy(line:find(err.request_id, 1, true), line)
      end)
    end

    -- found by review: a description over 300 bytes was cut inside a UTF-8
    -- character, so the one line ended in half of one
    it("a long description is cut between UTF-8 characters, for the API and the token endpoint", function()
      local e2 = "\195\169" -- é
      fault{ path = "/v3/echo", status = 503, body = { error_description = "x" .. e2:rep(200) } }
      local _, err = c:request("GET", "/echo", { retries = 0 })
      check_error(err, "http")
      local d = err.message:match(": x([\195\169]*)$")
      assert.truthy(d, err.message)
      assert.equals(0, #d % 2)
      assert.equals(298, #d)
      local o = H.opts()
      H.fault{ path = "/oauth/token", client_id = o.client_id, status = 400,
        body = { error = "x" .. e2:rep(80), error_description = "y" .. e2:rep(200) } }
      local _, terr = ducky.client(o):ping_protected()
      check_error(terr, "auth")
      local code, desc = terr.message:match(" x([\195\169]*): y([\195\169]*)$")
      assert.truthy(code, terr.message)
      assert.equals(98, #code)
      assert.equals(298, #desc)
      assert.equals("x" .. e2:rep(80), terr.code)
    end)

    it("an unknown route is a 404 carrying the server's JSON", function()
      local res, err = c:request("GET", "/no/such/route")
      assert.is_nil(res)
      check_error(err, "http")
      assert.equals(404, err.status)
      assert.equals("not_found", err.json.error)
      assert.equals("/v3/no/such/route", H.stats().last_api_auth.path)
    end)

    it("500 is retryable, 404 is not", function()
      local _, err = c:request("GET", "/status/500")
      assert.is_true(err.retryable)
      _, err = c:request("GET", "/status/404")
      assert.is_false(err.retryable)
    end)

    it("403 never triggers a token refresh", function()
      local _, err = c:request("GET", "/status/403")
      assert.equals("http", err.kind)
      assert.equals(403, err.status)
      assert.equals(1, H.exchanges(id))
      assert.equals(1, H.stats().requests_by_path["/v3/status/403"])
    end)

    it("a 401 answered twice is an auth error after one refresh and one replay", function()
      assert(c:ping_protected())
      assert.equals(1, H.exchanges(id))
      fault{ path = "/v3/echo", status = 401, times = 2,
             body = { error = "invalid_token", error_description = "Token revoked" } }
      local res, err = c:request("GET", "/echo")
      assert.is_nil(res)
      check_error(err, "auth")
      assert.equals(401, err.status)
      assert.equals("invalid_token", err.json.error)
      assert.equals(2, H.stats().requests_by_path["/v3/echo"])
      assert.equals(2, H.exchanges(id))
      assert.equals(0, H.stats().faults_pending)
      assert.equals(1, c:stats().replays_401)
    end)

    it("a 401 for a revoked token is replayed once with a new token", function()
      assert(c:ping_protected())
      H.revoke(id)
      local res, err = c:request("GET", "/echo")
      assert.is_nil(err)
      assert.equals(200, res.status)
      assert.equals(id, res.json.client_id)
      assert.equals(2, H.exchanges(id))
    end)
  end)

  describe("failures", function()
    it("invalid JSON with a JSON content type on a 2xx is a decode error keeping the body", function()
      fault{ path = "/v3/echo", status = 200, body = "{not json", content_type = "application/json" }
      local res, err = c:request("GET", "/echo")
      assert.is_nil(res)
      check_error(err, "decode")
      assert.equals(200, err.status)
      assert.equals("{not json", err.body)
      assert.is_nil(err.json)
      assert.is_table(err.headers)
    end)

    it("max_body smaller than a body with Content-Length is a limit error", function()
      local d = ducky.client(H.opts{ client_id = id, client_secret = H.secret(id), max_body = 1000 })
      fault{ path = "/v3/echo", huge = 5000 }
      local res, err = d:request("GET", "/echo")
      assert.is_nil(res)
      check_error(err, "limit")
      d:close()
    end)

    it("max_body smaller than a chunked body is a limit error", function()
      local d = ducky.client(H.opts{ client_id = id, client_secret = H.secret(id), max_body = 1000 })
      fault{ path = "/v3/echo", huge = 5000, chunked = true }
      local res, err = d:request("GET", "/echo")
      assert.is_nil(res)
      check_error(err, "limit")
      d:close()
    end)

    it("max_body applies to the decoded size of a gzip body", function()
      local d = ducky.client(H.opts{ client_id = id, client_secret = H.secret(id), max_body = 1000 })
      -- 20000 x's compress to far less than 1000 bytes
      fault{ path = "/v3/echo", huge = 20000, gzip = true }
      local res, err = d:request("GET", "/echo")
      assert.is_nil(res)
      check_error(err, "limit")
      d:close()
    end)

    it("the client works again after a limit error", function()
      local d = ducky.client(H.opts{ client_id = id, client_secret = H.secret(id), max_body = 1000 })
      fault{ path = "/v3/echo", huge = 5000 }
      assert.is_nil((d:request("GET", "/echo")))
      local res = assert(d:request("GET", "/echo"))
      assert.equals("/v3/echo", res.json.path)
      d:close()
    end)

    it("a connection dropped before the headers is a network error", function()
      -- a fresh client and no token: the dropped connection is the first one
      local d = ducky.client(H.opts())
      H.fault{ path = "/v3/echo", drop = "before_headers" }
      local res, err = d:request("GET", "/echo", { auth = false, query = { public = "1" } })
      assert.is_nil(res)
      check_error(err, "network")
      assert.is_number(err.code)
      assert.equals(1, err.attempts)
      assert.equals(1, H.stats().requests_by_path["/v3/echo"])
      d:close()
    end)

    it("a POST dropped before the headers on a reused connection is not sent again", function()
      assert(c:ping_protected()) -- the connection is now open and reused
      fault{ path = "/v3/echo", drop = "before_headers" }
      local res, err = c:request("POST", "/echo", { json = { once = true } })
      assert.equals(1, H.stats().requests_by_path["/v3/echo"])
      assert.is_nil(res)
      check_error(err, "network")
      assert.equals(1, err.attempts)
    end)

    it("a connection dropped mid-body is a network error", function()
      fault{ path = "/v3/echo", drop = "mid_body" }
      local res, err = c:request("GET", "/echo")
      assert.is_nil(res)
      check_error(err, "network")
      assert.is_number(err.code)
    end)

    it("a slow answer past the client's timeout is a timeout error", function()
      local d = ducky.client(H.opts{ client_id = id, client_secret = H.secret(id), timeout = 0.3 })
      assert(d:ping_protected()) -- the token first, so the timeout is the API call's
      fault{ path = "/v3/echo", delay = 1 }
      local t0 = socket.gettime()
      local res, err = d:request("GET", "/echo")
      local took = socket.gettime() - t0
      assert.is_nil(res)
      check_error(err, "timeout")
      assert.is_true(took < 0.9, "took " .. took)
      d:close()
    end)

    it("a slow answer past the request's own timeout is a timeout error", function()
      assert(c:ping_protected())
      fault{ path = "/v3/echo", body_delay = 1 }
      local t0 = socket.gettime()
      local res, err = c:request("GET", "/echo", { timeout = 0.3 })
      assert.is_nil(res)
      check_error(err, "timeout")
      assert.is_true(socket.gettime() - t0 < 0.9)
    end)

    it("a refused connection is a network error", function()
      local d = ducky.client(H.opts{ base_url = "http://127.0.0.1:" .. H.free_port() .. "/v3" })
      local res, err = d:ping()
      assert.is_nil(res)
      local line = check_error(err, "network")
      assert.equals(7, err.code) -- CURLE_COULDNT_CONNECT
      assert.equals(1, err.attempts)
      assert.is_true(err.retryable)
      assert.truthy(line:find("network", 1, true))
      d:close()
    end)

    it("a refused token endpoint is a network error too", function()
      local d = ducky.client(H.opts{ token_url = "http://127.0.0.1:" .. H.free_port() .. "/oauth/token" })
      local res, err = d:ping_protected()
      assert.is_nil(res)
      check_error(err, "network")
      d:close()
    end)
  end)
end)
