#!/usr/bin/env bash
# The default `vigil demo` under /usr/bin/time -v (CPU time, peak memory), with every page
# timed while the demo's traffic runs (curl, 20 requests per page from t ≈ 30 s).
#
#   bash scripts/bench/demo.sh [path/to/vigil]     # default: target/release/vigil
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN="${1:-target/release/vigil}"
DIR="${BENCH_DIR:-/tmp/vigil-demo-bench}"
PORT="${PORT:-18181}"
rm -rf "$DIR" && mkdir -p "$DIR"
/usr/bin/time -v "$BIN" --store "chdb://$DIR/data" demo --bind "127.0.0.1:$PORT" \
  >"$DIR/demo.out" 2>"$DIR/demo.err" &
PID=$!
sleep 30
# 20 rounds over every page from t ≈ 30 s (during the drift, the incident and the decisions),
# one request at a time, as a user clicking through.
PAGES=("" roi "drift?model=churn" "fairness?model=churn" "experiments?experiment=churn-v2" alerts shadow)
for _ in $(seq 20); do
  for page in "${PAGES[@]}"; do
    t=$(curl -s -o /dev/null -w '%{time_total}' "http://127.0.0.1:$PORT/ui/$page")
    echo "$page $t" >> "$DIR/pages.txt"
  done
done
echo "pages while the demo runs (20 requests each from t≈30 s; seconds):"
for page in "${PAGES[@]}"; do
  awk -v p="$page" '$1 == p || (p == "" && NF == 1) { print ($2 == "" ? $1 : $2) }' "$DIR/pages.txt" | sort -n |
    awk -v p="/ui/$page" '{ v[NR] = $1 } END { printf "  %-36s p50 %.3f  p95 %.3f  max %.3f\n", p, v[int(NR*0.5+0.5)], v[int(NR*0.95+0.5)], v[NR] }'
done
wait "$PID"
grep -E "User time|System time|Percent of CPU|Elapsed|Maximum resident" "$DIR/demo.err"
grep -E "incidents:|decision|e-mails:" "$DIR/demo.out"
