-- transit-decrypt-batch: POST /v1/transit/decrypt/bench with batch_input of 100 × the 1 KiB
-- ciphertext. Expects 200 (one request = 100 decryptions).
local c = dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")
local item = string.format('{"ciphertext":"%s"}', os.getenv("BENCH_CIPHERTEXT"))
local items = {}
for i = 1, 100 do items[i] = item end
local body = '{"batch_input":[' .. table.concat(items, ",") .. ']}'

function request()
  return c.request("POST", "/v1/transit/decrypt/bench", body)
end
