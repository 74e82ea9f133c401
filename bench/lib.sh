# Helpers shared by run.sh and profile.sh (sourced, not run on its own).

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

