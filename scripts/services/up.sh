#!/usr/bin/env bash
# Install (if missing) and start every real service the tests use; prints the env to export.
source "$(dirname "$0")/common.sh"
here="$(dirname "$0")"
bash "$here/chdb.sh" install
bash "$here/chromium.sh" install   # headless browser for tests/dashboards.rs
bash "$here/clickhouse.sh" start
# A 2-shard x 2-replica ClickHouse cluster with ZooKeeper for tests/cluster.rs, and promtool.
bash "$here/cluster.sh" start
bash "$here/promtool.sh" install
bash "$here/tansu.sh" start
bash "$here/smtp.sh" start
bash "$here/mlflow.sh" start
# The openai SDK (tests/llm*.rs drive /v1 with it) and a real llama.cpp upstream for
# tests/llm_llama.rs: llama-cpp-python is compiled on first use (~12 min on 2 cores, cached).
bash "$here/../llm/setup.sh" >/dev/null
bash "$here/../llm/llama-server.sh" start "${VIGIL_LLAMA_PORT:-18091}" tiny
