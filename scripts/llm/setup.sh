#!/usr/bin/env bash
# The official OpenAI Python SDK in its own virtualenv, for the OpenAI-compatibility tests
# (tests/llm/openai_client.py drives vigil's /v1 routes with it).
#
#   bash scripts/llm/setup.sh            # install if missing (safe to re-run); prints the python path
#   bash scripts/llm/setup.sh --force    # rebuild the virtualenv
#
# Virtualenv: $VIGIL_CACHE_DIR/llm-venv (VIGIL_CACHE_DIR defaults to ~/.cache/vigil).
# Version: VIGIL_OPENAI_VERSION (2.54.0, the last 2.x release on PyPI when this was written).
# Stdout is exactly one line, the venv's python, so callers can do PY=$(bash scripts/llm/setup.sh).
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VIGIL_CACHE_DIR="${VIGIL_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/vigil}"
OPENAI_VERSION="${VIGIL_OPENAI_VERSION:-2.54.0}"
VENV="$VIGIL_CACHE_DIR/llm-venv"
PY="$VENV/bin/python"

log() { echo "[llm] $*" >&2; }
die() { echo "[llm] ERROR: $*" >&2; exit 1; }

# retry N CMD...: package mirrors occasionally fail mid-download; try again before giving up.
retry() {
  local n=$1; shift
  local i
  for ((i = 1; i <= n; i++)); do
    if "$@"; then return 0; fi
    log "attempt $i/$n failed: $*"
    sleep $((i * 2))
  done
  return 1
}

FORCE=0
case "${1:-}" in
  --force) FORCE=1 ;;
  "") ;;
  -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
  *) echo "usage: bash scripts/llm/setup.sh [--force]" >&2; exit 2 ;;
esac

installed() {
  # importlib.metadata, not `import openai`: a check that costs ~50 ms instead of ~1 s.
  [[ -x "$PY" ]] && [[ "$("$PY" -c 'import importlib.metadata as m; print(m.version("openai"))' 2>/dev/null)" == "$OPENAI_VERSION" ]]
}

if [[ $FORCE == 0 ]] && installed; then
  echo "$PY"
  exit 0
fi

command -v python3 >/dev/null 2>&1 || die "python3 not found (apt-get install -y python3 python3-venv)"
python3 -c 'import sys; sys.exit(sys.version_info < (3, 9))' || die "openai $OPENAI_VERSION needs Python >= 3.9"

# Debian/Ubuntu split `venv` (ensurepip) into python3-venv: install it the way the other
# scripts install system packages, when we are allowed to.
if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [[ $(id -u) == 0 ]]; then
    log "python3 cannot create virtualenvs; installing python3-venv with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    retry 3 apt-get update -qq
    retry 3 apt-get install -y -qq python3-venv >/dev/null
  else
    die "python3 -m venv is unavailable; install python3-venv (apt-get install -y python3-venv)"
  fi
fi

if [[ $FORCE == 1 ]] || [[ ! -x "$VENV/bin/pip" ]]; then
  log "creating $VENV"
  rm -rf "$VENV"
  mkdir -p "$VIGIL_CACHE_DIR"
  python3 -m venv "$VENV" || die "python3 -m venv $VENV failed (apt-get install -y python3-venv)"
fi
log "installing openai==$OPENAI_VERSION into $VENV"
retry 3 "$PY" -m pip install -q --disable-pip-version-check --no-input "openai==$OPENAI_VERSION" \
  || die "pip install openai==$OPENAI_VERSION failed 3 times; check network access to PyPI and re-run"
installed && "$PY" -c 'import openai' || die "openai $OPENAI_VERSION still not importable from $PY"
log "openai $OPENAI_VERSION ready ($REPO_ROOT/tests/llm/openai_client.py runs with it)"
echo "$PY"
