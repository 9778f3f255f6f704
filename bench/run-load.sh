#!/usr/bin/env bash
# Starts a Release server on a throwaway SQLite file (built-in model) and drives it with the load generator.
# Usage: bench/run-load.sh [users] [messages] [idle sockets]
#   APEX_BENCH_IDLE_HOLD=seconds  keep the idle sockets open that long before their RSS is read (default 2), e.g. to take
#                                 `dotnet-gcdump collect -p <server pid>` of the server with them open
#   APEX_BENCH_SERVER_DLL=path    the server to start instead of this tree's Release build (e.g. an earlier commit's,
#                                 built in a git worktree, for a before/after pair)
set -euo pipefail
cd "$(dirname "$0")/.."
users=${1:-100}; messages=${2:-5}; idle=${3:-0}
port=5099
dir=$(mktemp -d)
dotnet build Apex.slnx -c Release --nologo -v quiet
Apex__Storage__ConnectionString="$dir/apex.db" \
Apex__Limits__MaxConnectionsPerUser=1000 \
Apex__Limits__MaxActiveRunsPerUser=8 \
Apex__Limits__AuthRequestsPerMinutePerAddress=100000 \
Logging__LogLevel__Default=Warning \
  dotnet "${APEX_BENCH_SERVER_DLL:-src/Apex.Server/bin/Release/net10.0/Apex.Server.dll}" --urls "http://127.0.0.1:$port" &
server=$!
trap 'kill $server 2>/dev/null; rm -rf "$dir"' EXIT
until curl -sf "http://127.0.0.1:$port/readyz" >/dev/null; do sleep 0.2; done
dotnet bench/Apex.Bench/bin/Release/net10.0/Apex.Bench.dll load --url "http://127.0.0.1:$port/" \
  --users "$users" --messages "$messages" --idle "$idle" --idle-hold "${APEX_BENCH_IDLE_HOLD:-2}" --pid "$server" --seconds 600
echo "server CPU seconds: $(ps -o times= -p $server)"
