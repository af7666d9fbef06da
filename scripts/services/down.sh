#!/usr/bin/env bash
# Stop every service started by up.sh.
here="$(dirname "$0")"
bash "$here/tansu.sh" stop
bash "$here/clickhouse.sh" stop
