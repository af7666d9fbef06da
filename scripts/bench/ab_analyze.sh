#!/usr/bin/env bash
# `vigil ab analyze --experiment` on 1,000,000 units in the embedded store, next to the same
# analysis by hand with pandas + gbstats 0.8.0 (scripts/bench/ab_analyze_peer.py) on the same
# events. Usage: bash scripts/bench/ab_analyze.sh [UNITS] (needs the gbstats venv of
# scripts/golden/experimenter/generate.py at /tmp/venv-gbstats).
set -euo pipefail
cd "$(dirname "$0")/../.."
UNITS="${1:-1000000}"
DIR="${BENCH_DIR:-/tmp/vigil-ab-bench}"
rm -rf "$DIR" && mkdir -p "$DIR"
python3 - "$UNITS" "$DIR" <<'PY'
import json, random, sys
random.seed(1)
n, d = int(sys.argv[1]), sys.argv[2]
t0 = 1795300000000
with open(f"{d}/exp.ndjson", "w") as e, open(f"{d}/out.ndjson", "w") as o:
    for i in range(n):
        v = "treatment" if random.random() < 0.5 else "control"
        e.write(json.dumps({"event_id": f"x{i}", "ts": t0 + i, "experiment": "big", "variant": v, "unit_id": f"u{i}", "model": "m"}) + "\n")
        mean = 10.5 if v == "treatment" else 10.0
        o.write(json.dumps({"event_id": f"o{i}", "ts": t0 + i + 1000, "unit_id": f"u{i}", "model": "m", "name": "revenue", "value": round(random.gauss(mean, 3), 3)}) + "\n")
PY
cat >"$DIR/vigil.toml" <<TOML
[store]
url = "chdb://$DIR/data"
[[experiments]]
key = "big"
model = "m"
arms = [{ name = "control", model_version = "m@1" }, { name = "treatment", model_version = "m@2" }]
[experiments.analysis]
primary = { metric = "revenue", type = "mean" }
TOML
cargo build --release --locked
V=target/release/vigil
$V --config "$DIR/vigil.toml" ingest --file "$DIR/exp.ndjson" --kind exposure
$V --config "$DIR/vigil.toml" ingest --file "$DIR/out.ndjson" --kind outcome
for _ in 1 2 3; do
  /usr/bin/time -f "vigil ab analyze: %e s, %M KB max RSS" $V --config "$DIR/vigil.toml" ab analyze --experiment big --format table | tail -3
done
(cd "$DIR" && /usr/bin/time -f "pandas + gbstats: %e s, %M KB max RSS" /tmp/venv-gbstats/bin/python "$OLDPWD/scripts/bench/ab_analyze_peer.py")
