#!/usr/bin/env bash
# Runs the benchmarks behind the README's "Current figures" table and prints each figure now against the README's,
# so a change can see what it moved. It informs; it never fails on a regression (exit status 0 unless a benchmark
# itself could not run).
# Usage: bench/compare.sh [suite...]     suites: sse-sqlite sse-postgres sse-postgres-3 load idle (default: all)
#   APEX_COMPARE_README=path   the README to read the recorded figures from (default: README.md)
set -euo pipefail
cd "$(dirname "$0")/.."
readme=${APEX_COMPARE_README:-README.md}
suites=("$@")
[ ${#suites[@]} -gt 0 ] || suites=(sse-sqlite sse-postgres sse-postgres-3 load idle)
out=$(mktemp -d /tmp/apex-compare.XXXXXX)

# The recorded value of a figure: the README's table row whose first cell is `key` (between the compare markers).
recorded() {
  sed -n '/<!-- compare:start -->/,/<!-- compare:end -->/p' "$readme" |
    awk -F'|' -v k="\`$1\`" '{ gsub(/^ +| +$/, "", $2) } $2 == k { v = $4; gsub(/[^0-9.]/, "", v); print v; exit }'
}

# A figure from a benchmark's output: the number after a fixed label.
runs_s() { sed -n 's/^runs\/s \([0-9.]*\).*/\1/p' "$1" | head -n 1; }
first_p99() { sed -n 's/^time to first event.* p99 \([0-9.]*\) ms.*/\1/p' "$1" | head -n 1; }
cpu_run() { sed -n 's/^server CPU .*, \([0-9.]*\) ms per run.*/\1/p' "$1" | head -n 1; }
bytes_run() { sed -n 's/^in all [0-9]* bytes: \([0-9]*\) bytes .*/\1/p' "$1" | head -n 1; }
socket_kb() { sed -n 's/.*(\([0-9.]*\) KB\/socket).*/\1/p' "$1" | head -n 1; }
marginal_kb() { sed -n 's/.*(\([0-9.]*\) KB each, marginal).*/\1/p' "$1" | head -n 1; }
lost() { sed -n 's/^lost \([0-9]*\), duplicated \([0-9]*\), foreign \([0-9]*\).*/\1 \2 \3/p' "$1" | head -n 1 | awk '{ print $1 + $2 + $3 }'; }

rows=()
row() { # key, figure, lower is better (1) or higher (0), value now
  local was; was=$(recorded "$1")
  rows+=("$1|$2|$3|${was:-–}|${4:-–}")
}

run() { # name, command...
  local name=$1; shift
  echo "compare: $name: $*" >&2
  if ! "$@" >"$out/$name.txt" 2>&1; then
    echo "compare: $name failed; its output is in $out/$name.txt" >&2
    tail -n 20 "$out/$name.txt" >&2
    return 1
  fi
}

# The 10,000-run HTTP + SSE load on one node and its five figures: suite name, key prefix, label, provider.
sse_suite() {
  APEX_BENCH_SIZE=1 run "$1" bash bench/run-sse-load.sh "$4" 50 10000 100 || return 1
  local f="$out/$1.txt"
  row "$2-runs" "$3 50 users over HTTP + SSE: runs/s" 0 "$(runs_s "$f")"
  row "$2-first" "$3 same run: first event p99 ms" 1 "$(first_p99 "$f")"
  row "$2-cpu" "$3 same run: server CPU ms a run" 1 "$(cpu_run "$f")"
  row "$2-bytes" "$3 same run: bytes stored a run" 1 "$(bytes_run "$f")"
  row "$2-lost" "$3 same run: lost + duplicated + foreign events" 1 "$(lost "$f")"
}

status=0
for suite in "${suites[@]}"; do
  case "$suite" in
    sse-sqlite) sse_suite "$suite" sse-sqlite "SQLite," sqlite || status=1 ;;
    sse-postgres) sse_suite "$suite" sse-pg "PostgreSQL, 1 node," postgres || status=1 ;;
    sse-postgres-3)
      if APEX_BENCH_NODES=3 run "$suite" bash bench/run-sse-load.sh postgres 50 3000 100; then
        f="$out/$suite.txt"
        row sse-pg3-runs "PostgreSQL, 3 nodes, 50 users: runs/s" 0 "$(runs_s "$f")"
        row sse-pg3-first "PostgreSQL, 3 nodes: first event p99 ms" 1 "$(first_p99 "$f")"
        row sse-pg3-lost "PostgreSQL, 3 nodes: lost + duplicated + foreign events" 1 "$(lost "$f")"
      else status=1; fi ;;
    load)
      if run "$suite" bash bench/run-load.sh 100 5 0; then
        f="$out/$suite.txt"
        row load-runs "bench/run-load.sh 100 5 0 (WebSocket): runs/s" 0 "$(runs_s "$f")"
        row load-first "bench/run-load.sh 100 5 0: first event p99 ms" 1 "$(first_p99 "$f")"
      else status=1; fi ;;
    idle)
      if run "$suite" bash bench/run-load.sh 20 2 5000; then
        row idle-socket "5,000 idle authenticated sockets: KB each" 1 "$(socket_kb "$out/$suite.txt")"
        row idle-socket-marginal "the second 2,500 of them alone (a warm server): KB each" 1 "$(marginal_kb "$out/$suite.txt")"
      else status=1; fi ;;
    *) echo "compare: unknown suite '$suite' (sse-sqlite sse-postgres sse-postgres-3 load idle)" >&2; exit 2 ;;
  esac
done

printf '\n%-18s %-58s %12s %12s %9s\n' key figure README now change
for r in "${rows[@]}"; do
  IFS='|' read -r key figure lower was now <<<"$r"
  change="–"; mark=""
  if [[ "$was" =~ ^[0-9.]+$ && "$now" =~ ^[0-9.]+$ ]] && awk -v w="$was" 'BEGIN { exit !(w > 0) }'; then
    change=$(awk -v w="$was" -v n="$now" 'BEGIN { printf "%+.1f", (n - w) * 100 / w }')
    # Worse by more than the machine's ±10% noise: marked, never failed.
    if awk -v c="$change" -v l="$lower" 'BEGIN { exit !((l == 1 && c > 10) || (l == 0 && c < -10)) }'; then mark=" worse"; fi
    change="$change%"
  fi
  printf '%-18s %-58s %12s %12s %9s%s\n' "$key" "$figure" "$was" "$now" "$change" "$mark"
done
echo "outputs in $out (load average now: $(cut -d' ' -f1-3 /proc/loadavg))"
exit "$status"
