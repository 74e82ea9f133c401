-- kv2-read: GET /v1/kv2/data/<random key among BENCH_KEYS> (latest version). Expects 200.
local c = dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

function request()
  return c.request("GET", "/v1/kv2/data/" .. c.random_key())
end
