#!/usr/bin/env bash
# Regenerates docs/screenshots/ from the default `vigil demo`, as a new user sees it: runs the
# browser test tests/demo.rs (the demo for its default duration, then every page in headless
# Chromium, a promotion and a rollback through the UI) with its screenshots sent to docs/.
#
#   bash scripts/screenshots.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/services/chdb.sh install
bash scripts/services/chromium.sh install
VIGIL_SCREENSHOTS="$PWD/docs/screenshots" cargo test --locked --test demo -- --nocapture
ls -1 docs/screenshots
