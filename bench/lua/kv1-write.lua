-- kv1-write: PUT /v1/kv1/<random key among BENCH_KEYS> with a ~100-byte JSON body.
-- Overwrites existing keys, so the data set stays at BENCH_KEYS entries. Expects 204.
local c = dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

function request()
  local i = math.random(c.keys)
  return c.request("PUT", "/v1/kv1/" .. c.key(i), c.body(i))
end
