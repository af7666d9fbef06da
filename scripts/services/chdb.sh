#!/usr/bin/env bash
# Embedded ClickHouse (chDB) library: fetches libchdb.so from the pinned npm package into the cache.
#   chdb.sh install|path
# vigil loads it at run time from $VIGIL_CHDB_LIB or, by default, $VIGIL_CACHE_DIR/chdb/<version>/libchdb.so.
source "$(dirname "$0")/common.sh"
VERSION=26.7.3-stable.1
DEST="$VIGIL_CACHE_DIR/chdb/$VERSION"

install() {
  if [[ -f "$DEST/libchdb.so" ]]; then return 0; fi
  command -v npm >/dev/null || { log "npm is required to fetch chDB (apt-get install -y npm)"; return 1; }
  log "fetching @chdb/lib-linux-x64-gnu@$VERSION (~166 MB)"
  local tmp; tmp=$(mktemp -d)
  (cd "$tmp" && retry 3 npm pack --silent "@chdb/lib-linux-x64-gnu@$VERSION" >/dev/null)
  tar -xzf "$tmp"/chdb-lib-linux-x64-gnu-*.tgz -C "$tmp"
  local so; so=$(find "$tmp/package" -name 'libchdb.so' | head -n1)
  [[ -n "$so" ]] || { log "libchdb.so not found in the npm package"; return 1; }
  mkdir -p "$DEST"
  mv "$so" "$DEST/libchdb.so.tmp" && mv "$DEST/libchdb.so.tmp" "$DEST/libchdb.so"
  rm -rf "$tmp"
  log "chDB library at $DEST/libchdb.so"
}

case "${1:-install}" in
  install|start) install ;;
  stop) ;;
  path) echo "$DEST/libchdb.so" ;;
  status) [[ -f "$DEST/libchdb.so" ]] && echo "chdb at $DEST/libchdb.so" || { echo "chdb missing"; exit 1; } ;;
  *) echo "usage: $0 install|path|status" >&2; exit 2 ;;
esac
