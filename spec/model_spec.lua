-- Model-based random testing (spec/support/model/model.lua): long seeded random
-- sequences of requests, batches, token calls, closes, collections, hostile
-- callbacks and stores over several clients against the stand-in with faults,
-- every invariant checked after every step. DUCKY_SEED replays a run,
-- DUCKY_STEPS makes it longer (`make model STEPS=20000 SEED=...`).
local model = require("spec.support.model.model")

describe("model-based random testing", function()
  it("random operations keep every invariant", function()
    local r = model.run()
    print(("# model: seed %.0f, %d steps, %d clients, %d credentials, %.1f s"):format(r.seed, r.steps,
      r.clients, r.creds, r.seconds))
  end)
end)
