#!/usr/bin/env bash
# Profiles coffer with valgrind's callgrind under one scenario's load: instructions per request
# and where they go. Instruction counts do not depend on what else runs on the machine, so this
# is also the steadiest number to compare two commits with.
#
#   bench/profile.sh [--scenario kv1-read] [--duration 20] [--connections 4] [--keys 1000]
#                    [--no-build] [--out DIR]
#
# Only requests sent while wrk runs are counted (start-up and setup are excluded with
# callgrind_control). Output: DIR/callgrind.out plus annotated summaries.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
# shellcheck source=lib.sh
source "$BENCH_DIR/lib.sh"
# shellcheck source=scenarios.sh
source "$BENCH_DIR/scenarios.sh"

SCENARIO=kv1-read
DURATION=20
CONNECTIONS=4
KEYS=${KEYS:-1000}
BUILD=1
OUT=$BENCH_DIR/out/profile-$(date -u +%Y%m%dT%H%M%SZ)
TOKEN=root
COFFER_BIN=${COFFER_BIN:-$ROOT/target/release/coffer}
while (($#)); do
  case $1 in
    --scenario) SCENARIO=$2; shift ;;
    --duration) DURATION=$2; shift ;;
    --connections) CONNECTIONS=$2; shift ;;
    --keys) KEYS=$2; shift ;;
    --no-build) BUILD=0 ;;
    --out) OUT=$2; shift ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) die "unknown option $1" ;;
  esac
  shift
done
[[ -n ${S_LUA[$SCENARIO]:-} ]] || die "unknown scenario $SCENARIO"
command -v valgrind >/dev/null || die "valgrind not found"
mkdir -p "$OUT"

cd "$ROOT"
((BUILD)) && cargo build --release --quiet --bin coffer

port=$(free_port 8340)
url=http://127.0.0.1:$port
valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$OUT/callgrind.out" \
  "$COFFER_BIN" server --dev --dev-root-token-id="$TOKEN" \
  --dev-listen-address="127.0.0.1:$port" --log-level=warn >"$OUT/coffer.log" 2>&1 &
pid=$!
cleanup() { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_healthy coffer "$pid" "$url" "$OUT/coffer.log" 180
setup=${S_SETUP[$SCENARIO]}
envfile=$OUT/env
: >"$envfile"
if [[ $setup != none ]]; then
  "$setup" "$url" >"$OUT/setup.txt"
  grep '^BENCH_[A-Z0-9_]*=' "$OUT/setup.txt" >"$envfile" || true
fi
mapfile -t extra_env <"$envfile"

callgrind_control -i on "$pid" >/dev/null
env BENCH_LUA_DIR="$BENCH_DIR/lua" BENCH_TOKEN="$TOKEN" BENCH_KEYS="$KEYS" "${extra_env[@]}" \
  wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --timeout 30s --latency \
  -s "$BENCH_DIR/lua/${S_LUA[$SCENARIO]}" "$url" >"$OUT/wrk.txt" 2>&1
callgrind_control -i off "$pid" >/dev/null
cleanup # valgrind writes callgrind.out when coffer exits
trap - EXIT

read -r _ _ _ req n2 se < <(parse_wrk "$OUT/wrk.txt")
((n2 == 0 && se == 0)) || die "$n2 non-2xx responses, $se socket errors; see $OUT/wrk.txt"
callgrind_annotate --inclusive=yes "$OUT/callgrind.out" >"$OUT/inclusive.txt" 2>/dev/null
callgrind_annotate "$OUT/callgrind.out" >"$OUT/self.txt" 2>/dev/null
total=$(awk '/PROGRAM TOTALS/ {gsub(/,/, "", $1); print $1; exit}' "$OUT/self.txt")
echo "scenario $SCENARIO: $req requests, $total instructions, $((total / req)) instructions per request"
echo
echo "top self cost (instructions per request, share):"
awk -v req="$req" -v total="$total" '
  /^-+$/ { sep++; next }
  sep >= 3 && NF >= 2 && $1 ~ /^[0-9,]+$/ && !/PROGRAM TOTALS/ {
    n = $1; gsub(/,/, "", n); fn = $0; sub(/^ *[0-9,]+ +(\([^)]*\) +)?/, "", fn)
    printf "%9.0f %5.1f%%  %s\n", n / req, 100 * n / total, substr(fn, 1, 150)
    if (++shown == 25) exit
  }' "$OUT/self.txt"
echo
echo "full output: $OUT (callgrind_annotate --inclusive=yes $OUT/callgrind.out | less)"
