-- kv1-read: GET /v1/kv1/<random key among BENCH_KEYS>. Expects 200.
local c = dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

function request()
  return c.request("GET", "/v1/kv1/" .. c.random_key())
end
