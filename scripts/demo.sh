#!/usr/bin/env bash
# The README's demo command: `vigil demo` on the embedded store (chDB), nothing else to run.
#
#   bash scripts/demo.sh [demo flags, e.g. --duration 120 --rate 5000]
#
# Fetches the chDB library once (~166 MB download, cached), builds vigil in release mode and
# runs the demo: HTTP ingest on 127.0.0.1:8080, simulated traffic for two models with two
# versions each, input drift injected after 20 s, live counts read back from the store.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/services/chdb.sh install
cargo build --release --locked -p vigil
exec ./target/release/vigil demo "$@"
