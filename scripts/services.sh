#!/usr/bin/env bash
# Makes sure the PostgreSQL and RabbitMQ the tests talk to are installed and running on
# localhost (127.0.0.1:5432 with trust auth for local connections, 127.0.0.1:5672 guest/guest).
set -euo pipefail

sudo_cmd=()
[ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
need=()
command -v pg_ctlcluster >/dev/null || need+=(postgresql)
command -v rabbitmq-server >/dev/null || need+=(rabbitmq-server)
if [ ${#need[@]} -gt 0 ]; then
  echo "services: installing ${need[*]}"
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq "${need[@]}" >/dev/null
fi

if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  echo "services: starting PostgreSQL"
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  "${sudo_cmd[@]}" pg_ctlcluster --skip-systemctl-redirect "$version" main start
fi
for _ in $(seq 1 60); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 0.5; done
pg_isready -h 127.0.0.1 -p 5432
# Tests connect as postgres without a password over TCP.
if ! psql -h 127.0.0.1 -U postgres -d postgres -tAc 'select 1' >/dev/null 2>&1; then
  hba=$("${sudo_cmd[@]}" -u postgres psql -tAc 'show hba_file')
  echo "host all all 127.0.0.1/32 trust" | "${sudo_cmd[@]}" tee -a "$hba" >/dev/null
  "${sudo_cmd[@]}" -u postgres psql -tAc 'select pg_reload_conf()' >/dev/null
fi

amqp_up() { (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null; }
if ! amqp_up; then
  echo "services: starting RabbitMQ"
  "${sudo_cmd[@]}" rabbitmq-server -detached
  for _ in $(seq 1 120); do amqp_up && break; sleep 1; done
fi
amqp_up || { echo "services: RabbitMQ did not start on 127.0.0.1:5672" >&2; exit 1; }
echo "services: PostgreSQL and RabbitMQ are up"
