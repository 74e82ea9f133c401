#!/usr/bin/env bash
# Alternates two (or more) coffer binaries on fresh three-node clusters, round by round, so a
# change is compared in the same window: for each round and each binary, bench/cluster_cpu.sh
# with that binary (COFFER_BIN) and the given scenarios. Per-run lines (req/s, p50, p99, CPU
# µs/request summed over the three nodes and per node, voluntary context switches per request)
# go to OUT.
#
#   bench/ab_cpu.sh OUT ROUNDS BINARY... [-- cluster_cpu.sh options]
#   e.g. bench/ab_cpu.sh /tmp/ab.txt 3 /tmp/coffer-before /tmp/coffer-after
#
# Default cluster_cpu.sh options: --no-build --scenarios kv2-write-c64,kv2-write-c1 --runs 2
# --duration 5 --warmup 2. Launch it in the background with `setsid` (see bench/soak).
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
(($# >= 3)) || { sed -n '2,12p' "$0" >&2; exit 2; }
out=$1 rounds=$2
shift 2
bins=()
while (($#)) && [[ $1 != -- ]]; do bins+=("$1"); shift; done
[[ ${1:-} == -- ]] && shift
opts=("$@")
((${#opts[@]})) || opts=(--no-build --scenarios kv2-write-c64,kv2-write-c1 --runs 2 --duration 5 --warmup 2)
for b in "${bins[@]}"; do [[ -x $b ]] || { echo "not an executable: $b" >&2; exit 2; }; done
for r in $(seq 1 "$rounds"); do
  for b in "${bins[@]}"; do
    echo "== $b round $r $(date -u +%T)" >>"$out"
    COFFER_BIN=$b "$BENCH_DIR/cluster_cpu.sh" "${opts[@]}" 2>&1 | grep -E '^kv2|^approle|^\| [a-z]' >>"$out" || true
  done
done
echo "done $(date -u +%T)" >>"$out"
