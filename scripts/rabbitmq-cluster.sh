#!/usr/bin/env bash
# A RabbitMQ cluster of 1-3 nodes on this machine, for the cluster fault tests and bench:fleet,
# started from Debian's rabbitmq-server beside the machine's own broker (127.0.0.1:5672), which it
# never touches: each node has its own name, AMQP and distribution ports, data and log folders and
# config; all share one Erlang cookie so they can cluster.
#
#   scripts/rabbitmq-cluster.sh start [nodes]   start nodes (default 3) and join them; idempotent
#   scripts/rabbitmq-cluster.sh stop            stop every node and delete its data
#   scripts/rabbitmq-cluster.sh stop-node <i>   stop the broker on node i (1-3), leaving the VM up
#   scripts/rabbitmq-cluster.sh start-node <i>  start it again
#   scripts/rabbitmq-cluster.sh partition <i>   cut node i off from the others (Erlang distribution)
#   scripts/rabbitmq-cluster.sh heal <i>        join it to them again
#   scripts/rabbitmq-cluster.sh ctl <i> <args>  rabbitmqctl against node i
#   scripts/rabbitmq-cluster.sh urls [nodes]    the AMQP URLs, comma-separated
#
# Node i listens on 127.0.0.1:$((SOLSTICE_CLUSTER_BASE_PORT + i)) (default 5680 + i) and is named
# solstice-<that port>@localhost; its files live in $SOLSTICE_CLUSTER_DIR (default
# /tmp/solstice-rabbit-cluster).
set -euo pipefail

base_port=${SOLSTICE_CLUSTER_BASE_PORT:-5680}
dir=${SOLSTICE_CLUSTER_DIR:-/tmp/solstice-rabbit-cluster}
bin=/usr/lib/rabbitmq/bin

if [ ! -x "$bin/rabbitmq-server" ]; then
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  echo "cluster: installing rabbitmq-server"
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq rabbitmq-server >/dev/null
fi

node_port() { echo $((base_port + $1)); }
# Named after the AMQP port, so two clusters (the tests' and bench:fleet's) never share a name on epmd.
node_name() { echo "solstice-$(node_port "$1")@localhost"; }

# The environment of node i: everything that would otherwise come from /etc/rabbitmq, which
# belongs to the machine's own broker.
node_env() {
  local i=$1 home="$dir/home"
  echo HOME="$home" \
    RABBITMQ_NODENAME="$(node_name "$i")" \
    RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 \
    RABBITMQ_NODE_PORT="$(node_port "$i")" \
    RABBITMQ_DIST_PORT=$((base_port + 20000 + i)) \
    RABBITMQ_MNESIA_BASE="$dir/node-$i/mnesia" \
    RABBITMQ_LOG_BASE="$dir/node-$i/log" \
    RABBITMQ_PID_FILE="$dir/node-$i/pid" \
    RABBITMQ_CONFIG_FILE="$dir/node-$i/rabbitmq.conf" \
    RABBITMQ_ADVANCED_CONFIG_FILE="$dir/node-$i/advanced.config" \
    RABBITMQ_CONF_ENV_FILE="$dir/rabbitmq-env.conf" \
    RABBITMQ_ENABLED_PLUGINS_FILE="$dir/enabled_plugins" \
    ERL_EPMD_ADDRESS=127.0.0.1 \
    RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="'-kernel inet_dist_use_interface {127,0,0,1}'"
}

ctl() {
  local i=$1
  shift
  eval env "$(node_env "$i")" "$bin/rabbitmqctl" -n "$(node_name "$i")" '"$@"'
}

amqp_up() { (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null; }

prepare() {
  mkdir -p "$dir/home"
  if [ ! -f "$dir/home/.erlang.cookie" ]; then
    head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$dir/home/.erlang.cookie"
    chmod 400 "$dir/home/.erlang.cookie"
  fi
  : >"$dir/rabbitmq-env.conf"
  echo "[]." >"$dir/enabled_plugins"
}

start_node() {
  local i=$1
  mkdir -p "$dir/node-$i/log"
  if amqp_up "$(node_port "$i")"; then return; fi
  # A stopped app in a running Erlang VM (stop-node) only needs start_app.
  if [ -f "$dir/node-$i/pid" ] && kill -0 "$(cat "$dir/node-$i/pid")" 2>/dev/null; then
    ctl "$i" start_app >/dev/null
  else
    cat >"$dir/node-$i/rabbitmq.conf" <<EOF
listeners.tcp.1 = 127.0.0.1:$(node_port "$i")
loopback_users = none
# A node cut off from the others (the partition test) pauses rather than serve a minority.
cluster_partition_handling = pause_minority
EOF
    echo "[]." >"$dir/node-$i/advanced.config"
    # From its own folder, where an erl_crash.dump lands if the node dies.
    (cd "$dir/node-$i" && eval exec env "$(node_env "$i")" setsid "$bin/rabbitmq-server") \
      >"$dir/node-$i/stdout.log" 2>&1 </dev/null &
  fi
  for _ in $(seq 1 120); do amqp_up "$(node_port "$i")" && break; sleep 0.5; done
  ctl "$i" await_startup --timeout 60 >/dev/null
}

cluster_nodes() { ctl 1 cluster_status --formatter json 2>/dev/null | grep -o "solstice-[0-9]*@localhost" | sort -u; }

case "${1:-}" in
  start)
    count=${2:-3}
    prepare
    for i in $(seq 1 "$count"); do start_node "$i"; done
    for i in $(seq 2 "$count"); do
      if ! cluster_nodes | grep -qx "$(node_name "$i")"; then
        ctl "$i" stop_app >/dev/null 2>&1
        ctl "$i" reset >/dev/null 2>&1
        ctl "$i" join_cluster "$(node_name 1)" >/dev/null 2>&1
        ctl "$i" start_app >/dev/null
        ctl "$i" await_startup --timeout 60 >/dev/null
      fi
    done
    echo "cluster: $count node(s) up: $("$0" urls "$count")"
    ;;
  stop)
    for i in 1 2 3; do
      [ -f "$dir/node-$i/pid" ] || continue
      # SIGTERM stops a node cleanly; its data is deleted next anyway, so a node that lingers is killed.
      pid=$(cat "$dir/node-$i/pid")
      kill "$pid" 2>/dev/null || continue
      for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
      kill -9 "$pid" 2>/dev/null || true
    done
    rm -rf "$dir"
    ;;
  stop-node) ctl "$2" stop_app >/dev/null ;;
  partition)
    # A network partition at the Erlang level, with no firewall: every node stops reconnecting on
    # its own (Erlang would redial at the next Raft message), then node $2 drops its distribution
    # links. Each side then sees the other down; with pause_minority node $2 pauses and closes its
    # clients' connections, as behind a real partition. The CLI still reaches it (it dials in).
    for i in 1 2 3; do ctl "$i" eval 'application:set_env(kernel, dist_auto_connect, never).' >/dev/null & done
    wait
    ctl "$2" eval '[erlang:disconnect_node(N) || N <- nodes()].' >/dev/null
    ;;
  heal)
    for i in 1 2 3; do ctl "$i" eval 'application:set_env(kernel, dist_auto_connect, always).' >/dev/null & done
    wait
    peers=$(for i in 1 2 3; do [ "$i" = "$2" ] || printf "'%s'," "$(node_name "$i")"; done)
    ctl "$2" eval "[net_kernel:connect_node(N) || N <- [${peers%,}]]." >/dev/null
    ;;
  start-node) start_node "$2" ;;
  ctl)
    i=$2
    shift 2
    ctl "$i" "$@"
    ;;
  urls)
    count=${2:-3}
    urls=()
    for i in $(seq 1 "$count"); do urls+=("amqp://guest:guest@127.0.0.1:$(node_port "$i")"); done
    (IFS=,; echo "${urls[*]}")
    ;;
  *)
    sed -n '2,15p' "$0"
    exit 2
    ;;
esac
