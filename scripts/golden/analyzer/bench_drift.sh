#!/usr/bin/env bash
# Times Evidently's DataDriftPreset against `vigil drift` (the release binary) on
# 1,000,000 rows x 20 mixed columns, with peak memory.
# Usage: scripts/golden/analyzer/bench_drift.sh [ROWS]   (needs /tmp/venv-golden, see generate.py)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../../.." && pwd)"
ROWS="${1:-1000000}"
PY="${PYTHON:-/tmp/venv-golden/bin/python}"
WORK="${WORK:-/tmp/vigil-bench-drift}"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
mkdir -p "$WORK"

"$PY" - "$ROWS" "$WORK" <<'PYEOF'
import sys, numpy as np, pandas as pd
rows, out = int(sys.argv[1]), sys.argv[2]
rng = np.random.default_rng(7)
def frame(shift):
    d = {}
    for i in range(12):
        d[f"num{i}"] = np.round(rng.normal(shift * (i % 3), 1 + i / 10, rows), 4)
    for i in range(4):
        d[f"int{i}"] = rng.integers(0, 100 + 10 * i, rows)
    for i in range(4):
        cats = [f"c{j}" for j in range(3 + 2 * i)]
        d[f"cat{i}"] = rng.choice(cats, rows)
    return pd.DataFrame(d)
frame(0.0).to_csv(f"{out}/ref.csv", index=False)
frame(0.05).to_csv(f"{out}/cur.csv", index=False)
PYEOF

cat > "$WORK/evidently_drift.py" <<'PYEOF'
import sys, time, pandas as pd
from evidently import Report, Dataset, DataDefinition
from evidently.presets import DataDriftPreset
t0 = time.time()
ref = pd.read_csv(sys.argv[1]); cur = pd.read_csv(sys.argv[2])
num = [c for c in ref.columns if not c.startswith("cat")]
cat = [c for c in ref.columns if c.startswith("cat")]
dd = DataDefinition(numerical_columns=num, categorical_columns=cat)
t1 = time.time()
snap = Report([DataDriftPreset()]).run(Dataset.from_pandas(cur, data_definition=dd), Dataset.from_pandas(ref, data_definition=dd))
snap.dict()
t2 = time.time()
print(f"evidently: read {t1-t0:.2f}s drift {t2-t1:.2f}s total {t2-t0:.2f}s")
PYEOF

(cd "$ROOT" && CARGO_TARGET_DIR="$TARGET" cargo build --release -q -p vigil)
BIN="$TARGET/release/vigil"

echo "== vigil drift (Rust, release) on $ROWS rows x 20 columns"
/usr/bin/time -v "$BIN" drift --reference "$WORK/ref.csv" --current "$WORK/cur.csv" --format table \
  2> "$WORK/rust.time" > "$WORK/rust.out"
grep -E "Elapsed|Maximum resident" "$WORK/rust.time"
echo "== Evidently DataDriftPreset"
/usr/bin/time -v "$PY" "$WORK/evidently_drift.py" "$WORK/ref.csv" "$WORK/cur.csv" 2> "$WORK/py.time"
grep -E "Elapsed|Maximum resident" "$WORK/py.time"
