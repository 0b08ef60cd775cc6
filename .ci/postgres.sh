#!/usr/bin/env bash
# Start a throwaway PostgreSQL server for the integration tests; print its URL on stdout.
# Installs Debian's postgresql when no server binary is found (CI runs as root on a clean machine).
set -euo pipefail
PGPORT="${OPENITB_PG_PORT:-55432}"
PGDATA="${OPENITB_PG_DATA:-/tmp/openitb-ci-pg}"
bindir=""
for d in /usr/lib/postgresql/*/bin; do
  if [ -x "$d/postgres" ]; then bindir="$d"; fi
done
if [ -z "$bindir" ]; then
  echo "installing postgresql (apt-get)" >&2
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >&2
  for d in /usr/lib/postgresql/*/bin; do
    if [ -x "$d/postgres" ]; then bindir="$d"; fi
  done
fi
run_as=()
if [ "$(id -u)" = "0" ]; then
  id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
  run_as=(runuser -u postgres --)
fi
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  rm -rf "$PGDATA"; mkdir -p "$PGDATA"
  [ "$(id -u)" = "0" ] && chown postgres "$PGDATA"
  "${run_as[@]}" "$bindir/initdb" -D "$PGDATA" -U openitb --auth=trust -E UTF8 >&2
fi
if ! "${run_as[@]}" "$bindir/pg_ctl" -D "$PGDATA" status >/dev/null 2>&1; then
  "${run_as[@]}" "$bindir/pg_ctl" -D "$PGDATA" -l "$PGDATA/server.log" -w \
    -o "-p $PGPORT -k /tmp -c listen_addresses=127.0.0.1 -c fsync=off" start >&2
fi
"$bindir/psql" -h 127.0.0.1 -p "$PGPORT" -U openitb -d postgres -tAc \
  "SELECT 1 FROM pg_database WHERE datname='openitb_test'" | grep -q 1 \
  || "$bindir/createdb" -h 127.0.0.1 -p "$PGPORT" -U openitb openitb_test >&2
echo "postgresql://openitb@127.0.0.1:$PGPORT/openitb_test"
