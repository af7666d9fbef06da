#!/usr/bin/env bash
# Local SMTP sink (aiosmtpd from PyPI) for the alerting tests: every received message lands as
# an .eml file (with X-Envelope-From/To headers) in $VIGIL_SMTP_DIR.
#   smtp.sh install|start|stop|status|restart
# Port: VIGIL_SMTP_PORT (12525), 127.0.0.1 only. Messages: VIGIL_SMTP_DIR
# ($VIGIL_SERVICES_DIR/smtp/messages). aiosmtpd is installed into a venv under $VIGIL_CACHE_DIR.
source "$(dirname "$0")/common.sh"
PORT="${VIGIL_SMTP_PORT:-12525}"
DIR="$VIGIL_SERVICES_DIR/smtp-$PORT"
MSGDIR="${VIGIL_SMTP_DIR:-$VIGIL_SERVICES_DIR/smtp/messages}"
PIDFILE="$DIR/smtp.pid"
VENV="$VIGIL_CACHE_DIR/venv-aiosmtpd"
AIOSMTPD_VERSION=1.4.6
HERE="$(cd "$(dirname "$0")" && pwd)"

install() {
  if [[ -x "$VENV/bin/python" ]] && "$VENV/bin/python" -c "import aiosmtpd" 2>/dev/null; then return 0; fi
  log "installing aiosmtpd==$AIOSMTPD_VERSION into $VENV"
  rm -rf "$VENV"
  if ! python3 -m venv "$VENV"; then
    log "python3 -m venv failed; install python3-venv (apt-get install -y python3-venv)"
    return 1
  fi
  retry 3 "$VENV/bin/python" -m pip install -q "aiosmtpd==$AIOSMTPD_VERSION"
}

ready() { python3 - "$PORT" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1)
ok = s.recv(100).startswith(b"220")
s.close()
sys.exit(0 if ok else 1)
PY
}

start() {
  install
  mkdir -p "$DIR" "$MSGDIR"
  if pid_alive "$PIDFILE" && ready; then log "smtp sink already running on :$PORT"; return 0; fi
  nohup "$VENV/bin/python" "$HERE/smtp_sink.py" --port "$PORT" --dir "$MSGDIR" >"$DIR/smtp.log" 2>&1 &
  echo $! >"$PIDFILE"
  if ! wait_until 30 ready; then log "smtp sink did not become ready:"; tail -n 20 "$DIR/smtp.log" >&2; return 1; fi
  log "smtp sink ready on 127.0.0.1:$PORT (messages in $MSGDIR)"
}

stop() { stop_pidfile "$PIDFILE" "smtp sink :$PORT"; }

case "${1:-start}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  restart) stop; start ;;
  status) if ready; then echo "smtp sink up on :$PORT"; else echo "smtp sink down"; exit 1; fi ;;
  *) echo "usage: $0 install|start|stop|restart|status" >&2; exit 2 ;;
esac
