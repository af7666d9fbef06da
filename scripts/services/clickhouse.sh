#!/usr/bin/env bash
# ClickHouse server (Debian's 18.16 package) on 127.0.0.1.
#   clickhouse.sh install|start|stop|status|restart
# Ports: VIGIL_CH_HTTP_PORT (18123), VIGIL_CH_TCP_PORT (19000). Data under $VIGIL_SERVICES_DIR/clickhouse.
source "$(dirname "$0")/common.sh"
HTTP_PORT="${VIGIL_CH_HTTP_PORT:-18123}"
TCP_PORT="${VIGIL_CH_TCP_PORT:-19000}"
DIR="$VIGIL_SERVICES_DIR/clickhouse"
PIDFILE="$DIR/server.pid"

install() {
  if command -v clickhouse-server >/dev/null 2>&1; then return 0; fi
  log "installing clickhouse-server from Debian"
  export DEBIAN_FRONTEND=noninteractive
  retry 3 apt-get update -qq
  retry 4 apt-get install -y -qq clickhouse-server clickhouse-client >/dev/null
}

write_config() {
  mkdir -p "$DIR"/{data,tmp,user_files,format_schemas,logs}
  cat >"$DIR/config.xml" <<XML
<?xml version="1.0"?>
<yandex>
  <logger><level>warning</level><log>$DIR/logs/server.log</log><errorlog>$DIR/logs/error.log</errorlog><size>10M</size><count>2</count></logger>
  <listen_host>127.0.0.1</listen_host>
  <http_port>$HTTP_PORT</http_port>
  <tcp_port>$TCP_PORT</tcp_port>
  <max_connections>256</max_connections>
  <keep_alive_timeout>10</keep_alive_timeout>
  <max_concurrent_queries>100</max_concurrent_queries>
  <mark_cache_size>536870912</mark_cache_size>
  <path>$DIR/data/</path>
  <tmp_path>$DIR/tmp/</tmp_path>
  <user_files_path>$DIR/user_files/</user_files_path>
  <format_schema_path>$DIR/format_schemas/</format_schema_path>
  <users_config>$DIR/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <timezone>UTC</timezone>
</yandex>
XML
  cat >"$DIR/users.xml" <<XML
<?xml version="1.0"?>
<yandex>
  <profiles><default><allow_experimental_low_cardinality_type>1</allow_experimental_low_cardinality_type><max_memory_usage>4000000000</max_memory_usage></default></profiles>
  <users><default><password></password><networks><ip>::1</ip><ip>127.0.0.1</ip></networks><profile>default</profile><quota>default</quota></default></users>
  <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors><result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time></interval></default></quotas>
</yandex>
XML
}

ping() { curl -fsS "http://127.0.0.1:$HTTP_PORT/ping" | grep -q Ok; }

start() {
  install
  if ping; then log "clickhouse already running on :$HTTP_PORT"; return 0; fi
  write_config
  cd "$DIR"
  # exec keeps the recorded pid the server's own, so `stop` signals the server itself.
  nohup clickhouse-server --config-file="$DIR/config.xml" >"$DIR/logs/stdout.log" 2>&1 &
  echo $! >"$PIDFILE"
  if ! wait_until 30 ping; then
    log "clickhouse did not become ready; last log lines:"; tail -n 20 "$DIR/logs/stdout.log" "$DIR/logs/error.log" >&2 || true
    return 1
  fi
  log "clickhouse ready on http://127.0.0.1:$HTTP_PORT ($(curl -fsS "http://127.0.0.1:$HTTP_PORT/?query=SELECT%20version()"))"
}

stop() { stop_pidfile "$PIDFILE" clickhouse; }

case "${1:-start}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  restart) stop; start ;;
  status) if ping; then echo "clickhouse up on :$HTTP_PORT"; else echo "clickhouse down"; exit 1; fi ;;
  *) echo "usage: $0 install|start|stop|restart|status" >&2; exit 2 ;;
esac
