#!/usr/bin/env bash
# Samples the server's CPU with perf while bench/run-sse-load.sh drives it, and prints the top entries.
# Usage: bench/profile-sse.sh [sqlite|postgres] [users] [runs] [seconds to sample]
#   APEX_PROFILE_AFTER=30  seconds to wait after the warm-up before sampling (default 3)
# Needs perf (apt-get install -y linux-perf); hardware counters are not required (the cpu-clock event is used).
# JIT-compiled methods are named through the runtime's perf map (DOTNET_PerfMapEnabled=1, /tmp/perf-<pid>.map).
set -euo pipefail
cd "$(dirname "$0")/.."
provider=${1:-postgres}; users=${2:-1}; runs=${3:-1000}; seconds=${4:-15}
out=${APEX_BENCH_OUT:-$(mktemp -d /tmp/apex-profile.XXXXXX)}
mkdir -p "$out"
APEX_BENCH_OUT=$out APEX_BENCH_SERVER_ENV="DOTNET_PerfMapEnabled=1 DOTNET_EnableWriteXorExecute=0 ${APEX_BENCH_SERVER_ENV:-}" \
  bash bench/run-sse-load.sh "$provider" "$users" "$runs" > "$out/load.txt" 2>&1 &
load=$!
until grep -q "warm-up runs, then" "$out/load.txt" 2>/dev/null; do
  kill -0 "$load" 2>/dev/null || { cat "$out/load.txt" >&2; exit 1; }
  sleep 0.5
done
pid=$(sed -n 's/.*server pids \([0-9]*\).*/\1/p' "$out/load.txt")
sleep "${APEX_PROFILE_AFTER:-3}" # past the warm-up runs (longer: past tiered JIT, for the steady state)
perf record -e cpu-clock -F 499 -g -p "$pid" -o "$out/perf.data" -- sleep "$seconds" 2>"$out/perf-record.txt"
wait "$load" || true
cat "$out/load.txt"
echo "--- CPU by module (self), $provider, $users users"
perf report -i "$out/perf.data" --no-children --sort dso --stdio 2>/dev/null | grep -v '^#' | grep -v '^$' | head -15
echo "--- CPU by symbol (self)"
perf report -i "$out/perf.data" --no-children --sort dso,symbol --stdio -g none 2>/dev/null | grep -v '^#' | grep -v '^$' | head -40
echo "--- CPU by symbol (inclusive: share of samples with the method on the stack)"
timeout 300 perf report -i "$out/perf.data" --children --sort symbol --stdio -g none 2>/dev/null | grep -v '^#' | grep -v '^$' | head -60
echo "perf data in $out/perf.data"
