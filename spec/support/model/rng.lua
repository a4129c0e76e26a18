-- The random model's seeded generator (spec/support/model/model.lua): the same
-- sequence on Lua 5.1, 5.4 and LuaJIT (Park-Miller: the products stay below
-- 2^53, exact in doubles and in integers).
local MOD = 2147483647

local Rng = {}
Rng.__index = Rng

local function rng(seed)
  return setmetatable({ x = math.floor(seed) % (MOD - 1) + 1 }, Rng)
end

function Rng:float()
  self.x = (self.x * 48271) % MOD
  return (self.x - 1) / (MOD - 1)
end

function Rng:int(a, b) return a + math.floor(self:float() * (b - a + 1)) end
function Rng:chance(p) return self:float() < p end
function Rng:pick(list) return list[self:int(1, #list)] end

-- list = { { value, weight }, ... }; weights of 0 are never picked
function Rng:weighted(list)
  local total = 0
  for _, e in ipairs(list) do total = total + e[2] end
  local x = self:float() * total
  for _, e in ipairs(list) do
    if x < e[2] then return e[1] end
    x = x - e[2]
  end
  for i = #list, 1, -1 do
    if list[i][2] > 0 then return list[i][1] end
  end
end

return rng
