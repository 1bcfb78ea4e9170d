#!/usr/bin/env bash
# Make sure a PostgreSQL server answers at 127.0.0.1:5432 (trust auth), starting one if we can.
# Under CI=true an unreachable server is a hard failure: the store suite must never be skipped.
set -u
host=${PGHOST_TEST:-127.0.0.1}
port=${PGPORT_TEST:-5432}
ready() { pg_isready -q -h "$host" -p "$port" 2>/dev/null || python3 - "$host" "$port" <<'PY'
import socket, sys
s = socket.socket(); s.settimeout(1)
sys.exit(0 if s.connect_ex((sys.argv[1], int(sys.argv[2]))) == 0 else 1)
PY
}
ready && exit 0
echo "PostgreSQL is not answering at $host:$port; trying to start it" >&2
if command -v pg_ctlcluster >/dev/null 2>&1 && ls /etc/postgresql >/dev/null 2>&1; then
  for v in $(ls /etc/postgresql); do
    pg_ctlcluster --skip-systemctl-redirect "$v" main start >&2 2>&1 || true
  done
fi
for _ in $(seq 1 30); do ready && exit 0; sleep 1; done
# No cluster to start: make a private one (trust auth) on the same port.
pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
if [ -n "$pgbin" ] && [ "$(id -u)" = 0 ]; then
  dir=/tmp/mdw-pg
  if [ ! -s "$dir/PG_VERSION" ]; then
    mkdir -p "$dir" && chown postgres "$dir"
    su postgres -c "$pgbin/initdb -q -A trust -U postgres -D $dir" >&2
  fi
  su postgres -c "$pgbin/pg_ctl -D $dir -o '-p $port -k /tmp -c listen_addresses=$host' -l $dir/log -w start" >&2
  psql -h "$host" -p "$port" -U postgres -c "CREATE ROLE root SUPERUSER LOGIN" >/dev/null 2>&1 || true
  psql -h "$host" -p "$port" -U postgres -c "CREATE DATABASE test" >/dev/null 2>&1 || true
fi
for _ in $(seq 1 15); do ready && exit 0; sleep 1; done
if [ "${CI:-}" = "true" ]; then
  echo "error: PostgreSQL is unreachable at $host:$port and could not be started" >&2
  exit 1
fi
echo "warning: PostgreSQL is unreachable at $host:$port; PostgreSQL tests will be skipped" >&2
exit 0
