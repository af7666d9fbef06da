#!/usr/bin/env bash
# sentence-transformers (PyTorch, CPU) side of the shadow-runner throughput benchmark
# (docs/benchmarks.md). Creates a venv with torch + sentence-transformers from PyPI (large: the
# PyPI torch wheel pulls its CUDA libraries, ~6 GB; delete the venv afterwards if disk is short)
# and runs bench_st.py on the same 256 sentences as the Rust example `throughput`.
#
#   bash scripts/models/bench_st.sh [ROUNDS]       # RAYON_NUM_THREADS=N sets torch's threads too
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="${VIGIL_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/vigil}"
VENV="$CACHE/st-venv"
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import sentence_transformers' 2>/dev/null; then
  echo "[bench-st] creating $VENV (torch, sentence-transformers from PyPI)" >&2
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --disable-pip-version-check -q torch sentence-transformers
fi
[ -f "$CACHE/models/all-MiniLM-L6-v2/model.safetensors" ] || bash "$HERE/fetch.sh"
exec "$VENV/bin/python" "$HERE/bench_st.py" "${1:-5}"
