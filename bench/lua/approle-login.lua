-- approle-login: POST /v1/auth/approle/login with the role_id/secret_id made by setup_approle
-- (unlimited uses). Each login issues a new token. Expects 200.
local c = dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")
local body = string.format('{"role_id":"%s","secret_id":"%s"}', os.getenv("BENCH_ROLE_ID"), os.getenv("BENCH_SECRET_ID"))
local headers = { ["Content-Type"] = "application/json" }

function request()
  return wrk.format("POST", "/v1/auth/approle/login", headers, body)
end
