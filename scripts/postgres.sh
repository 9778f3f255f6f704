#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the tests, on a free port on 127.0.0.1, run as a non-root user.
#   source scripts/postgres.sh; apex_pg_start   -> exports APEX_TEST_POSTGRES (an Npgsql connection string)
#   apex_pg_stop                                 -> stops it and removes its files
# Installs PostgreSQL from Debian's packages when it is missing.

apex_pg_bindir() {
  ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
}

apex_pg_install() {
  if [ -n "$(apex_pg_bindir)" ] && [ -x "$(apex_pg_bindir)/initdb" ]; then return 0; fi
  echo "postgres.sh: installing PostgreSQL from Debian's packages" >&2
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq postgresql >/dev/null
}

# shellcheck source=ports.sh
source "$(dirname "${BASH_SOURCE[0]}")/ports.sh"

apex_pg_start() {
  apex_pg_install
  local bin; bin=$(apex_pg_bindir)
  APEX_PG_DIR=$(mktemp -d /tmp/apex-pg.XXXXXX)
  APEX_PG_PORT=$(apex_free_port)
  APEX_PG_RUN=()
  if [ "$(id -u)" -eq 0 ]; then
    # PostgreSQL refuses to run as root.
    id -u postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
    chown postgres "$APEX_PG_DIR"
    APEX_PG_RUN=(runuser -u postgres --)
  fi
  "${APEX_PG_RUN[@]}" "$bin/initdb" -D "$APEX_PG_DIR/data" -U apex --auth=trust -E UTF8 >/dev/null
  local attempt
  for attempt in 1 2 3 4 5; do
    # fsync off: a throwaway cluster for tests, never for data anyone keeps.
    if "${APEX_PG_RUN[@]}" "$bin/pg_ctl" -D "$APEX_PG_DIR/data" -l "$APEX_PG_DIR/log" -w -t 60 \
      -o "-p $APEX_PG_PORT -k $APEX_PG_DIR -c listen_addresses=127.0.0.1 -c max_connections=400 -c fsync=off -c synchronous_commit=off" start >/dev/null; then
      break
    fi
    if [ "$attempt" -eq 5 ]; then
      echo "postgres.sh: PostgreSQL did not start:" >&2; tail -n 20 "$APEX_PG_DIR/log" >&2; rm -rf "$APEX_PG_DIR"; return 1
    fi
    APEX_PG_PORT=$(apex_free_port)
  done
  export APEX_TEST_POSTGRES="Host=127.0.0.1;Port=$APEX_PG_PORT;Username=apex;Database=postgres;Pooling=true;Maximum Pool Size=40"
  echo "postgres.sh: PostgreSQL $("$bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$APEX_PG_PORT" >&2
}

apex_pg_stop() {
  [ -n "${APEX_PG_DIR:-}" ] || return 0
  "${APEX_PG_RUN[@]}" "$(apex_pg_bindir)/pg_ctl" -D "$APEX_PG_DIR/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$APEX_PG_DIR"
}
