#!/usr/bin/env bash
# Starts a Release server (SQLite, throwaway file) and runs Apex.Bench upload-load against it: N users upload a large CSV
# at once while another user renames a thread in a loop. Prints the other user's write latency and the server's RSS.
# Usage: bench/run-upload-load.sh [uploads] [rows]
# Environment:
#   APEX_BENCH_SERVER_DLL=path  the server to measure (default: this tree's Release build), e.g. an older commit's build
#   APEX_BENCH_OUT=dir          where the server's log is kept (default: a new /tmp/apex-upload.* dir)
#   APEX_BENCH_SERVER_ENV="K=V K=V"  extra environment for the server (e.g. Apex__Workloads__UploadChunkRows=500)
set -euo pipefail
cd "$(dirname "$0")/.."
uploads=${1:-3}; rows=${2:-200000}
out=${APEX_BENCH_OUT:-$(mktemp -d /tmp/apex-upload.XXXXXX)}
port=5099
dir=$(mktemp -d)
server=""
cleanup() {
  if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
  rm -rf "$dir"
}
trap cleanup EXIT

dotnet build Apex.slnx -c Release --nologo -v quiet >/dev/null
dll=${APEX_BENCH_SERVER_DLL:-src/Apex.Server/bin/Release/net10.0/Apex.Server.dll}
env Apex__Storage__Provider=sqlite "Apex__Storage__ConnectionString=$dir/apex.db" \
  Apex__Limits__AuthRequestsPerMinutePerAddress=100000 \
  Logging__LogLevel__Default=Warning ${APEX_BENCH_SERVER_ENV:-} \
  dotnet "$dll" --urls "http://127.0.0.1:$port" >"$out/server.log" 2>&1 &
server=$!
until curl -sf "http://127.0.0.1:$port/readyz" >/dev/null; do
  kill -0 "$server" 2>/dev/null || { echo "the server exited:" >&2; tail -n 30 "$out/server.log" >&2; exit 1; }
  sleep 0.2
done
echo "server $dll, pid $server; log in $out"
dotnet bench/Apex.Bench/bin/Release/net10.0/Apex.Bench.dll upload-load --url "http://127.0.0.1:$port/" --uploads "$uploads" --rows "$rows" --pid "$server"
