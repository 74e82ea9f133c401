-- transit-encrypt: POST /v1/transit/encrypt/bench with 1 KiB of plaintext. Expects 200.
local c = dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")
local body = string.format('{"plaintext":"%s"}', os.getenv("BENCH_PLAINTEXT"))

function request()
  return c.request("POST", "/v1/transit/encrypt/bench", body)
end
