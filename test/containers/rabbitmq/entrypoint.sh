#!/bin/sh
# Honours what compose.yml gives the upstream image: RABBITMQ_DEFAULT_USER/PASS (made on the first
# start, as upstream does) and RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS (read by rabbitmq-server itself).
# The data stays in /var/lib/rabbitmq, the volume; the node name follows the container's hostname.
set -eu
: "${RABBITMQ_DEFAULT_USER:=guest}" "${RABBITMQ_DEFAULT_PASS:=guest}"
mkdir -p /etc/rabbitmq
cat > /etc/rabbitmq/rabbitmq.conf <<CONF
default_user = ${RABBITMQ_DEFAULT_USER}
default_pass = ${RABBITMQ_DEFAULT_PASS}
loopback_users = none
listeners.tcp.default = 5672
CONF
chown -R rabbitmq:rabbitmq /var/lib/rabbitmq /etc/rabbitmq
exec setpriv --reuid=rabbitmq --regid=rabbitmq --init-groups env HOME=/var/lib/rabbitmq rabbitmq-server
