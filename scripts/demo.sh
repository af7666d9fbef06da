#!/usr/bin/env bash
# The README's demo command: `vigil demo` on the embedded store (chDB), nothing else to run.
#
#   bash scripts/demo.sh [demo flags, e.g. --duration 0 --keep-serving --with-models]
#
# Fetches the chDB library once (~166 MB download, cached), builds vigil in release mode and
# runs the demo: the gateway, ingest and dashboards on 127.0.0.1:8080, simulated users and
# model backends (A/B tests, a shadow candidate), drift injected after 20 s, alerts by e-mail
# to a local mailbox and by webhook, ROI, retraining request; see the README's quick start.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/services/chdb.sh install
cargo build --release --locked -p vigil
exec ./target/release/vigil demo "$@"
