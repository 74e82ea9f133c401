-- Shared helpers for the wrk scenario scripts. Loaded with
--   local c = dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")
-- run.sh exports, per server:
--   BENCH_TOKEN  the root token (both dev servers use the same id)
--   BENCH_KEYS   how many keys the setup wrote
--   BENCH_*      whatever the scenario's setup function printed as NAME=VALUE lines
local c = {}

c.token = os.getenv("BENCH_TOKEN") or "root"
c.keys = tonumber(os.getenv("BENCH_KEYS") or "1000")

-- wrk calls setup(thread) in its main Lua state once per thread, then init(args) in each
-- thread's own state. Number the threads and seed each one differently so they do not walk
-- the same key sequence. A scenario that needs its own init calls c.init() from it.
local next_thread_id = 0
function setup(thread)
  next_thread_id = next_thread_id + 1
  thread:set("thread_id", next_thread_id)
end

function c.init()
  math.randomseed(os.time() * 1000 + (thread_id or 0) * 7919)
end
init = function(args) c.init() end

-- Name of key i (1-based). run.sh's setup writes exactly these names.
function c.key(i)
  return string.format("key-%06d", i)
end

function c.random_key()
  return c.key(math.random(c.keys))
end

-- A ~100-byte JSON object, the same shape setup writes.
function c.body(n)
  return string.format(
    '{"username":"svc-bench-%06d","password":"Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MA","host":"db.internal:5432"}', n)
end

-- Standard base64 (with padding) of a string: etcd's JSON gateway takes keys and values so.
local b64chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
function c.b64(s)
  local out = {}
  for i = 1, #s, 3 do
    local a, b, d = s:byte(i, i + 2)
    local n = a * 65536 + (b or 0) * 256 + (d or 0)
    local c1 = math.floor(n / 262144) % 64
    local c2 = math.floor(n / 4096) % 64
    local c3 = math.floor(n / 64) % 64
    local c4 = n % 64
    out[#out + 1] = b64chars:sub(c1 + 1, c1 + 1) .. b64chars:sub(c2 + 1, c2 + 1)
      .. (b and b64chars:sub(c3 + 1, c3 + 1) or "=") .. (d and b64chars:sub(c4 + 1, c4 + 1) or "=")
  end
  return table.concat(out)
end

-- etcd's key for key i: the kv v2 path coffer and OpenBao store it under.
function c.etcd_key(i)
  return "kv2/data/" .. c.key(i)
end

-- With BENCH_SHOW_ERRORS set (cluster.sh sets it), the first few non-2xx answers of each
-- thread are printed with the start of their body, so a failed run says what went wrong.
-- Off by default: a response() hook costs wrk time per request at single-node rates.
if os.getenv("BENCH_SHOW_ERRORS") then
  local shown = 0
  function response(status, headers, body)
    if (status < 200 or status > 299) and shown < 5 then
      shown = shown + 1
      io.stderr:write(string.format("non-2xx: %d %s\n", status, (body or ""):sub(1, 300)))
    end
  end
end

local json_headers = nil
local get_headers = nil

-- A request with the token header; a JSON content type when there is a body.
function c.request(method, path, body)
  if body then
    json_headers = json_headers or { ["X-Vault-Token"] = c.token, ["Content-Type"] = "application/json" }
    return wrk.format(method, path, json_headers, body)
  end
  get_headers = get_headers or { ["X-Vault-Token"] = c.token }
  return wrk.format(method, path, get_headers)
end

return c
