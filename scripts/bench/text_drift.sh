#!/usr/bin/env bash
# vigil's side of the text-drift benchmarks of issue #16 (docs/benchmarks.md, "Text drift
# (issue #16)"). Needs target/release/vigil (`cargo build --release -p vigil`) and
# all-MiniLM-L6-v2 in the models cache (`bash scripts/models/fetch.sh`).
#
#   bash scripts/bench/text_drift.sh [WORK_DIR] [STEP…]    # steps: texts percore monitor drift
#
#   texts    scripts/bench/text_drift_texts.py: reference.csv / current.csv (10,000 prompts each),
#            events.ndjson (2 windows × 2,000 events of model `assistant`)
#   percore  texts encoded per second on one core: `vigil drift --text-column prompt` pinned with
#            `taskset -c 1` (RAYON_NUM_THREADS=1), on the first 500 and the first 2,500 rows of
#            each file; rate = 4,000 extra texts / (T2500 − T500), which cancels the model load, CSV
#            reading and the statistic (the encoder batches as the shadow runner: 32 per batch,
#            sorted by length)
#   monitor  one text monitor pass at the default sample size (500 texts per side): chDB store,
#            `vigil ingest` of events.ndjson, `vigil analyze --at` (cold: a new process, encoder
#            loaded on first use); encode + judge = process end − the "sentence encoder loaded" log
#   drift    `vigil drift --text-column prompt --embedding-method ratio` on 10,000 + 10,000 texts
#            (all cores), to compare with scripts/bench/evidently_text_drift.py
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VIGIL="$ROOT/target/release/vigil"
W="${1:-/tmp/vigil-text-drift}"
shift || true
STEPS="${*:-texts percore monitor drift}"
mkdir -p "$W"
now() { date +%s.%N; }
load() { uptime | sed 's/.*load average: /load /'; }

for step in $STEPS; do
  case "$step" in
  texts)
    python3 "$ROOT/scripts/bench/text_drift_texts.py" "$W" 10000
    ;;
  percore)
    for n in 500 2500; do
      head -n $((n + 1)) "$W/reference.csv" >"$W/ref$n.csv"
      head -n $((n + 1)) "$W/current.csv" >"$W/cur$n.csv"
    done
    declare -A T C
    for n in 500 2500; do
      echo "[percore] $n + $n texts, $(load)"
      RAYON_NUM_THREADS=1 /usr/bin/time -f "%e %U %S" -o "$W/percore$n.time" taskset -c 1 "$VIGIL" drift \
        --reference "$W/ref$n.csv" --current "$W/cur$n.csv" \
        --text-column prompt --embedding-method distance --format json >"$W/percore$n.json" 2>"$W/percore$n.err"
      read -r e u s <"$W/percore$n.time"
      T[$n]=$e; C[$n]=$(echo "$u + $s" | bc -l)
      echo "[percore] $n + $n texts: wall ${T[$n]} s, CPU ${C[$n]} s, $(load)"
    done
    echo "[percore] texts/s on one core, by wall time: $(echo "4000 / (${T[2500]} - ${T[500]})" | bc -l)"
    echo "[percore] texts/s on one core, by CPU time: $(echo "4000 / (${C[2500]} - ${C[500]})" | bc -l)"
    ;;
  monitor)
    rm -rf "$W/store"
    T0=$((1790000000 / 3600 * 3600))
    iso() { date -u -d "@$1" +%Y-%m-%dT%H:%M:%SZ; }
    cat >"$W/vigil.toml" <<EOF
[store]
url = "chdb://$W/store"

[[monitors]]
name = "assistant-prompts"
model = "assistant"
texts = ["input"]
window = "1h"
reference = { from = "$(iso $T0)", to = "$(iso $((T0 + 3600)))" }
EOF
    "$VIGIL" --config "$W/vigil.toml" ingest --file "$W/events.ndjson"
    echo "[monitor] analyze, $(load)"
    t0=$(now)
    /usr/bin/time -v "$VIGIL" --config "$W/vigil.toml" analyze --at "$(iso $((T0 + 7200)))" --format json \
      >"$W/analyze.json" 2>"$W/analyze.err"
    t1=$(now)
    echo "[monitor] cold pass: $(echo "$t1 - $t0" | bc -l) s (process start $t0, end $t1), $(load)"
    grep -E "encoder|Elapsed|Maximum resident" "$W/analyze.err" || true
    python3 - "$W/analyze.json" <<'PY'
import json, sys
v = json.load(open(sys.argv[1]))
for run in v:
    for c in run["columns"]:
        if c["column"] == "input":
            print("[monitor]", run.get("monitor"), c)
PY
    ;;
  drift)
    echo "[drift] 10,000 + 10,000 texts, ratio, $(load)"
    /usr/bin/time -v "$VIGIL" drift --reference "$W/reference.csv" --current "$W/current.csv" \
      --text-column prompt --embedding-method ratio --format json >"$W/drift.json" 2>"$W/drift.err"
    echo "[drift] done, $(load)"
    grep -E "Elapsed|Maximum resident|User time|System time" "$W/drift.err"
    python3 -c 'import json,sys; v=json.load(open(sys.argv[1])); print("[drift]", v["embeddings"])' "$W/drift.json"
    ;;
  *) echo "unknown step $step" >&2; exit 2 ;;
  esac
done
