-- etcd-put: POST /v3/kv/put through etcd's JSON gateway, key kv2/data/<random key>, the value
-- being the very JSON body kv2-write.lua sends to coffer and OpenBao ({"data": ~100-byte
-- object}), base64-encoded as the gateway wants. Bodies are built once per thread, so wrk's
-- own cost per request is the same kind of string send as for the other scenarios. Expects 200.
local c = dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")
local headers = { ["Content-Type"] = "application/json" }
local bodies = {}

init = function(args)
  c.init()
  for i = 1, c.keys do
    bodies[i] = string.format('{"key":"%s","value":"%s"}', c.b64(c.etcd_key(i)),
      c.b64('{"data":' .. c.body(i) .. '}'))
  end
end

function request()
  return wrk.format("POST", "/v3/kv/put", headers, bodies[math.random(c.keys)])
end
