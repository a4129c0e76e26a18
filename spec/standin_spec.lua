-- The local stand-in itself (spec/support/standin/): its own checks with curl
-- (smoke.sh, independent of ducky), the footprint routes README's examples
-- call, the time-based faults (outage, slow) and the per-client token request
-- counts, and README's first and batch examples and examples/*.lua run
-- against it as a user would run them.
local H = require("spec.helpers")
local ducky = require("ducky")
local socket = require("socket")

local TOKEN = "/oauth/token"

local q = H.quote

-- Runs shell command cmd as client `id` of the stand-in, its settings in
-- DUCKY_* variables as a user would give them (tools/standin.sh prints them),
-- the module and bin/ducky of this checkout (and the sanitizer runtime the
-- suite may preload), a file token cache of its own; returns the output and
-- exit code.
local function run_as(id, cmd)
  local cache = H.tmpdir()
  local env = ("XDG_CACHE_HOME=%s DUCKY_BASE_URL=%s DUCKY_TOKEN_URL=%s DUCKY_AUDIENCE=%s DUCKY_CA_FILE=%s "
    .. "DUCKY_CLIENT_ID=%s DUCKY_CLIENT_SECRET=%s DUCKY_LUA=%s PATH=\"$PWD/bin:$PATH\""):format(q(cache),
    q(H.base_url("https")), q(H.token_url("https")), q(H.audience()), q(H.ca_file()), q(id), q(H.secret(id)),
    q(H.LUA))
  local out, code = H.run(("%s %s %s"):format(H.CHILD_ENV, env, cmd))
  os.execute("rm -rf " .. q(cache))
  return out, code
end

-- Runs a Lua file (args: a shell string) with H.LUA as client `id` (run_as).
local function run_example(file, args, id)
  return run_as(id, ("%s %s %s"):format(H.LUA, file, args or ""))
end

-- Runs Lua source `script` from a file of its own (run_example), as a fresh
-- client of the stand-in.
local function run_script(script)
  local dir = H.tmpdir()
  H.write_file(dir .. "/script.lua", script)
  local out, code = run_example(dir .. "/script.lua", "", H.new_id("readme"))
  os.execute("rm -rf " .. q(dir))
  return out, code
end

-- The ```lua (or ```LANG) block of README.md that holds `needle`.
local function readme_block(needle, lang)
  local readme = assert(H.read_file("README.md"))
  for block in readme:gmatch("```" .. (lang or "lua") .. "\n(.-)\n```") do
    if block:find(needle, 1, true) then return block end
  end
  error("README.md has no ```lua block holding " .. needle)
end

describe("the stand-in", function()
  before_each(function() H.reset() end)

  it("passes its own checks with curl (spec/support/standin/smoke.sh)", function()
    local out, code = H.run(H.CLEAN_ENV .. "bash spec/support/standin/smoke.sh")
    local passed, total = out:match("(%d+)/(%d+) checks passed")
    assert.equals(0, code, out)
    assert.is_truthy(passed and passed == total and tonumber(total) > 100, out)
  end)

  describe("footprints", function()
    local c
    before_each(function() c = ducky.client(H.opts()) end)
    after_each(function() c:close() end)

    it("GET lists them, filtered by the query, and needs a token", function()
      local res = assert(c:request("GET", "/footprints", { query = { year = 2026 } }))
      assert.equals(200, res.status)
      assert.equals(8, res.json.count)
      for _, item in ipairs(res.json.footprints) do
        assert.equals(2026, item.year)
        assert.equals("fp-" .. item.site .. "-2026", item.id)
        assert.is_true(item.co2e_kg > 0)
      end
      res = assert(c:request("GET", "/footprints", { query = { site = "lyon", year = 2025 } }))
      assert.equals(1, #res.json.footprints)
      assert.equals("fp-lyon-2025", res.json.footprints[1].id)
      assert.is_true(H.stats().last_api_auth.authorization)
      local _, err = c:request("GET", "/footprints", { auth = false })
      assert.equals(401, err.status)
      assert.equals("invalid_token", err.json.error)
    end)

    it("a bad query is a 400 naming the parameter", function()
      local res, err = c:request("GET", "/footprints", { query = { year = "twenty" } })
      assert.is_nil(res)
      assert.equals("http", err.kind)
      assert.equals(400, err.status)
      assert.equals("invalid_request", err.json.error)
      assert.matches("^year must be an integer", err.json.error_description)
    end)

    it("POST creates one: 201, the item back with its id, then listed and readable", function()
      local site = H.new_id("site")
      local res = assert(c:request("POST", "/footprints",
        { json = { site = site, year = 2026, co2e_kg = 12.5 } }))
      assert.equals(201, res.status)
      local id = res.json.id
      assert.matches("^fp%-%d+$", id)
      assert.same({ id = id, site = site, year = 2026, co2e_kg = 12.5, created = true }, res.json)
      assert.equals("/v3/footprints/" .. id, res.headers.location)
      res = assert(c:request("GET", "/footprints", { query = { site = site } }))
      assert.equals(id, res.json.footprints[1].id)
      res = assert(c:request("GET", "/footprints/" .. id))
      assert.equals(site, res.json.site)
      local _, err = c:request("POST", "/footprints", { json = { 1, 2 } })
      assert.equals(400, err.status)
      _, err = c:request("DELETE", "/footprints")
      assert.equals(405, err.status)
      assert.equals("GET, HEAD, POST", err.headers.allow)
    end)
  end)

  describe("time-based faults", function()
    it("an outage answers every token request of its client until it ends, then it recovers", function()
      local id, other = H.new_id("outage"), H.new_id("spared")
      H.outage { path = TOKEN, status = 503, seconds = 30, client_id = id,
        headers = { ["Retry-After"] = "1" } }
      for _ = 1, 3 do
        local status, body = H.post_token { client_id = id, client_secret = H.secret(id) }
        assert.equals(503, status)
        assert.equals("temporarily_unavailable", body.error)
      end
      assert.equals(200, (H.post_token { client_id = other, client_secret = H.secret(other) }))
      local st = H.stats()
      assert.equals(1, #st.outages)
      assert.is_true(st.outages[1].seconds_left > 0 and st.outages[1].seconds_left <= 30)
      H.outage { path = TOKEN, status = 503, seconds = 0, client_id = id }
      assert.equals(200, (H.post_token { client_id = id, client_secret = H.secret(id) }))
      assert.same({ received = 4, succeeded = 1, failed = 3 }, H.token_requests_settled(id))
      assert.same({ received = 1, succeeded = 1, failed = 0 }, H.token_requests_settled(other))
    end)

    it("an outage of N seconds ends by itself", function()
      local id = H.new_id("short")
      H.outage { path = TOKEN, status = 500, seconds = 0.5, client_id = id }
      assert.equals(500, (H.post_token { client_id = id, client_secret = H.secret(id) }))
      H.wait_until(function() return #H.stats().outages == 0 end, 5, "the outage to end")
      assert.equals(200, (H.post_token { client_id = id, client_secret = H.secret(id) }))
    end)

    it("a ducky client sees the outage as the error it is, and a dropping one as a network error", function()
      local o = H.opts()
      H.outage { path = TOKEN, status = 503, seconds = 30, client_id = o.client_id }
      local c = ducky.client(o)
      local tok, err = c:token()
      assert.is_nil(tok)
      assert.equals("http", err.kind)
      assert.equals(503, err.status)
      assert.equals(0, H.token_requests_settled(o.client_id).succeeded)
      assert.equals(1, H.token_requests(o.client_id).failed)
      c:close()
      local d = ducky.client(H.opts())
      assert(d:token())
      H.outage { path = "/v3/ping/protected", status = "drop", seconds = 30 }
      local res
      res, err = d:ping_protected()
      assert.is_nil(res)
      assert.equals("network", err.kind, tostring(err))
      d:close()
    end)

    it("slow delays every answer while it lasts, then answers as usual", function()
      local c = ducky.client(H.opts())
      H.slow { path = "/v3/ping", delay = 0.4, seconds = 30 }
      local t0 = socket.gettime()
      local res = assert(c:ping())
      assert.is_true(socket.gettime() - t0 >= 0.4)
      assert.equals("pong", res.json.message)
      H.slow { path = "/v3/ping", delay = 0.4, seconds = 0 }
      assert.same({}, H.stats().outages)
      c:close()
    end)

    it("a token request that fails, one refused and one dropped count as failed", function()
      local id = H.new_id("counted")
      assert.equals(401, (H.post_token { client_id = id, client_secret = "wrong" }))
      H.fault { path = TOKEN, client_id = id, drop = "mid_body" }
      H.post_token { client_id = id, client_secret = H.secret(id) }
      assert.equals(200, (H.post_token { client_id = id, client_secret = H.secret(id) }))
      assert.same({ received = 3, succeeded = 1, failed = 2 }, H.token_requests_settled(id))
      assert.equals(1, H.exchanges(id))
    end)

    it("refuses a malformed control, naming the problem", function()
      H.raises(H.outage, 'status must be an integer 100..999 or \\"drop\\"', { path = TOKEN, seconds = 1 })
      H.raises(H.outage, "seconds must be a number 0..86400", { path = TOKEN, status = 503 })
      H.raises(H.outage, "path must be a string starting with /",
        { path = "oauth", status = 503, seconds = 1 })
      H.raises(H.slow, "delay must be a number of seconds", { path = TOKEN, seconds = 1 })
      H.raises(H.slow, "unknown slow fields: status", { path = TOKEN, seconds = 1, delay = 1, status = 503 })
    end)

    it("reset ends every outage", function()
      H.outage { path = TOKEN, status = 503, seconds = 30 }
      H.slow { path = "/v3/ping", delay = 1, seconds = 30 }
      assert.equals(2, #H.stats().outages)
      H.reset()
      assert.same({}, H.stats().outages)
    end)
  end)
end)

-- README's shell lines run curl, which the sanitizer runtime would not leave alone
local plain = (os.getenv("LD_PRELOAD") or "") == ""

describe("the examples against the stand-in", function()
  (plain and it or pending)("README's lines that tell the stand-in to misbehave", function()
    local id = H.new_id("readme")
    local block = readme_block("_control/outage", "shell")
    local out, code = run_as(id, "sh -c " .. q(block))
    assert.equals(0, code, out)
    assert.matches('{"ok": true, "active": 1}', out, 1, true)
    assert.matches("token forgotten", out, 1, true)
    assert.matches("ducky: http error: token endpoint answered 503 temporarily_unavailable", out, 1, true)
    assert.matches('"token_requests_by_client": {"' .. id:gsub("%p", "%%%0") .. '": {"received": %d+, '
      .. '"succeeded": 0, "failed": %d+}}', out)
    assert.same({}, H.stats().outages) -- the last line reset it
  end)

  it("README's first example", function()
    local out, code = run_script(readme_block('client:request("GET", "/footprints"'))
    assert.equals(0, code, out)
    assert.matches("^200%s+pong\n200%s+{\"footprints\": %[", out)
  end)

  it("README's batch example", function()
    local out, code = run_script("local client = require('ducky').client{}\n"
      .. readme_block("client:batch({"))
    assert.equals(0, code, out)
    assert.equals("1\t200\n2\t200\n", out)
  end)

  it("examples/request.lua GET and POST /footprints", function()
    local id = H.new_id("example")
    local out, code = run_example("examples/request.lua", "GET /footprints", id)
    assert.equals(0, code, out)
    assert.matches("^GET /footprints %-> 200 after 1 attempt%(s%)\n{\"", out)
    out, code = run_example("examples/request.lua", "POST /footprints", id)
    assert.equals(0, code, out)
    assert.matches("^POST /footprints %-> 201", out)
    assert.matches('"note":"sent by examples\\?/request%.lua"', out) -- cjson writes / as \/
  end)

  it("examples/batch.lua: one footprint lookup per site", function()
    local id = H.new_id("example")
    local out, code = run_example("examples/batch.lua", "4", id)
    assert.equals(0, code, out)
    for _, site in ipairs { "berlin", "lyon", "oslo", "porto", "turin", "ghent", "graz", "bergen" } do
      assert.matches(site .. "%s+200 %d+ kg CO2e in 2026 %(1 footprint%(s%), 1 attempt%(s%)%)", out)
    end
    assert.matches("8 requests, 1 token exchange%(s%), 0 retries", out)
    assert.equals(1, H.exchanges(id))
  end)
end)
