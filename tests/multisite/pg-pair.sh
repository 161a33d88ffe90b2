#!/usr/bin/env bash
# A PostgreSQL primary with a synchronous standby on loopback, in a temporary directory, for
# benchmarks (BENCHMARKS.md: ingest and alarm latency with the PostgreSQL store): every commit
# returns only once the standby has it, as under Patroni's synchronous mode. Prints the URL of
# an empty database `dcim` and runs until interrupted (Ctrl-C or SIGTERM), then removes
# everything. `SYNC=0` leaves the standby asynchronous (the cost of the second copy alone).
# Run as root: PostgreSQL runs as the `postgres` user.
set -euo pipefail
bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
dir=$(mktemp -d /tmp/dcim-pg-pair-XXXXXX)
chmod 755 "$dir"
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
[ "$(id -u)" = 0 ] && chown postgres:postgres "$dir"
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
p1=$(port); p2=$(port)
cleanup() {
    as_pg "$bin/pg_ctl" -D "$dir/standby" -m immediate stop >/dev/null 2>&1 || true
    as_pg "$bin/pg_ctl" -D "$dir/primary" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$dir" 2>/dev/null || { sleep 1; rm -rf "$dir"; }
}
trap cleanup EXIT
trap 'exit 0' INT TERM
as_pg "$bin/initdb" -D "$dir/primary" -U dcim --auth=trust -E UTF8 --locale=C >/dev/null
cat >> "$dir/primary/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $p1
unix_socket_directories = '$dir'
wal_level = replica
max_wal_senders = 4
CONF
echo "host replication dcim 127.0.0.1/32 trust" >> "$dir/primary/pg_hba.conf"
as_pg "$bin/pg_ctl" -D "$dir/primary" -l "$dir/primary.log" -w start >/dev/null
as_pg "$bin/psql" -h 127.0.0.1 -p "$p1" -U dcim -d postgres -qc "CREATE DATABASE dcim"
as_pg "$bin/pg_basebackup" -h 127.0.0.1 -p "$p1" -U dcim -D "$dir/standby" -R -c fast \
    -d "application_name=standby"
sed -i "s/^port = .*/port = $p2/" "$dir/standby/postgresql.conf"
as_pg "$bin/pg_ctl" -D "$dir/standby" -l "$dir/standby.log" -w start >/dev/null
if [ "${SYNC:-1}" = 1 ]; then
    as_pg "$bin/psql" -h 127.0.0.1 -p "$p1" -U dcim -d postgres -qc \
        "ALTER SYSTEM SET synchronous_standby_names = 'standby'" -c "SELECT pg_reload_conf()" >/dev/null
fi
sleep 1
as_pg "$bin/psql" -h 127.0.0.1 -p "$p1" -U dcim -d postgres -Atc \
    "SELECT 'standby: ' || application_name || ' ' || sync_state FROM pg_stat_replication"
echo "postgres://dcim@127.0.0.1:$p1/dcim"
while true; do sleep 3600 & wait $!; done
