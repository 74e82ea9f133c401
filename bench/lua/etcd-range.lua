-- etcd-range: POST /v3/kv/range through etcd's JSON gateway for kv2/data/<random key among
-- BENCH_KEYS>, etcd's default (linearizable, not serializable) read. Expects 200.
local c = dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")
local headers = { ["Content-Type"] = "application/json" }
local bodies = {}

init = function(args)
  c.init()
  for i = 1, c.keys do
    bodies[i] = string.format('{"key":"%s"}', c.b64(c.etcd_key(i)))
  end
end

function request()
  return wrk.format("POST", "/v3/kv/range", headers, bodies[math.random(c.keys)])
end
