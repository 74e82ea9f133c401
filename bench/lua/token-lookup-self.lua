-- token-lookup-self: GET /v1/auth/token/lookup-self with the root token. Expects 200.
local c = dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

function request()
  return c.request("GET", "/v1/auth/token/lookup-self")
end
