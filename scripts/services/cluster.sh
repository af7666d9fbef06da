#!/usr/bin/env bash
# A real ClickHouse cluster on 127.0.0.1 for the cluster tests (issue #14): one ZooKeeper (Debian's
# `zookeeper` package, Java) and four clickhouse-server 18.16 processes, 2 shards x 2 replicas,
# cluster name `vigil`. Facts behind every setting: ../shared/facts/cluster.md.
#
#   cluster.sh install|start|stop|restart|status|env|clean|kill NODE
#
# Ports (node N = 1..4): HTTP 1820N, TCP 1920N, interserver 1930N; ZooKeeper 12181. Bases can be
# moved with VIGIL_CLUSTER_HTTP_BASE (18200), VIGIL_CLUSTER_TCP_BASE (19200),
# VIGIL_CLUSTER_INTERSERVER_BASE (19300) and VIGIL_CLUSTER_ZK_PORT (12181).
# Shards: nodes 1,2 = shard 01 (replicas ch1, ch2); nodes 3,4 = shard 02 (replicas ch3, ch4).
# State (configs, data, logs, pidfiles) under $VIGIL_SERVICES_DIR/cluster; `clean` removes it.
#
# Hooked in: up.sh starts it (after clickhouse.sh, whose install it reuses), down.sh stops it, and
# scripts/test.sh exports `cluster.sh env` (VIGIL_TEST_CLUSTER = the nodes' host:port list,
# VIGIL_TEST_CLUSTER_NAME) for tests/cluster.rs, which also uses `kill N` to crash a node.
#
# Conventions as in the other service scripts: installs what is missing, `start` is idempotent
# (a node or ZooKeeper already answering its port counts as running and is left alone), pidfiles
# record exactly what this script started and `stop` stops only those.
source "$(dirname "$0")/common.sh"
here="$(cd "$(dirname "$0")" && pwd)"

CLUSTER_NAME=vigil
HTTP_BASE="${VIGIL_CLUSTER_HTTP_BASE:-18200}"
TCP_BASE="${VIGIL_CLUSTER_TCP_BASE:-19200}"
INTER_BASE="${VIGIL_CLUSTER_INTERSERVER_BASE:-19300}"
ZK_PORT="${VIGIL_CLUSTER_ZK_PORT:-12181}"
NODES=(1 2 3 4)
DIR="$VIGIL_SERVICES_DIR/cluster"
ZK_DIR="$DIR/zk"
ZK_PIDFILE="$ZK_DIR/zookeeper.pid"
ZK_JAR=/usr/share/java/zookeeper.jar
# Generous: the CI machine has 2 cores shared with cargo; the facts measured 5-13 s with them busy.
START_TIMEOUT="${VIGIL_CLUSTER_START_TIMEOUT:-120}"

# A process killed with -9 can stay a zombie for a while here (PID 1 reaps slowly), and `kill -0`
# succeeds on a zombie: count it as gone, or `start` would wait on a dead node instead of restarting it.
alive() {
  local st
  st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) && [[ -n $st && $st != Z && $st != X ]]
}
running() { [[ -f "$1" ]] && alive "$(cat "$1")"; }

http_port() { echo $((HTTP_BASE + $1)); }
tcp_port() { echo $((TCP_BASE + $1)); }
inter_port() { echo $((INTER_BASE + $1)); }
shard_of() { if (($1 <= 2)); then echo 01; else echo 02; fi; }
node_dir() { echo "$DIR/ch$1"; }
node_pidfile() { echo "$DIR/ch$1/server.pid"; }

install() {
  bash "$here/clickhouse.sh" install
  if [[ -f "$ZK_JAR" && -f /usr/share/java/slf4j-simple.jar ]] && command -v java >/dev/null 2>&1; then
    return 0
  fi
  # `zookeeper` alone: `zookeeperd` only adds the init script / systemd unit, which we don't use.
  log "installing zookeeper from Debian"
  export DEBIAN_FRONTEND=noninteractive
  retry 3 apt-get update -qq
  retry 4 apt-get install -y -qq zookeeper libslf4j-java >/dev/null
}

# --- ZooKeeper -------------------------------------------------------------------------------

zk_cmd() { # zk_cmd WORD: a four-letter word over bash's /dev/tcp (no nc needed)
  local out
  exec 3<>"/dev/tcp/127.0.0.1/$ZK_PORT" || return 1
  printf '%s' "$1" >&3
  out=$(timeout 5 cat <&3) || true
  exec 3<&- 3>&- || true
  printf '%s' "$out"
}
# `ruok` answers `imok` while ZooKeeper still closes client sessions; `srvr` with a mode means it
# serves (pitfall 1 of the facts: a ClickHouse node started before that can segfault on ON CLUSTER).
zk_ready() { local out; out=$(zk_cmd srvr 2>/dev/null) || return 1; [[ $out == *"Mode: standalone"* ]]; }

write_zk_config() {
  mkdir -p "$ZK_DIR/data" "$ZK_DIR/logs"
  cat >"$ZK_DIR/zoo.cfg" <<CFG
tickTime=2000
initLimit=10
syncLimit=5
dataDir=$ZK_DIR/data
clientPort=$ZK_PORT
clientPortAddress=127.0.0.1
admin.enableServer=false
4lw.commands.whitelist=ruok,stat,mntr,srvr
autopurge.purgeInterval=0
maxClientCnxns=200
CFG
}

start_zk() {
  if zk_ready; then log "zookeeper already running on :$ZK_PORT"; return 0; fi
  if running "$ZK_PIDFILE"; then
    # Ours, started but not serving yet (or wedged): give it the usual time, then replace it.
    if wait_until "$START_TIMEOUT" zk_ready; then return 0; fi
    stop_pid "$(cat "$ZK_PIDFILE")" zookeeper
  fi
  write_zk_config
  local attempt
  for attempt in 1 2 3; do
    (
      cd "$ZK_DIR"
      exec nohup java -Xms64m -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
        -Dzookeeper.log.dir="$ZK_DIR/logs" -Dorg.slf4j.simpleLogger.defaultLogLevel=warn \
        -cp "$ZK_JAR:/usr/share/java/slf4j-simple.jar" \
        org.apache.zookeeper.server.ZooKeeperServerMain "$ZK_DIR/zoo.cfg" >>"$ZK_DIR/logs/zookeeper.log" 2>&1
    ) &
    echo $! >"$ZK_PIDFILE"
    if wait_until "$START_TIMEOUT" zk_ready; then
      log "zookeeper ready on 127.0.0.1:$ZK_PORT"
      return 0
    fi
    log "zookeeper not serving after ${START_TIMEOUT}s (attempt $attempt/3); last log lines:"
    tail -n 20 "$ZK_DIR/logs/zookeeper.log" >&2 || true
    stop_pid "$(cat "$ZK_PIDFILE")" zookeeper
    rm -f "$ZK_PIDFILE"
  done
  return 1
}

# --- ClickHouse nodes ------------------------------------------------------------------------

write_users() {
  mkdir -p "$DIR"
  # poll_interval=1: shutdown waits that long per idle interserver connection (10 s by default).
  # load_balancing=in_order: deterministic replica choice for reads through Distributed tables.
  cat >"$DIR/users.xml" <<XML
<?xml version="1.0"?>
<yandex>
  <profiles><default>
    <allow_experimental_low_cardinality_type>1</allow_experimental_low_cardinality_type>
    <max_memory_usage>2000000000</max_memory_usage>
    <load_balancing>in_order</load_balancing>
    <poll_interval>1</poll_interval>
  </default></profiles>
  <users><default><password></password><networks><ip>::1</ip><ip>127.0.0.1</ip></networks><profile>default</profile><quota>default</quota></default></users>
  <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors><result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time></interval></default></quotas>
</yandex>
XML
}

write_node_config() {
  local n=$1 d; d=$(node_dir "$1")
  mkdir -p "$d"/{data,tmp,user_files,format_schemas,logs}
  cat >"$d/config.xml" <<XML
<?xml version="1.0"?>
<yandex>
  <logger><level>information</level><log>$d/logs/server.log</log><errorlog>$d/logs/error.log</errorlog><size>20M</size><count>2</count></logger>
  <listen_host>127.0.0.1</listen_host>
  <http_port>$(http_port "$n")</http_port>
  <tcp_port>$(tcp_port "$n")</tcp_port>
  <interserver_http_port>$(inter_port "$n")</interserver_http_port>
  <!-- else replicas fetch parts from \`hostname -f\` -->
  <interserver_http_host>127.0.0.1</interserver_http_host>
  <max_connections>256</max_connections>
  <keep_alive_timeout>10</keep_alive_timeout>
  <max_concurrent_queries>100</max_concurrent_queries>
  <uncompressed_cache_size>67108864</uncompressed_cache_size>
  <mark_cache_size>67108864</mark_cache_size>
  <path>$d/data/</path>
  <tmp_path>$d/tmp/</tmp_path>
  <user_files_path>$d/user_files/</user_files_path>
  <format_schema_path>$d/format_schemas/</format_schema_path>
  <users_config>$DIR/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <timezone>UTC</timezone>
  <mlock_executable>false</mlock_executable>
  <remote_servers>
    <$CLUSTER_NAME>
      <shard>
        <internal_replication>true</internal_replication>
        <replica><host>127.0.0.1</host><port>$(tcp_port 1)</port></replica>
        <replica><host>127.0.0.1</host><port>$(tcp_port 2)</port></replica>
      </shard>
      <shard>
        <internal_replication>true</internal_replication>
        <replica><host>127.0.0.1</host><port>$(tcp_port 3)</port></replica>
        <replica><host>127.0.0.1</host><port>$(tcp_port 4)</port></replica>
      </shard>
    </$CLUSTER_NAME>
  </remote_servers>
  <zookeeper>
    <node index="1"><host>127.0.0.1</host><port>$ZK_PORT</port></node>
    <!-- 6 s, not 30: a replica restarted after kill -9 waits for its old session to expire -->
    <session_timeout_ms>6000</session_timeout_ms>
    <operation_timeout_ms>10000</operation_timeout_ms>
  </zookeeper>
  <macros>
    <cluster>$CLUSTER_NAME</cluster>
    <shard>$(shard_of "$n")</shard>
    <replica>ch$n</replica>
  </macros>
  <distributed_ddl><path>/clickhouse/task_queue/ddl</path></distributed_ddl>
</yandex>
XML
}

q() { # q NODE SQL: one query over HTTP; prints the body, fails on a non-2xx answer
  curl -fsS --max-time 10 "http://127.0.0.1:$(http_port "$1")/" --data-binary "$2"
}
ping_node() { local out; out=$(curl -fsS --max-time 5 "http://127.0.0.1:$(http_port "$1")/ping" 2>/dev/null) && [[ $out == Ok* ]]; }
# node_up_or_dead N: true when node N answers, or (setting NODE_DIED=1) when the process we started is gone.
node_up_or_dead() {
  ping_node "$1" && return 0
  local pf; pf=$(node_pidfile "$1")
  if [[ -f "$pf" ]] && ! running "$pf"; then NODE_DIED=1; return 0; fi
  return 1
}
node_has_zk() { [[ "$(q "$1" "SELECT count() > 0 FROM system.zookeeper WHERE path = '/'" 2>/dev/null)" == 1 ]]; }
node_sees_cluster() {
  [[ "$(q "$1" "SELECT count() FROM system.clusters WHERE cluster = '$CLUSTER_NAME'" 2>/dev/null)" == 4 ]]
}
# Each node's DDL worker creates the queue node once it holds its ZooKeeper session.
ddl_queue_exists() {
  [[ "$(q "$1" "SELECT count() FROM system.zookeeper WHERE path = '/clickhouse/task_queue' AND name = 'ddl'" 2>/dev/null)" == 1 ]]
}

launch_node() {
  local n=$1 d; d=$(node_dir "$1")
  write_node_config "$n"
  # Where this start's lines begin in the error log (see the DDLWorker guard in wait_cluster).
  stat -c %s "$d/logs/error.log" >"$d/logs/error.log.offset" 2>/dev/null || echo 0 >"$d/logs/error.log.offset"
  (
    cd "$d"
    exec nohup clickhouse-server --config-file="$d/config.xml" >>"$d/logs/stdout.log" 2>&1
  ) &
  echo $! >"$(node_pidfile "$n")"
}

# Starts every node that isn't answering, in parallel, then waits for each; a node that died or
# never answered is started again (up to 3 times).
start_nodes() {
  local n attempt pending=()
  for n in "${NODES[@]}"; do
    if ping_node "$n"; then log "clickhouse ch$n already running on :$(http_port "$n")"; else pending+=("$n"); fi
  done
  for attempt in 1 2 3; do
    ((${#pending[@]} == 0)) && return 0
    for n in "${pending[@]}"; do
      local pf; pf=$(node_pidfile "$n")
      if running "$pf"; then continue; fi # ours, still starting
      launch_node "$n"
    done
    local failed=()
    for n in "${pending[@]}"; do
      NODE_DIED=0
      if wait_until "$START_TIMEOUT" node_up_or_dead "$n" && ((NODE_DIED == 0)); then continue; fi
      if ((NODE_DIED)); then
        log "clickhouse ch$n exited while starting (attempt $attempt/3); last log lines:"
      else
        log "clickhouse ch$n not answering after ${START_TIMEOUT}s (attempt $attempt/3); last log lines:"
      fi
      tail -n 20 "$(node_dir "$n")/logs/stdout.log" "$(node_dir "$n")/logs/error.log" >&2 || true
      running "$(node_pidfile "$n")" && stop_pid "$(cat "$(node_pidfile "$n")")" "clickhouse ch$n"
      rm -f "$(node_pidfile "$n")"
      failed+=("$n")
    done
    pending=("${failed[@]+"${failed[@]}"}")
  done
  ((${#pending[@]} == 0))
}

wait_cluster() {
  local n
  for n in "${NODES[@]}"; do
    wait_until "$START_TIMEOUT" node_has_zk "$n" || { log "ch$n has no ZooKeeper session"; return 1; }
    wait_until "$START_TIMEOUT" node_sees_cluster "$n" || { log "ch$n: system.clusters lacks 4 rows for $CLUSTER_NAME"; return 1; }
  done
  wait_until "$START_TIMEOUT" ddl_queue_exists 1 || { log "no distributed DDL queue in ZooKeeper"; return 1; }
  # Second guard against the early ON CLUSTER segfault: a DDL worker that failed its first
  # ZooKeeper connect retries after 1 s; give it that (and more) before anyone sends DDL.
  local d off retry=0
  for n in "${NODES[@]}"; do
    d=$(node_dir "$n")
    [[ -f "$d/logs/error.log.offset" ]] || continue # not started by this run
    off=$(cat "$d/logs/error.log.offset"); rm -f "$d/logs/error.log.offset"
    if grep -q DDLWorker < <(tail -c +$((off + 1)) "$d/logs/error.log" 2>/dev/null); then
      log "ch$n logged a DDLWorker error while starting"
      retry=1
    fi
  done
  if ((retry)); then log "waiting 3 s for the DDL workers' retry"; sleep 3; fi
}

all_up() {
  zk_ready || return 1
  local n
  for n in "${NODES[@]}"; do ping_node "$n" && node_has_zk "$n" && node_sees_cluster "$n" || return 1; done
}

start() {
  install
  if all_up; then log "cluster $CLUSTER_NAME already running ($(urls))"; return 0; fi
  mkdir -p "$DIR"
  local t0=$SECONDS
  start_zk
  write_users
  start_nodes || { log "cluster $CLUSTER_NAME: a node did not start"; return 1; }
  wait_cluster || return 1
  log "cluster $CLUSTER_NAME ready in $((SECONDS - t0))s: $(urls) (zookeeper 127.0.0.1:$ZK_PORT, $(q 1 "SELECT version()"))"
}

# --- stop ------------------------------------------------------------------------------------

# stop_pid PID NAME: SIGTERM, up to 30 s (a node flushes and closes its ZooKeeper session), then KILL.
stop_pid() {
  local pid=$1 name=$2
  alive "$pid" || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 300); do alive "$pid" || break; sleep 0.1; done
  if alive "$pid"; then
    log "$name did not stop in 30 s; killing it"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  log "$name stopped"
}

# kill_node N: SIGKILL one node, as a crash would (tests/cluster.rs); `start` brings it back.
kill_node() {
  local n=$1 pf; pf=$(node_pidfile "$1")
  running "$pf" || { log "clickhouse ch$n is not running (or not started by this script)"; return 1; }
  kill -KILL "$(cat "$pf")"
  wait_until 10 bash -c "! curl -fsS --max-time 1 http://127.0.0.1:$(http_port "$n")/ping" || true
  log "clickhouse ch$n killed (-9)"
}

stop() {
  local n pids=()
  # Nodes first, in parallel (each ~2 s), then ZooKeeper, so they close their sessions cleanly.
  for n in "${NODES[@]}"; do
    local pf; pf=$(node_pidfile "$n")
    if running "$pf"; then
      stop_pid "$(cat "$pf")" "clickhouse ch$n" &
      pids+=($!)
    fi
  done
  for p in "${pids[@]+"${pids[@]}"}"; do wait "$p" || true; done
  for n in "${NODES[@]}"; do rm -f "$(node_pidfile "$n")"; done
  if running "$ZK_PIDFILE"; then stop_pid "$(cat "$ZK_PIDFILE")" zookeeper; fi
  rm -f "$ZK_PIDFILE"
}

# --- status / env ----------------------------------------------------------------------------

urls() {
  local n list=()
  for n in "${NODES[@]}"; do list+=("127.0.0.1:$(http_port "$n")"); done
  (IFS=,; echo "${list[*]}")
}

status() {
  local rc=0 n
  if zk_ready; then echo "zookeeper up on :$ZK_PORT"; else echo "zookeeper down"; rc=1; fi
  for n in "${NODES[@]}"; do
    if ping_node "$n"; then
      local zk=no; node_has_zk "$n" && zk=yes
      echo "ch$n up on :$(http_port "$n") (shard $(shard_of "$n"), zookeeper session: $zk)"
      [[ $zk == yes ]] || rc=1
    else
      echo "ch$n down"; rc=1
    fi
  done
  return $rc
}

env_vars() {
  local hosts; hosts=$(urls)
  echo "export VIGIL_TEST_CLUSTER=$hosts"
  echo "export VIGIL_TEST_CLUSTER_NAME=$CLUSTER_NAME"
  echo "export VIGIL_TEST_ZOOKEEPER=127.0.0.1:$ZK_PORT"
  # Store URLs, one per node (the store URL takes one node today; a list once #14 adds failover).
  echo "export VIGIL_CLUSTER_URLS=$(sed 's#\([^,]*\)#clickhouse://\1#g' <<<"$hosts")"
}

case "${1:-start}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  restart) stop; start ;;
  status) status ;;
  env) env_vars ;;
  clean) stop; rm -rf "$DIR"; log "removed $DIR" ;;
  kill) kill_node "${2:?usage: $0 kill NODE (1-4)}" ;;
  *) echo "usage: $0 install|start|stop|restart|status|env|clean|kill NODE" >&2; exit 2 ;;
esac
