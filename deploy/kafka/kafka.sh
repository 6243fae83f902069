#!/usr/bin/env bash
# Local Apache Kafka (KRaft mode) from the jars deploy/kafka/pom.xml fetched.
#
#   deploy/kafka/kafka.sh up   [--brokers 1|3] [--port 9092] [--home DIR]
#                              [--listener NAME:PROTOCOL:PORT]... [--config FILE]
#   deploy/kafka/kafka.sh down [--home DIR]
#   deploy/kafka/kafka.sh status [--home DIR]
#
# Each node runs broker and controller in one JVM (combined mode). With
# --brokers 3, node i listens for clients on PORT+i-1 and the topics default
# to replication factor 3 with min.insync.replicas 2, so broker restarts and
# leader fail-over can be tested. Everything a run writes (storage, logs, pid
# files) lives under --home, default <repo>/.kafka/run, which git ignores.
# With one broker, --listener adds a client listener (SASL_PLAINTEXT, SSL, ...)
# beside the PLAINTEXT one, and --config appends a file of server properties
# (its SASL users, its keystore: listener.name.<name>.*); give both at each up.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
lib="${KAFKA_LIB_DIR:-$repo/.kafka/lib}"

cmd="${1:-}"
[ -n "$cmd" ] && shift
brokers="${BROKERS:-1}"
port="${KAFKA_PORT:-9092}"
home="${KAFKA_HOME_DIR:-$repo/.kafka/run}"
heap="${KAFKA_HEAP:-512m}"
wait_s="${KAFKA_START_TIMEOUT_S:-90}"
extra_listeners=()
extra_config=""

while [ $# -gt 0 ]; do
  case "$1" in
    --brokers) brokers="$2"; shift 2 ;;
    --port) port="$2"; shift 2 ;;
    --home) home="$2"; shift 2 ;;
    --listener) extra_listeners+=("$2"); shift 2 ;;
    --config) extra_config="$2"; shift 2 ;;
    -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "kafka.sh: unknown option '$1' (try --help)" >&2; exit 2 ;;
  esac
done

die() { echo "kafka.sh: $*" >&2; exit 1; }

client_port() { echo $((port + $1 - 1)); }
# Controller ports sit 10000 above the client ports, so a second cluster on
# another --port does not collide with the first.
controller_port() { echo $((port + 10000 + $1 - 1)); }

bootstrap() {
  local out="" i
  for i in $(seq 1 "$brokers"); do out+="${out:+,}localhost:$(client_port "$i")"; done
  echo "$out"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# The --listener specs (NAME:PROTOCOL:PORT) as two strings, each with a leading comma:
# ",NAME://localhost:PORT..." for listeners= and advertised.listeners=, ",NAME:PROTOCOL..." for the
# protocol map.
extra_listener_props() {
  local spec name protocol lport listeners="" map=""
  for spec in ${extra_listeners[@]+"${extra_listeners[@]}"}; do
    IFS=: read -r name protocol lport <<< "$spec"
    [ -n "$name" ] && [ -n "$protocol" ] && [ -n "$lport" ] \
      || die "--listener wants NAME:PROTOCOL:PORT, not '$spec'"
    listeners+=",$name://localhost:$lport"
    map+=",$name:$protocol"
  done
  echo "$listeners $map"
}

write_config() {
  local id=$1 dir="$home/node-$1" voters="" j rf isr
  for j in $(seq 1 "$brokers"); do voters+="${voters:+,}$j@localhost:$(controller_port "$j")"; done
  if [ "$brokers" -ge 3 ]; then rf=3; isr=2; else rf=1; isr=1; fi
  local extra listeners_extra map_extra
  extra="$(extra_listener_props)"
  listeners_extra="${extra% *}"; map_extra="${extra#* }"
  mkdir -p "$dir/data" "$dir/logs"
  cat > "$dir/server.properties" <<EOF
process.roles=broker,controller
node.id=$id
controller.quorum.voters=$voters
listeners=PLAINTEXT://localhost:$(client_port "$id"),CONTROLLER://localhost:$(controller_port "$id")$listeners_extra
advertised.listeners=PLAINTEXT://localhost:$(client_port "$id")$listeners_extra
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT$map_extra
log.dirs=$dir/data
num.partitions=${KAFKA_NUM_PARTITIONS:-4}
default.replication.factor=$rf
min.insync.replicas=$isr
offsets.topic.replication.factor=$rf
offsets.topic.num.partitions=${KAFKA_OFFSETS_PARTITIONS:-10}
transaction.state.log.replication.factor=$rf
transaction.state.log.min.isr=$isr
share.coordinator.state.topic.replication.factor=$rf
share.coordinator.state.topic.min.isr=$isr
# A local broker for tests and demos: groups form at once instead of after 3 s.
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true
log.retention.hours=24
log.segment.bytes=67108864
EOF
  if [ -n "$extra_config" ]; then
    { echo "# from --config $extra_config"; cat "$extra_config"; } >> "$dir/server.properties"
  fi
  cat > "$dir/log4j2.properties" <<EOF
status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = $dir/logs/server.log
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.state.name = state.change.logger
logger.state.level = WARN
EOF
}

# java_cmd [--detach] NODE MAIN_CLASS ARGS...: execs the JVM, so call it in a
# subshell. --detach starts it in its own session, so it outlives this script
# and a Ctrl-C meant for the terminal, and its pid is the subshell's.
java_cmd() {
  local launch=()
  [ "$1" = "--detach" ] && { launch=(setsid); shift; }
  local id=$1 main=$2 dir="$home/node-$1"
  shift 2
  exec "${launch[@]}" java -Xms"$heap" -Xmx"$heap" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
    -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$dir/log4j2.properties" \
    -Dkafka.logs.dir="$dir/logs" \
    -cp "$lib/*" "$main" "$@"
}

# A JVM that exited but was not reaped yet (a zombie) counts as stopped.
alive() {
  local stat
  stat="$(ps -o stat= -p "$1" 2>/dev/null)" || return 1
  [ -n "$stat" ] && [ "${stat:0:1}" != "Z" ]
}

node_pid() {
  local f="$home/node-$1/broker.pid"
  [ -f "$f" ] && alive "$(cat "$f")" && cat "$f"
}

up() {
  [ -d "$lib" ] && ls "$lib"/kafka_2.13-*.jar >/dev/null 2>&1 \
    || die "no Kafka jars in $lib: run 'make kafka-jars' (mvn -f deploy/kafka/pom.xml package) first"
  command -v java >/dev/null || die "java not found: install a JDK 17 or newer"
  case "$brokers" in 1|3) ;; *) die "--brokers must be 1 or 3, not '$brokers'" ;; esac
  if [ "$brokers" != 1 ] && { [ ${#extra_listeners[@]} -gt 0 ] || [ -n "$extra_config" ]; }; then
    die "--listener and --config are for one broker only"
  fi
  [ -z "$extra_config" ] || [ -r "$extra_config" ] || die "--config $extra_config: no such readable file"
  if [ -f "$home/cluster" ] && [ "$(cut -d' ' -f2 "$home/cluster")" != "$brokers" ]; then
    if [ -n "$(any_running)" ]; then
      die "a $(cut -d' ' -f2 "$home/cluster")-broker cluster is running in $home: run 'kafka.sh down' first"
    fi
    rm -rf "$home"
  fi
  mkdir -p "$home"
  local cluster_id i started=()
  if [ -f "$home/cluster" ]; then
    cluster_id="$(cut -d' ' -f1 "$home/cluster")"
  else
    cluster_id="$(java -cp "$lib/*" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n1)"
    [ -n "$cluster_id" ] || die "could not create a cluster id with kafka.tools.StorageTool"
  fi
  for i in $(seq 1 "$brokers"); do
    if [ -n "$(node_pid "$i")" ]; then continue; fi
    local p; p="$(client_port "$i")"
    port_open "$p" && die "port $p is already in use by another program: stop it or pick another --port"
    write_config "$i"
    if [ ! -f "$home/node-$i/data/meta.properties" ]; then
      (java_cmd "$i" kafka.tools.StorageTool format -t "$cluster_id" -c "$home/node-$i/server.properties" \
        --ignore-formatted) > "$home/node-$i/logs/format.log" 2>&1 \
        || die "formatting storage failed, see $home/node-$i/logs/format.log"
    fi
    (java_cmd --detach "$i" kafka.Kafka "$home/node-$i/server.properties") \
      > "$home/node-$i/logs/stdout.log" 2>&1 < /dev/null &
    echo $! > "$home/node-$i/broker.pid"
    started+=("$i")
  done
  echo "$cluster_id $brokers $port" > "$home/cluster"
  wait_ready "${started[@]}"
  echo "Kafka is up: bootstrap servers $(bootstrap)  (data in $home)"
}

wait_ready() {
  local deadline=$((SECONDS + wait_s)) i
  for i in "$@"; do
    local log="$home/node-$i/logs/server.log" p; p="$(client_port "$i")"
    until grep -q "Kafka Server started" "$log" 2>/dev/null && port_open "$p"; do
      if [ -z "$(node_pid "$i")" ]; then
        tail -n 20 "$home/node-$i/logs/stdout.log" "$log" >&2 2>/dev/null || true
        die "broker $i exited during start-up; logs above and in $home/node-$i/logs"
      fi
      [ $SECONDS -lt $deadline ] || die "broker $i did not answer on port $p within ${wait_s}s; see $log"
      sleep 0.2
    done
  done
}

any_running() {
  local d
  for d in "$home"/node-*; do
    [ -d "$d" ] || continue
    node_pid "${d##*node-}" || true
  done
}

down() {
  local d pid pids=()
  for d in "$home"/node-*; do
    [ -d "$d" ] || continue
    pid="$(node_pid "${d##*node-}" || true)"
    [ -n "$pid" ] && { kill -TERM "$pid" 2>/dev/null || true; pids+=("$pid"); }
    rm -f "$d/broker.pid"
  done
  # A controlled shutdown takes a few seconds; after 30 s the JVM is killed (a node of a 3-node
  # cluster can hang in its shutdown once the other controllers are gone) and waited for, so
  # nothing is left running when this returns.
  local deadline=$((SECONDS + 30))
  for pid in "${pids[@]}"; do
    while alive "$pid"; do
      if [ $SECONDS -ge $deadline ]; then
        echo "broker pid $pid did not stop within 30 s: killing it" >&2
        kill -KILL "$pid" 2>/dev/null || true
        local killed=$((SECONDS + 10))
        while alive "$pid" && [ $SECONDS -lt $killed ]; do sleep 0.1; done
        break
      fi
      sleep 0.2
    done
  done
  [ ${#pids[@]} -gt 0 ] && echo "Kafka stopped (${#pids[@]} broker(s))" || echo "Kafka was not running (home $home)"
}

status() {
  local running; running="$(any_running)"
  if [ -n "$running" ]; then
    echo "running: pids $(echo "$running" | tr '\n' ' ')- bootstrap servers $(bootstrap)"
  else
    echo "not running (home $home)"; return 3
  fi
}

case "$cmd" in
  up) up ;;
  down) down ;;
  status)
    if [ -f "$home/cluster" ]; then
      brokers="$(cut -d' ' -f2 "$home/cluster")"; port="$(cut -d' ' -f3 "$home/cluster")"
    fi
    status ;;
  ""|-h|--help|help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//' ;;
  *) die "unknown command '$cmd': use up, down or status" ;;
esac
