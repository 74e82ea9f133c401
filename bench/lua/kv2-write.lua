-- kv2-write: POST /v1/kv2/data/<random key> {"data": ~100-byte object}: a new version each time
-- (old versions are pruned past max_versions = 10). Expects 200.
local c = dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

function request()
  local i = math.random(c.keys)
  return c.request("POST", "/v1/kv2/data/" .. c.key(i), '{"data":' .. c.body(i) .. '}')
end
