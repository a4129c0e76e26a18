-- TLS against the stand-in's throw-away CA (good, wrong-host and expired certificates).
local H = require("spec.helpers")
local ducky = require("ducky")

local function https_opts(overrides, kind)
  local o = H.opts {
    base_url = H.base_url(kind or "https"),
    token_url = H.token_url(kind or "https"),
    ca_file = H.ca_file(),
  }
  for k, v in pairs(overrides or {}) do
    if v == H.NIL then o[k] = nil else o[k] = v end
  end
  return o
end

local function assert_tls(res, err)
  assert.is_nil(res)
  assert.is_true(ducky.is_error(err), "expected a ducky.error, got " .. tostring(err))
  assert.equals("tls", err.kind, tostring(err))
  assert.is_number(err.code)
end

local function rehash(dir)
  return ("openssl rehash '%s' >/dev/null 2>&1 || c_rehash '%s' >/dev/null 2>&1"):format(dir, dir)
end

local function sh(cmd)
  local ok = os.execute(cmd)
  return ok == true or ok == 0
end

describe("tls", function()
  before_each(function() H.reset() end)

  it("https with ca_file: ping, ping_protected and the token exchange work", function()
    local o = https_opts()
    local c = ducky.client(o)
    local res, err = c:ping()
    assert.is_nil(err, err and tostring(err))
    assert.equals(200, res.status)
    res, err = c:ping_protected()
    assert.is_nil(err, err and tostring(err))
    assert.equals(200, res.status)
    assert.is_true(res.json.ready)
    local tok = c:token()
    assert.matches("^tok_", tok)
    assert.equals(1, H.exchanges(o.client_id))
  end)

  it("a token exchange over https with an API over http works", function()
    local o = https_opts { base_url = H.base_url("http") }
    assert(ducky.client(o):ping_protected())
    assert.equals(1, H.exchanges(o.client_id))
  end)

  it("without ca_file the stand-in's CA is not trusted", function()
    local c = ducky.client(https_opts { ca_file = H.NIL })
    assert_tls(c:ping())
  end)

  it("without ca_file the token endpoint is not trusted either", function()
    local o = https_opts { ca_file = H.NIL, base_url = H.base_url("http") }
    assert_tls(ducky.client(o):ping_protected())
    assert.equals(0, H.exchanges(o.client_id))
  end)

  it("another CA -> tls", function()
    local c = ducky.client(https_opts { ca_file = H.other_ca_file() })
    assert_tls(c:ping())
    assert_tls(c:ping_protected())
  end)

  it("a certificate for another host -> tls", function()
    local c = ducky.client(https_opts({}, "wrong_host"))
    assert_tls(c:ping())
    assert_tls(c:ping_protected())
  end)

  it("an expired certificate -> tls", function()
    local c = ducky.client(https_opts({}, "expired"))
    assert_tls(c:ping())
    assert_tls(c:ping_protected())
  end)

  it("tls errors are not retried", function()
    local c = ducky.client(https_opts({ retries = 2 }, "wrong_host"))
    local res, err = c:ping()
    assert_tls(res, err)
    assert.equals(1, err.attempts)
  end)

  it("insecure = true accepts a certificate for another host", function()
    local o = https_opts({ insecure = true, ca_file = H.NIL }, "wrong_host")
    local c = ducky.client(o)
    local res, err = c:ping()
    assert.is_nil(err, err and tostring(err))
    assert.equals(200, res.status)
    assert(c:ping_protected())
    assert.equals(1, H.exchanges(o.client_id))
  end)

  it("insecure = true accepts an untrusted CA", function()
    local c = ducky.client(https_opts { insecure = true, ca_file = H.other_ca_file() })
    assert(c:ping())
    assert(c:ping_protected())
  end)

  it("ca_path: a hashed directory holding the CA works", function()
    local dir = H.tmpdir()
    assert.is_true(sh(("cp '%s' '%s/ducky-test-ca.pem'"):format(H.ca_file(), dir)))
    assert.is_true(sh(rehash(dir)))
    local o = https_opts { ca_file = H.NIL, ca_path = dir }
    local c = ducky.client(o)
    local res, err = c:ping_protected()
    sh(("rm -rf '%s'"):format(dir))
    assert.is_nil(err, err and tostring(err))
    assert.equals(200, res.status)
    assert.equals(1, H.exchanges(o.client_id))
  end)

  it("ca_path without the CA -> tls", function()
    local dir = H.tmpdir()
    assert.is_true(sh(("cp '%s' '%s/other.pem'"):format(H.other_ca_file(), dir)))
    assert.is_true(sh(rehash(dir)))
    local c = ducky.client(https_opts { ca_file = dir .. "/other.pem", ca_path = dir })
    local res, err = c:ping()
    sh(("rm -rf '%s'"):format(dir))
    assert_tls(res, err)
  end)
end)
