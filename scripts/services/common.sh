# Shared helpers for the service scripts (sourced, not run).
# Every service runs as a plain process on 127.0.0.1 with its state under $VIGIL_SERVICES_DIR.
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VIGIL_SERVICES_DIR="${VIGIL_SERVICES_DIR:-$REPO_ROOT/.services}"
VIGIL_CACHE_DIR="${VIGIL_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/vigil}"
mkdir -p "$VIGIL_SERVICES_DIR" "$VIGIL_CACHE_DIR"

log() { echo "[services] $*" >&2; }

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

# wait_until SECONDS CMD...: poll CMD until it succeeds or the deadline passes.
wait_until() {
  local secs=$1; shift
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then return 1; fi
    sleep 0.2
  done
}

pid_alive() { [[ -f "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

stop_pidfile() {
  local pidfile=$1 name=$2
  if pid_alive "$pidfile"; then
    local pid; pid=$(cat "$pidfile")
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
    log "$name stopped"
  fi
  rm -f "$pidfile"
}
