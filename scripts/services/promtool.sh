#!/usr/bin/env bash
# Prometheus' own `promtool` (Debian's `prometheus` package), which tests/cluster.rs runs as
# `promtool check metrics` on vigil's /metrics. Nothing to start: `install` only.
source "$(dirname "$0")/common.sh"
case "${1:-install}" in
  install)
    command -v promtool >/dev/null 2>&1 && exit 0
    log "installing promtool (Debian package prometheus)"
    export DEBIAN_FRONTEND=noninteractive
    retry 3 apt-get install -y -qq --no-install-recommends prometheus >/dev/null ||
      { retry 3 apt-get update -qq && retry 3 apt-get install -y -qq --no-install-recommends prometheus >/dev/null; }
    # The package starts a Prometheus server where systemd runs; nothing here needs it.
    command -v promtool >/dev/null 2>&1 || { log "promtool missing after installing prometheus"; exit 1; }
    ;;
  *) echo "usage: $0 install" >&2; exit 2 ;;
esac
