#!/usr/bin/env bash
# Headless Chromium + chromedriver for the dashboards' browser tests (tests/dashboards.rs).
#
#   bash scripts/services/chromium.sh install   # idempotent; Debian's chromium + chromium-driver
#   bash scripts/services/chromium.sh check     # exits 1 when either binary is missing
source "$(dirname "$0")/common.sh"

have() { command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; }

case "${1:-install}" in
  install)
    if have; then
      log "chromium $(chromium --version 2>/dev/null | awk '{print $2}') and chromedriver present"
      exit 0
    fi
    export DEBIAN_FRONTEND=noninteractive
    retry 3 apt-get update -qq
    retry 3 apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
    have || { log "chromium or chromedriver still missing after apt-get install"; exit 1; }
    log "installed $(chromium --version 2>/dev/null)"
    ;;
  check)
    have || { log "chromium/chromedriver missing: run \`bash scripts/services/chromium.sh install\`"; exit 1; }
    ;;
  *)
    echo "usage: $0 install|check" >&2
    exit 2
    ;;
esac
