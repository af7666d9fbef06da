#!/usr/bin/env bash
# Regenerate shadow-runner/tests/golden/*.json (reference embeddings; see generate_golden.py).
# Needs the models from scripts/models/fetch.sh; adds onnxruntime + tokenizers to its venv.
#   bash scripts/models/generate_golden.sh
# Afterwards re-run `bash scripts/models/fetch.sh --force` so the sklearn head references in the
# cache are recomputed on the new golden embeddings.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
MODELS="${VIGIL_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/vigil}/models"
[ -x "$MODELS/venv/bin/python" ] || { echo "run: bash scripts/models/fetch.sh first" >&2; exit 1; }
"$MODELS/venv/bin/pip" install -q --disable-pip-version-check onnxruntime==1.20.1 tokenizers==0.21.1
"$MODELS/venv/bin/python" "$HERE/generate_golden.py" "$MODELS" "$HERE/../../shadow-runner/tests/golden"
