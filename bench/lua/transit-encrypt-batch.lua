-- transit-encrypt-batch: POST /v1/transit/encrypt/bench with batch_input of 100 × 1 KiB.
-- Expects 200 (one request = 100 encryptions).
local c = dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")
local item = string.format('{"plaintext":"%s"}', os.getenv("BENCH_PLAINTEXT"))
local items = {}
for i = 1, 100 do items[i] = item end
local body = '{"batch_input":[' .. table.concat(items, ",") .. ']}'

function request()
  return c.request("POST", "/v1/transit/encrypt/bench", body)
end
