# shellcheck shell=bash
# Helpers shared by run.sh, profile.sh, cluster.sh and cluster_cpu.sh (sourced, not run on its own).

die() { echo "bench: $*" >&2; exit 1; }

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# free_port START [TAKEN...]: the first port from START that nothing listens on and that is
# not among TAKEN (ports this script already handed out).
free_port() {
  local p=$1
  shift
  while port_in_use "$p" || [[ " $* " == *" $p "* ]]; do p=$((p + 1)); done
  echo "$p"
}

# wait_healthy NAME PID URL LOG SECONDS: polls URL/v1/sys/health until 200; dies when the
# process exits or the deadline passes.
wait_healthy() {
  local name=$1 pid=$2 url=$3 log=$4 deadline=$((SECONDS + $5)) code
  while ((SECONDS < deadline)); do
    kill -0 "$pid" 2>/dev/null || die "$name exited during start-up; see $log"
    code=$(curl -s -o /dev/null -w '%{http_code}' "$url/v1/sys/health" || true)
    [[ $code == 200 ]] && return 0
    sleep 0.1 # poll interval, not a wait for readiness
  done
  die "$name not healthy after $5 s; see $log"
}

# wrk output -> "rps p50_ms p99_ms requests non2xx socket_errors"
parse_wrk() {
  awk '
    function ms(v) {
      if (v ~ /us$/) return v / 1000
      if (v ~ /ms$/) return v + 0
      if (v ~ /m$/)  return v * 60000
      if (v ~ /s$/)  return v * 1000
      return v + 0
    }
    /^ +50%/ { p50 = ms($2) }
    /^ +99%/ { p99 = ms($2) }
    /requests in/ { req = $1 }
    /^Requests\/sec:/ { rps = $2 }
    /Non-2xx or 3xx responses:/ { non2xx = $NF }
    /Socket errors:/ { gsub(/,/, ""); sock = $4 + $6 + $8 + $10 }
    END { printf "%s %.3f %.3f %s %d %d\n", rps, p50, p99, req, non2xx, sock }
  ' "$1"
}


# ---- Measurement (run.sh, cluster.sh) -------------------------------------------------------
# CPU ticks (user+system) a process used so far.
proc_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# Busy ticks of the whole machine (all CPUs) so far.
busy_ticks() { awk '/^cpu /{print $2 + $3 + $4 + $7 + $8 + $9; exit}' /proc/stat; }
HZ=$(getconf CLK_TCK)

# wait_quiet: other developers share this machine. Samples the machine's busy CPU over 1 s
# windows (our idle servers included) until it is below NOISE_MAX % of a core, for at most
# QUIET_WAIT seconds; then goes on regardless (the run's own noise figure tells).
wait_quiet() {
  local deadline=$((SECONDS + QUIET_WAIT)) b0 b1 pct
  while :; do
    b0=$(busy_ticks); sleep 1; b1=$(busy_ticks) # a 1-second measuring window
    pct=$(((b1 - b0) * 100 / HZ))
    ((pct <= NOISE_MAX)) && return 0
    if ((SECONDS >= deadline)); then
      echo "  machine still busy (${pct}% of a core) after ${QUIET_WAIT}s; running anyway" >&2
      return 0
    fi
  done
}

# ---- Summary ---------------------------------------------------------------------------------
# runstat SCENARIO SERVER COLUMN -> "median min max" over the runs where every response was 2xx
# (failed runs stay in the CSV with their non-2xx count, but never in a median).
runstat() {
  awk -F, -v s="$1" -v n="$2" -v c="$3" 'NR > 1 && $1 == s && $2 == n && $8 == 0 && $9 == 0 {print $c}' "$CSV" | sort -g |
    awk '{v[NR] = $1} END {
      if (NR == 0) { print "nan nan nan"; exit }
      m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
      print m, v[1], v[NR] }'
}


# fsync_probe DIR [N]: "p50 p99" in ms of N (default 300) fsyncs of a 4 KiB append to a file in
# DIR, the disk's durable-write latency that bounds any fsync-per-commit store.
fsync_probe() {
  python3 - "$1" "${2:-300}" <<'EOF'
import os, sys, time
path = os.path.join(sys.argv[1], "fsync-probe.bin")
fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
lat = []
for _ in range(int(sys.argv[2])):
    os.write(fd, b"x" * 4096)
    t = time.perf_counter()
    os.fsync(fd)
    lat.append((time.perf_counter() - t) * 1000)
os.close(fd)
os.unlink(path)
lat.sort()
print("%.3f %.3f" % (lat[len(lat) // 2], lat[min(len(lat) - 1, int(len(lat) * 0.99))]))
EOF
}

# Runs with a non-2xx answer or a socket error, "scenario server run: what" (measure_scenario).
FAILED_RUNS=()

# report_failures: prints the failed runs (for the summary); returns 1 when there were any.
report_failures() {
  ((${#FAILED_RUNS[@]})) || return 0
  echo
  echo "FAILED runs (not in any median; the bench exits 1):"
  local f
  for f in "${FAILED_RUNS[@]}"; do echo "- $f"; done
  return 1
}

# Warm-up, then RUNS measured runs of scenario $1 on every server of SERVER_LIST (run.sh and
# cluster.sh): alternating order, noisy runs repeated, every response 2xx or the bench dies, one
# CSV row per run (a run with a non-2xx answer or socket error is recorded as failed, and the
# bench goes on with the next cell and exits 1 at the end). $2: width of the scenario column, $3: what the server CPU column is called.
# run_wrk prints "server% wrk% other% [EXTRA...]"; when the caller defines csv_extra, it is
# called as `csv_extra "EXTRA..." REQUESTS` and its output (",a,b,...") ends the CSV row.
measure_scenario() {
  local sc=$1 width=$2 who=$3
  local name order r i raw best best_ocpu attempt scpu wcpu ocpu rest rps p50 p99 req n2 se eff extra
  for name in "${SERVER_LIST[@]}"; do
    if ((WARMUP > 0)); then
      echo "$sc: warm-up $name ${WARMUP}s" >&2
      run_wrk "$sc" "$name" "$WARMUP" "$OUT/$sc.$name.warmup.txt" >/dev/null
      read -r _ _ _ _ n2 se < <(parse_wrk "$OUT/$sc.$name.warmup.txt")
      if ((n2 != 0 || se != 0)); then
        echo "  FAILED: $n2 non-2xx responses, $se socket errors in warm-up; see $OUT/$sc.$name.warmup.txt" >&2
        FAILED_RUNS+=("$sc $name warm-up: $n2 non-2xx, $se socket errors; $(grep -m1 '^non-2xx' "$OUT/$sc.$name.warmup.txt" || true)")
      fi
    fi
  done
  for ((r = 1; r <= RUNS; r++)); do
    # Alternate which server goes first so slow drift on the machine hits both alike.
    order=("${SERVER_LIST[@]}")
    if ((r % 2 == 0)); then
      order=(); for ((i = ${#SERVER_LIST[@]} - 1; i >= 0; i--)); do order+=("${SERVER_LIST[$i]}"); done
    fi
    for name in "${order[@]}"; do
      raw=$OUT/$sc.$name.$r.txt
      # Noisy runs are repeated; the attempt with the least foreign load is kept.
      best=
      best_ocpu=
      for ((attempt = 0; attempt <= RETRIES; attempt++)); do
        ((QUIET_WAIT > 0)) && wait_quiet
        read -r scpu wcpu ocpu rest < <(run_wrk "$sc" "$name" "$DURATION" "$raw.try$attempt")
        read -r rps p50 p99 req n2 se < <(parse_wrk "$raw.try$attempt")
        printf "%-${width}s %-6s run %d: %9s req/s  p50 %7s ms  p99 %7s ms  cpu: $who %s%% wrk %s%% other %s%%\n" \
          "$sc" "$name" "$r" "$rps" "$p50" "$p99" "$scpu" "$wcpu" "$ocpu" >&2
        if ((n2 != 0 || se != 0)); then
          echo "  FAILED: $n2 non-2xx responses, $se socket errors; see $raw and the server logs in $OUT" >&2
          FAILED_RUNS+=("$sc $name run $r: $n2 non-2xx, $se socket errors; $(grep -m1 '^non-2xx' "$raw.try$attempt" || true)")
          best="$attempt $rps $p50 $p99 $req $n2 $se $scpu $wcpu $ocpu $rest"
          break
        fi
        if [[ -z $best ]] || ((ocpu < best_ocpu)); then
          best="$attempt $rps $p50 $p99 $req $n2 $se $scpu $wcpu $ocpu $rest"
          best_ocpu=$ocpu
        fi
        ((ocpu <= NOISE_MAX)) && break
        echo "  noisy: ${ocpu}% of a core busy outside $who and wrk$( ((attempt < RETRIES)) && echo '; repeating')" >&2
      done
      read -r attempt rps p50 p99 req n2 se scpu wcpu ocpu rest <<<"$best"
      mv "$raw.try$attempt" "$raw"
      mv "$raw.try$attempt.time" "$raw.time"
      # Requests per CPU-second the server used: less sensitive to foreign load than req/s.
      eff=$(awk -v r="$rps" -v c="$scpu" 'BEGIN { printf "%.0f", (c > 0) ? r * 100 / c : 0 }')
      extra=
      if declare -F csv_extra >/dev/null; then extra=$(csv_extra "$rest" "$req"); fi
      echo "$sc,$name,$r,$rps,$p50,$p99,$req,$n2,$se,$scpu,$wcpu,$ocpu,$attempt,$eff$extra" >>"$CSV"
    done
  done
}

# ---- Three-node clusters (cluster.sh, cluster_cpu.sh) ----------------------------------------

# node_config NAME I BASEPORT DATADIR: a Vault-style raft configuration that coffer and
# OpenBao both read.
node_config() {
  local name=$1 i=$2 base=$3 dir=$4 j port=$(($3 + 10 * ($2 - 1)))
  echo "storage \"raft\" {"
  echo "  path    = \"$dir\""
  echo "  node_id = \"$name$i\""
  # Extra lines for the raft stanza, e.g. BENCH_RAFT_EXTRA='snapshot_threshold = 100000'.
  [[ -z ${BENCH_RAFT_EXTRA:-} ]] || echo "  $BENCH_RAFT_EXTRA"
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
  echo "log_level     = \"${BENCH_LOG_LEVEL:-warn}\""
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
