#!/usr/bin/env bash
# Server CPU per request on a three-node coffer cluster (issue 12).
#
# Starts three release `coffer server` processes from Vault-style raft configs (on disk, fsync
# on every commit, static seal), waits for three voters, writes KEYS kv v2 keys, then for each
# scenario runs wrk RUNS times and reads utime+stime of every node from /proc/PID/stat before
# and after: CPU µs per request summed over the three nodes (and per node), req/s, p50, p99.
# Prints a markdown table; raw wrk output and a CSV go to OUT.
#
#   bench/cluster_cpu.sh [--duration S] [--runs N] [--warmup S] [--scenarios LIST]
#                        [--port BASE] [--pin split|none] [--no-build] [--out DIR] [--hold]
#
# --hold keeps the cluster up after the runs (prints pids and URLs, waits for Ctrl-C), for
# profiling one node with perf or callgrind by hand.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)

DURATION=${DURATION:-10}
RUNS=${RUNS:-3}
WARMUP=${WARMUP:-3}
KEYS=${KEYS:-1000}
PIN=${PIN:-split}
ONLY=${SCENARIOS:-}
BUILD=${BUILD:-1}
BASE_PORT=${BASE_PORT:-8700} # node i: API on BASE + 10(i-1), cluster port one above
OUT=${OUT:-$BENCH_DIR/out/cluster-cpu-$(date -u +%Y%m%dT%H%M%SZ)}
HOLD=0
COFFER_BIN=${COFFER_BIN:-$ROOT/target/release/coffer}

# shellcheck source=lib.sh
source "$BENCH_DIR/lib.sh"
# shellcheck source=scenarios.sh
source "$BENCH_DIR/scenarios.sh"

# scenario: NAME LUA TARGET CONNECTIONS
NAMES=(kv2-write-c1 kv2-write-c64 kv2-read-follower approle-login)
declare -A LUA=([kv2-write-c1]=kv2-write.lua [kv2-write-c64]=kv2-write.lua [kv2-read-follower]=kv2-read.lua
  [approle-login]=approle-login.lua)
declare -A TARGET=([kv2-write-c1]=leader [kv2-write-c64]=leader [kv2-read-follower]=follower [approle-login]=leader)
declare -A CONN=([kv2-write-c1]=1 [kv2-write-c64]=64 [kv2-read-follower]=16 [approle-login]=16)

while (($#)); do
  case $1 in
    --duration) DURATION=$2; shift ;;
    --runs) RUNS=$2; shift ;;
    --warmup) WARMUP=$2; shift ;;
    --scenarios) ONLY=$2; shift ;;
    --port) BASE_PORT=$2; shift ;;
    --pin) PIN=$2; shift ;;
    --no-build) BUILD=0 ;;
    --out) OUT=$2; shift ;;
    --hold) HOLD=1 ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) die "unknown option $1" ;;
  esac
  shift
done

command -v wrk >/dev/null || die "wrk not found"
command -v jq >/dev/null || die "jq not found"
case $PIN in
  split) SRV_PIN=(taskset -c 1); LOAD_PIN=(taskset -c 0) ;;
  none) SRV_PIN=(); LOAD_PIN=() ;;
  *) die "--pin must be split or none" ;;
esac

cd "$ROOT"
if ((BUILD)); then cargo build --release --quiet --bin coffer; fi
mkdir -p "$OUT/data"
CSV=$OUT/runs.csv
echo "scenario,run,rps,p50_ms,p99_ms,requests,cpu_us_per_req,cpu_us_n1,cpu_us_n2,cpu_us_n3,vcsw_per_req" >"$CSV"

PIDS=()
API=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  # The nodes' data goes too, unless KEEP_DATA=1: results and logs stay.
  [[ ${KEEP_DATA:-0} == 1 ]] || rm -rf "$OUT/data"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

BENCH_SEAL_KEY=$(python3 -c 'import secrets; print(secrets.token_hex(32))')
export BENCH_SEAL_KEY

answers() { [[ $(http_code "$1" sys/seal-status) == 200 ]]; }
healthy() { [[ $(http_code "$1" "sys/health?standbyok=true") == 200 ]]; }
three_voters() {
  [[ $(curl -s -H "X-Vault-Token: $TOKEN" "$1/v1/sys/storage/raft/configuration" |
    jq '[.data.config.servers[] | select(.voter)] | length' 2>/dev/null || echo 0) == 3 ]]
}

for i in 1 2 3; do
  port=$((BASE_PORT + 10 * (i - 1)))
  port_in_use "$port" && die "port $port is in use (--port)"
  port_in_use $((port + 1)) && die "port $((port + 1)) is in use (--port)"
  mkdir -p "$OUT/data/n$i"
  node_config coffer "$i" "$BASE_PORT" "$OUT/data/n$i" >"$OUT/node$i.hcl"
  "${SRV_PIN[@]}" "$COFFER_BIN" server --config "$OUT/node$i.hcl" >"$OUT/node$i.log" 2>&1 &
  PIDS+=($!)
  API+=("http://127.0.0.1:$port")
done
for i in 0 1 2; do wait_until 60 "node $((i + 1)) answers" answers "${API[$i]}"; done
TOKEN=$(curl -s -X PUT "${API[0]}/v1/sys/init" -d '{"recovery_shares":1,"recovery_threshold":1}' | jq -r .root_token)
[[ -n $TOKEN && $TOKEN != null ]] || die "init failed; see $OUT/node1.log"
wait_until 120 "three voters" three_voters "${API[0]}"
for i in 0 1 2; do wait_until 60 "node $((i + 1)) unsealed" healthy "${API[$i]}"; done
LEADER= FOLLOWER=
for i in 0 1 2; do
  if [[ $(curl -s "${API[$i]}/v1/sys/leader" | jq -r .is_self) == true ]]; then LEADER=${API[$i]}
  elif [[ -z $FOLLOWER ]]; then FOLLOWER=${API[$i]}; fi
done
[[ -n $LEADER && -n $FOLLOWER ]] || die "no leader or no follower"
echo "leader $LEADER, follower $FOLLOWER, pids ${PIDS[*]}, commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- raft src storage || echo +dirty)" | tee "$OUT/meta.txt" >&2
setup_kv2 "$LEADER" >/dev/null
if [[ -z $ONLY || ",$ONLY," == *",approle-login,"* ]]; then
  eval "$(setup_approle "$LEADER")"
  export BENCH_ROLE_ID BENCH_SECRET_ID
fi

ticks_of() { local p; for p in "${PIDS[@]}"; do proc_ticks "$p"; done; }
# Voluntary context switches of every thread of the three nodes: a count that, unlike CPU time,
# does not grow when other work shares the machine (each one is a thread going to sleep).
vcsw_of() { cat /proc/"${PIDS[0]}"/task/*/status /proc/"${PIDS[1]}"/task/*/status /proc/"${PIDS[2]}"/task/*/status 2>/dev/null | awk '/^voluntary_ctxt_switches/ { s += $2 } END { print s }'; }

# run SCENARIO SECONDS RAW -> "ticks_n1 ticks_n2 ticks_n3" used during the run
run() {
  local sc=$1 url
  [[ ${TARGET[$sc]} == leader ]] && url=$LEADER || url=$FOLLOWER
  local -a t0 t1
  local v0 v1
  v0=$(vcsw_of)
  mapfile -t t0 < <(ticks_of)
  env BENCH_LUA_DIR="$BENCH_DIR/lua" BENCH_TOKEN="$TOKEN" BENCH_KEYS="$KEYS" \
    "${LOAD_PIN[@]}" wrk -t1 -c"${CONN[$sc]}" -d"${2}s" --timeout 5s --latency \
    -s "$BENCH_DIR/lua/${LUA[$sc]}" "$url" >"$3" 2>&1
  mapfile -t t1 < <(ticks_of)
  v1=$(vcsw_of)
  echo "$((t1[0] - t0[0])) $((t1[1] - t0[1])) $((t1[2] - t0[2])) $((v1 - v0))"
}

for sc in "${NAMES[@]}"; do
  [[ -z $ONLY || ",$ONLY," == *",$sc,"* ]] || continue
  ((WARMUP > 0)) && run "$sc" "$WARMUP" "$OUT/$sc.warmup.txt" >/dev/null
  for ((r = 1; r <= RUNS; r++)); do
    raw=$OUT/$sc.$r.txt
    read -r a b c v < <(run "$sc" "$DURATION" "$raw")
    read -r rps p50 p99 req n2 se < <(parse_wrk "$raw")
    ((n2 == 0 && se == 0)) || die "$sc: $n2 non-2xx, $se socket errors; see $raw"
    line=$(awk -v a="$a" -v b="$b" -v c="$c" -v v="$v" -v n="$req" -v hz="$HZ" 'BEGIN {
      f = 1e6 / hz / n; printf "%.0f,%.0f,%.0f,%.0f,%.1f", (a + b + c) * f, a * f, b * f, c * f, v / n }')
    echo "$sc,$r,$rps,$p50,$p99,$req,$line" >>"$CSV"
    echo "$sc run $r: $rps req/s p50 $p50 ms p99 $p99 ms; CPU µs/req (sum,n1,n2,n3), vol. ctx switches/req: $line" >&2
  done
done

echo
echo "| scenario | req/s | p50 ms | p99 ms | CPU µs/req, 3 nodes (median run; min–max) | n1 / n2 / n3 | vol. ctx switches/req |"
echo "|---|---|---|---|---|---|---|"
for sc in "${NAMES[@]}"; do
  [[ -z $ONLY || ",$ONLY," == *",$sc,"* ]] || continue
  # The run with the median CPU per request, and the range of CPU per request over the runs.
  awk -F, -v s="$sc" 'NR > 1 && $1 == s' "$CSV" | sort -t, -k7 -g | awk -F, -v s="$sc" '
    { row[NR] = $0; cpu[NR] = $7 }
    END {
      split(row[int((NR + 1) / 2)], f, ",")
      printf "| %s | %.0f | %.3f | %.3f | %.0f (%.0f–%.0f) | %s / %s / %s | %s |\n", s, f[3], f[4], f[5], f[7], cpu[1], cpu[NR], f[8], f[9], f[10], f[11] }'
done
if ((HOLD)); then
  echo "holding: leader $LEADER, follower $FOLLOWER, pids ${PIDS[*]}, token $TOKEN (Ctrl-C to stop)" >&2
  while :; do sleep 3600; done
fi
