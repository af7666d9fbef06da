#!/usr/bin/env bash
# Stop every service started by up.sh.
here="$(dirname "$0")"
bash "$here/../llm/llama-server.sh" stop "${VIGIL_LLAMA_PORT:-18091}"
bash "$here/mlflow.sh" stop
bash "$here/smtp.sh" stop
bash "$here/tansu.sh" stop
bash "$here/cluster.sh" stop
bash "$here/clickhouse.sh" stop
