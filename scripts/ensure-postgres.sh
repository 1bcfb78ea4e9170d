#!/usr/bin/env bash
# Make sure a PostgreSQL server answers at 127.0.0.1:5432 (trust auth), starting one if we can.
# Under CI=true an unreachable server is a hard failure: the store suite must never be skipped.
#
# In order: already answering -> done; a Debian cluster configured for this port but down ->
# start it; no such cluster and we are root -> a private trust-auth cluster in $MDW_PG_DIR on
# this port. A server that is running is never stopped or restarted.
set -u
host=${PGHOST_TEST:-127.0.0.1}
port=${PGPORT_TEST:-5432}
dir=${MDW_PG_DIR:-/tmp/mdw-pg}

ready() {
  if command -v pg_isready >/dev/null 2>&1; then
    # Only "accepting connections" counts: a server still starting up refuses logins.
    pg_isready -q -h "$host" -p "$port" -t 2
    return
  fi
  python3 - "$host" "$port" <<'PY'
import socket, sys
s = socket.socket(); s.settimeout(1)
sys.exit(0 if s.connect_ex((sys.argv[1], int(sys.argv[2]))) == 0 else 1)
PY
}

wait_ready() {  # $1: seconds
  for _ in $(seq 1 "$1"); do ready && return 0; sleep 1; done
  return 1
}

ready && exit 0
echo "PostgreSQL is not answering at $host:$port; trying to start it" >&2

# 1. A packaged cluster configured for this port (pg_lsclusters: version cluster port status ...).
started=0
if command -v pg_lsclusters >/dev/null 2>&1; then
  while read -r version cluster cport status _; do
    if [ "$cport" = "$port" ] && [ "$status" = "down" ]; then
      echo "starting PostgreSQL cluster $version/$cluster" >&2
      pg_ctlcluster --skip-systemctl-redirect "$version" "$cluster" start >&2 && started=1
    fi
  done < <(pg_lsclusters -h 2>/dev/null)
fi
if [ "$started" = 1 ] && wait_ready 30; then exit 0; fi

# 2. No cluster to start: make a private one (trust auth) on the same port.
pgbin=""
while read -r candidate; do  # version-sorted, so the newest installed server wins
  [ -x "$candidate/initdb" ] && pgbin=$candidate
done < <(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V)
if [ -n "$pgbin" ] && [ "$(id -u)" = 0 ] && id postgres >/dev/null 2>&1; then
  echo "starting a private PostgreSQL from $pgbin in $dir" >&2
  if [ ! -s "$dir/PG_VERSION" ]; then
    mkdir -p "$dir" && chown postgres "$dir" && chmod 700 "$dir"
    su postgres -c "$pgbin/initdb -A trust -U postgres -D '$dir'" >/dev/null
  fi
  su postgres -c "$pgbin/pg_ctl -D '$dir' -o '-p $port -k /tmp -c listen_addresses=$host' -l '$dir/log' -w start" >&2
  if wait_ready 15; then
    psql -h "$host" -p "$port" -U postgres -c "CREATE ROLE root SUPERUSER LOGIN" >/dev/null 2>&1 || true
    exit 0
  fi
fi

if [ "${CI:-}" = "true" ]; then
  echo "error: PostgreSQL is unreachable at $host:$port and could not be started" >&2
  exit 1
fi
echo "warning: PostgreSQL is unreachable at $host:$port; PostgreSQL tests will be skipped" >&2
exit 0
