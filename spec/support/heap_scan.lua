-- The scan of a child process's own memory for pieces of a secret
-- (spec/secrets_spec.lua, spec/token_auth_secrets_spec.lua):
--   local S = require("spec.support.heap_scan")
--   H.run_lua(<child that sets up `needles` and `longest`, then makes its calls> .. S.SCAN, env)
-- A needle is { name, a, b }: a hit is its first half followed by its second, so
-- that the child never holds a whole needle. S.env/S.NEEDLES pass needles of any
-- bytes (a private key's numbers too) through the environment, each half as hex.
local M = {}

-- The scan of a child's memory (after its calls, with `needles` and `longest`
-- set): prints FOUND lines and exits 1 when a needle is found, else 0.
M.SCAN = [==[
  collectgarbage()
  collectgarbage()

  local CHUNK, CAP = 1024 * 1024, 1024 * 1024 * 1024
  local maps = assert(io.open("/proc/self/maps")):read("*a")
  local found, scanned, regions, skipped = {}, 0, 0, {}
  for line in maps:gmatch("[^\n]+") do
    local lo, hi, perms, path = line:match("^(%x+)%-(%x+) (%S+) %S+ %S+ %S+%s*(.-)%s*$")
    if lo and perms:sub(1, 1) == "r" and (path == "" or path == "[heap]" or path == "[stack]") then
      local start, stop = tonumber(lo, 16), tonumber(hi, 16)
      if stop - start > CAP then
        skipped[#skipped + 1] = line -- a reservation (sanitizer shadow memory), not an allocation
      else
        regions = regions + 1
        local mem = assert(io.open("/proc/self/mem", "rb"))
        mem:setvbuf("no")
        local pos, carry = start, ""
        while pos < stop do
          local n = math.min(CHUNK, stop - pos)
          local data = mem:seek("set", pos) and mem:read(n)
          if not data then break end -- unreadable: skip the rest of the region
          scanned = scanned + #data
          local text = carry .. data
          local base = pos - #carry
          for _, nd in ipairs(needles) do
            local at = 1
            while true do
              local p = text:find(nd.a, at, true)
              if not p then break end
              -- a copy of the environment block is the environment, not ducky's
              -- (ASan's runtime reads /proc/self/environ into memory of its own)
              local env_copy = text:sub(math.max(1, p - 20), p - 1) == "DUCKY_CLIENT_SECRET="
                or text:sub(math.max(1, p - 26), p - 1) == "DUCKY_CLIENT_KEY_PASSWORD="
              if not env_copy and text:sub(p + #nd.a, p + #nd.a + #nd.b - 1) == nd.b then
                local before = text:sub(math.max(1, p - 48), p - 1)
                  :gsub("[^ -~]", function(ch) return ("\\x%02x"):format(ch:byte()) end)
                found[#found + 1] = ("%s at 0x%x in %s, after \"%s\"")
                  :format(nd.name, base + p - 1, line, before)
              end
              at = p + 1
            end
          end
          carry = text:sub(-(longest - 1))
          pos = pos + #data
        end
        mem:close()
      end
    end
  end
  for _, f in ipairs(found) do print("FOUND " .. f) end
  for _, s in ipairs(skipped) do print("SKIPPED " .. s) end
  print(("scanned %d bytes in %d regions, %d found"):format(scanned, regions, #found))
  os.exit(#found == 0 and 0 or 1)
]==]

-- The environment that hands `needles` ({ {name, bytes}, ... }) to a child
-- beginning with M.NEEDLES: HX_N, HX_<i>_NAME, and each half as hex.
function M.env(needles, env)
  env = env or {}
  local function hex(s) return (s:gsub(".", function(ch) return ("%02x"):format(ch:byte()) end)) end
  env.HX_N = tostring(#needles)
  for i, nd in ipairs(needles) do
    local half = math.floor(#nd[2] / 2)
    env["HX_" .. i .. "_NAME"], env["HX_" .. i .. "_A"], env["HX_" .. i .. "_B"] = nd[1],
      hex(nd[2]:sub(1, half)), hex(nd[2]:sub(half + 1))
  end
  return env
end

-- A child's first lines: `needles` and `longest` from M.env's variables.
M.NEEDLES = [==[
  local needles, longest = {}, 0
  local function unhex(h) return (h:gsub("..", function(x) return string.char(tonumber(x, 16)) end)) end
  for i = 1, tonumber(os.getenv("HX_N")) do
    local n = { name = os.getenv("HX_" .. i .. "_NAME"), a = unhex(os.getenv("HX_" .. i .. "_A")),
      b = unhex(os.getenv("HX_" .. i .. "_B")) }
    needles[i] = n
    longest = math.max(longest, #n.a + #n.b)
  end
]==]

return M
