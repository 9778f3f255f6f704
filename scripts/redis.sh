#!/usr/bin/env bash
# A throwaway Redis server for the tests, on a free port on 127.0.0.1, nothing persisted.
#   source scripts/redis.sh; apex_redis_start   -> exports APEX_TEST_REDIS (a StackExchange.Redis configuration string)
#                                                  and APEX_TEST_REDIS_SERVER (the redis-server binary, for tests that
#                                                  start and stop a Redis of their own)
#   apex_redis_stop                              -> stops it and removes its files
# Installs redis-server from Debian's packages when it is missing.

apex_redis_install() {
  if command -v redis-server >/dev/null 2>&1; then return 0; fi
  echo "redis.sh: installing redis-server from Debian's packages" >&2
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq redis-server >/dev/null
}

# shellcheck source=ports.sh
source "$(dirname "${BASH_SOURCE[0]}")/ports.sh"

apex_redis_start() {
  apex_redis_install
  APEX_REDIS_DIR=$(mktemp -d /tmp/apex-redis.XXXXXX)
  local attempt
  for attempt in 1 2 3 4 5; do
    APEX_REDIS_PORT=$(apex_free_port)
    # No snapshots, no append-only file: a throwaway server for tests, never for data anyone keeps.
    redis-server --bind 127.0.0.1 --port "$APEX_REDIS_PORT" --dir "$APEX_REDIS_DIR" --save "" --appendonly no \
      --daemonize yes --pidfile "$APEX_REDIS_DIR/redis.pid" --logfile "$APEX_REDIS_DIR/log" >/dev/null
    local i
    for i in $(seq 1 50); do
      if redis-cli -h 127.0.0.1 -p "$APEX_REDIS_PORT" ping 2>/dev/null | grep -q PONG; then break; fi
      sleep 0.1
    done
    if redis-cli -h 127.0.0.1 -p "$APEX_REDIS_PORT" ping 2>/dev/null | grep -q PONG; then break; fi
    if [ "$attempt" -eq 5 ]; then
      echo "redis.sh: Redis did not start:" >&2; tail -n 20 "$APEX_REDIS_DIR/log" >&2; rm -rf "$APEX_REDIS_DIR"; return 1
    fi
  done
  export APEX_TEST_REDIS="127.0.0.1:$APEX_REDIS_PORT"
  export APEX_TEST_REDIS_SERVER
  APEX_TEST_REDIS_SERVER=$(command -v redis-server)
  echo "redis.sh: Redis $(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p') on $APEX_TEST_REDIS" >&2
}

apex_redis_stop() {
  [ -n "${APEX_REDIS_DIR:-}" ] || return 0
  if [ -f "$APEX_REDIS_DIR/redis.pid" ]; then kill "$(cat "$APEX_REDIS_DIR/redis.pid")" 2>/dev/null || true; fi
  sleep 0.2
  rm -rf "$APEX_REDIS_DIR"
  unset APEX_REDIS_DIR
}
