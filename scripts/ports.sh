#!/usr/bin/env bash
# A free TCP port on 127.0.0.1 for a throwaway server of the tests (sourced by postgres.sh and redis.sh).

apex_free_port() {
  local port
  # Below the kernel's ephemeral range, so that no client socket of the tests can hold it.
  for _ in $(seq 1 50); do
    port=$((15000 + RANDOM % 15000))
    if ! (echo > "/dev/tcp/127.0.0.1/$port") 2>/dev/null; then echo "$port"; return 0; fi
  done
  return 1
}
