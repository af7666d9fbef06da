#!/usr/bin/env bash
# Install (if missing) and start every real service the tests use; prints the env to export.
source "$(dirname "$0")/common.sh"
here="$(dirname "$0")"
bash "$here/chdb.sh" install
bash "$here/chromium.sh" install   # headless browser for tests/dashboards.rs
bash "$here/clickhouse.sh" start
bash "$here/tansu.sh" start
bash "$here/smtp.sh" start
bash "$here/mlflow.sh" start
