#!/usr/bin/env bash
# MLflow tracking server + model registry (the real one, from PyPI) on 127.0.0.1, for the
# promotion tests (vigil sets the registered-model alias through MLflow's REST API).
#   mlflow.sh install|start|stop|status|restart
# Port: VIGIL_MLFLOW_PORT (15000). Installed into its own virtualenv under
# $VIGIL_CACHE_DIR/mlflow-venv (mlflow pins many packages; keep it away from the system Python).
# State (SQLite backend, artifacts) lives under $VIGIL_SERVICES_DIR/mlflow and is thrown away
# by `stop`.
source "$(dirname "$0")/common.sh"
PORT="${VIGIL_MLFLOW_PORT:-15000}"
MLFLOW_VERSION="${VIGIL_MLFLOW_VERSION:-2.22.0}"
VENV="$VIGIL_CACHE_DIR/mlflow-venv"
DIR="$VIGIL_SERVICES_DIR/mlflow"
PIDFILE="$DIR/server.pid"

# SQLAlchemy 2.1 removed a pool class mlflow 2.22 imports: pin the pair.
REQS=("mlflow==$MLFLOW_VERSION" "sqlalchemy>=2.0,<2.1")

install() {
  local marker="$VENV/.vigil-installed-$MLFLOW_VERSION"
  if [[ -f "$marker" ]]; then return 0; fi
  log "installing ${REQS[*]} into $VENV (a few minutes the first time)"
  [[ -x "$VENV/bin/pip" ]] || python3 -m venv "$VENV"
  retry 3 "$VENV/bin/pip" install -q --disable-pip-version-check "${REQS[@]}"
  touch "$marker"
}

ready() { curl -fsS "http://127.0.0.1:$PORT/health" >/dev/null 2>&1; }

start() {
  mkdir -p "$DIR"
  if ready; then log "mlflow already running on :$PORT"; return 0; fi
  install
  nohup "$VENV/bin/mlflow" server --host 127.0.0.1 --port "$PORT" --workers 1 \
    --backend-store-uri "sqlite:///$DIR/mlflow.db" --default-artifact-root "$DIR/artifacts" \
    >"$DIR/server.log" 2>&1 &
  echo $! >"$PIDFILE"
  if ! wait_until 120 ready; then log "mlflow did not become ready:"; tail -n 30 "$DIR/server.log" >&2; return 1; fi
  log "mlflow ready on 127.0.0.1:$PORT"
}

stop() {
  # `mlflow server` runs gunicorn/uvicorn children: stop the whole process group.
  if pid_alive "$PIDFILE"; then pkill -TERM -P "$(cat "$PIDFILE")" 2>/dev/null || true; fi
  stop_pidfile "$PIDFILE" mlflow
}

case "${1:-start}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  restart) stop; start ;;
  status) if ready; then echo "mlflow up on :$PORT"; else echo "mlflow down"; exit 1; fi ;;
  *) echo "usage: $0 install|start|stop|restart|status" >&2; exit 2 ;;
esac
