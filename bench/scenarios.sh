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

