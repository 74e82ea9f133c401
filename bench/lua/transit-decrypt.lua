-- transit-decrypt: POST /v1/transit/decrypt/bench with a 1 KiB ciphertext. Expects 200.
local c = dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")
local body = string.format('{"ciphertext":"%s"}', os.getenv("BENCH_CIPHERTEXT"))

function request()
  return c.request("POST", "/v1/transit/decrypt/bench", body)
end
