#!/usr/bin/env bash
# The default `vigil demo` under /usr/bin/time -v (CPU time, peak memory), with every page
# timed while the demo's traffic runs (curl, 5 requests per page at t ≈ 60 s).
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
sleep 60
echo "pages at t≈60 s (5 requests each, seconds):"
for page in "" overview roi "drift?model=churn" "fairness?model=churn" \
            "experiments?experiment=churn-v2" alerts shadow; do
  times=()
  for _ in 1 2 3 4 5; do
    times+=("$(curl -s -o /dev/null -w '%{time_total}' "http://127.0.0.1:$PORT/ui/$page")")
  done
  sorted=$(printf '%s\n' "${times[@]}" | sort -n | tr '\n' ' ')
  printf '  /ui/%-34s %s\n' "$page" "$sorted"
done
wait "$PID"
grep -E "User time|System time|Percent of CPU|Elapsed|Maximum resident" "$DIR/demo.err"
grep -E "incidents:|decision|e-mails:" "$DIR/demo.out"
