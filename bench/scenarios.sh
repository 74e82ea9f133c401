# shellcheck shell=bash disable=SC2034 # the S_* tables are read by run.sh and profile.sh
# Scenario table and data setup, sourced by run.sh and profile.sh (not run on its own).
# Uses TOKEN and KEYS from the caller. Adding a scenario: one `scenario` line below, a Lua file
# in lua/, and a setup function if it needs data the existing ones do not prepare.

# ---- Scenarios ------------------------------------------------------------------------------
# scenario NAME SETUP LUA DESCRIPTION
#   SETUP  a shell function run once per server before the first scenario that names it, with
#          the server's base URL as $1. It prepares data through the API and may print
#          NAME=VALUE lines (names starting with BENCH_), which are exported to wrk for that
#          server's runs (e.g. an AppRole role_id). `none` = nothing to prepare.
#   LUA    file in bench/lua/ that builds the requests (see lua/common.lua).
# Every response must be 2xx: a run with any other status or socket error fails the bench.
SCENARIO_NAMES=()
declare -A S_SETUP S_LUA S_DESC
scenario() { SCENARIO_NAMES+=("$1"); S_SETUP[$1]=$2; S_LUA[$1]=$3; S_DESC[$1]=$4; }

scenario kv1-read  setup_kv1 kv1-read.lua  "GET /v1/kv1/key-NNNNNN, a random key among KEYS (200)"
scenario kv1-write setup_kv1 kv1-write.lua "PUT /v1/kv1/key-NNNNNN, a random key among KEYS, ~100-byte JSON (204)"
scenario kv2-read  setup_kv2 kv2-read.lua  "GET /v1/kv2/data/key-NNNNNN, latest version of a random key among KEYS (200)"
scenario kv2-write setup_kv2 kv2-write.lua "POST /v1/kv2/data/key-NNNNNN, a new version of a random key, ~100-byte data (200)"
scenario token-lookup-self none token-lookup-self.lua "GET /v1/auth/token/lookup-self with the root token (200)"
scenario approle-login setup_approle approle-login.lua "POST /v1/auth/approle/login with a reusable role_id/secret_id (200, a new token each time)"
scenario transit-encrypt setup_transit transit-encrypt.lua "POST /v1/transit/encrypt/bench, 1 KiB plaintext, aes256-gcm96 (200)"
scenario transit-decrypt setup_transit transit-decrypt.lua "POST /v1/transit/decrypt/bench, a 1 KiB ciphertext made by the same server (200)"
scenario transit-encrypt-batch setup_transit transit-encrypt-batch.lua "POST /v1/transit/encrypt/bench, batch_input of 100 × 1 KiB (200)"
scenario transit-decrypt-batch setup_transit transit-decrypt-batch.lua "POST /v1/transit/decrypt/bench, batch_input of 100 × the 1 KiB ciphertext (200)"

# ---- Setup functions ------------------------------------------------------------------------
# api METHOD BASE PATH [JSON]: one authenticated call; fails on a non-2xx status.
api() {
  local method=$1 base=$2 path=$3 body=${4:-} code out
  out=$(mktemp)
  code=$(curl -s -o "$out" -w '%{http_code}' -X "$method" -H "X-Vault-Token: $TOKEN" \
    ${body:+-H "Content-Type: application/json" --data "$body"} "$base/v1/$path")
  if [[ $code != 2* ]]; then
    echo "setup: $method $path on $base -> $code: $(head -c 300 "$out")" >&2
    rm -f "$out"
    return 1
  fi
  cat "$out"
  rm -f "$out"
}

# The ~100-byte JSON value written for key i (the same shape lua/common.lua sends).
kv_body() {
  printf '{"username":"svc-bench-%06d","password":"Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MA","host":"db.internal:5432"}' "$1"
}

# put_keys BASE MOUNT: writes KEYS keys over one keep-alive connection (one curl process).
put_keys() {
  local base=$1 mount=$2 cfg i body
  cfg=$(mktemp)
  for ((i = 1; i <= KEYS; i++)); do
    body=$(kv_body "$i")
    printf 'url = "%s/v1/%s/key-%06d"\nrequest = "PUT"\nheader = "X-Vault-Token: %s"\nheader = "Content-Type: application/json"\ndata = "%s"\nwrite-out = "%%{http_code}\\n"\noutput = "/dev/null"\n' \
      "$base" "$mount" "$i" "$TOKEN" "${body//\"/\\\"}" >>"$cfg"
    if ((i < KEYS)); then echo next >>"$cfg"; fi
  done
  local bad
  bad=$(curl -s -K "$cfg" | grep -vc '^204$' || true)
  rm -f "$cfg"
  if [[ $bad != 0 ]]; then
    echo "setup: $bad of $KEYS writes to $mount on $base did not return 204" >&2
    return 1
  fi
}

setup_kv1() {
  api POST "$1" sys/mounts/kv1 '{"type":"kv","options":{"version":"1"}}' >/dev/null
  put_keys "$1" kv1
}


# put_kv2_keys BASE MOUNT: one version of each of KEYS keys in a kv v2 mount.
put_kv2_keys() {
  local base=$1 mount=$2 cfg i body
  cfg=$(mktemp)
  for ((i = 1; i <= KEYS; i++)); do
    body="{\"data\":$(kv_body "$i")}"
    printf 'url = "%s/v1/%s/data/key-%06d"\nrequest = "POST"\nheader = "X-Vault-Token: %s"\nheader = "Content-Type: application/json"\ndata = "%s"\nwrite-out = "%%{http_code}\\n"\noutput = "/dev/null"\n' \
      "$base" "$mount" "$i" "$TOKEN" "${body//\"/\\\"}" >>"$cfg"
    if ((i < KEYS)); then echo next >>"$cfg"; fi
  done
  local bad
  bad=$(curl -s -K "$cfg" | grep -vc '^200$' || true)
  rm -f "$cfg"
  if [[ $bad != 0 ]]; then
    echo "setup: $bad of $KEYS writes to $mount on $base did not return 200" >&2
    return 1
  fi
}

setup_kv2() {
  api POST "$1" sys/mounts/kv2 '{"type":"kv","options":{"version":"2"}}' >/dev/null
  put_kv2_keys "$1" kv2
}

# A JSON string field from a response on stdin (python3 is on every machine of this project).
json_field() {
  python3 -c 'import json,sys; v=json.load(sys.stdin)
for k in sys.argv[1].split("."): v=v[k]
print(v)' "$1"
}

setup_approle() {
  api POST "$1" sys/auth/approle '{"type":"approle"}' >/dev/null
  api POST "$1" auth/approle/role/bench '{"token_policies":"default","token_ttl":"1h"}' >/dev/null
  echo "BENCH_ROLE_ID=$(api GET "$1" auth/approle/role/bench/role-id | json_field data.role_id)"
  echo "BENCH_SECRET_ID=$(api POST "$1" auth/approle/role/bench/secret-id '{}' | json_field data.secret_id)"
}

# 1 KiB of fixed plaintext (base64), the same for both servers.
transit_plaintext() {
  python3 -c 'import base64; print(base64.b64encode(bytes(range(256)) * 4).decode())'
}

setup_transit() {
  local pt ct
  api POST "$1" sys/mounts/transit '{"type":"transit"}' >/dev/null
  api POST "$1" transit/keys/bench '{"type":"aes256-gcm96"}' >/dev/null
  pt=$(transit_plaintext)
  ct=$(api POST "$1" transit/encrypt/bench "{\"plaintext\":\"$pt\"}" | json_field data.ciphertext)
  echo "BENCH_PLAINTEXT=$pt"
  echo "BENCH_CIPHERTEXT=$ct"
}
