#!/usr/bin/env bash
# Runs every test of the solution and ends with one line computed from the TRX results:
#   N passed, N failed, N skipped
# It installs what the tests need on a fresh Debian machine by itself.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
results="$root/artifacts/test-results"
rm -rf "$results"
mkdir -p "$results"

if ! command -v dotnet >/dev/null 2>&1; then
  echo "test.sh: the .NET SDK (dotnet) is required; see global.json for the version" >&2
  exit 2
fi
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1

# Debian's Chromium for the browser tests (tests/Apex.Tests/WebApp), installed when missing: Playwright's
# own browser download is not used, its bundled driver (node under .playwright/) runs offline.
if [ ! -x /usr/bin/chromium ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi

# A real MCP server from the npm registry for the MCP tests (tests/Apex.Tests/Mcp), installed once into artifacts/.
node_dir="$root/artifacts/node"
everything="$node_dir/node_modules/@modelcontextprotocol/server-everything/dist/index.js"
# ... the official TypeScript MCP client, which drives Apex's own /mcp, and the AG-UI and openai clients, which drive
# /api/agui and /v1 (tests/Apex.Tests/Interop).
if [ ! -f "$everything" ] || [ ! -d "$node_dir/node_modules/@modelcontextprotocol/sdk" ] \
  || [ ! -d "$node_dir/node_modules/@ag-ui/client" ] || [ ! -d "$node_dir/node_modules/openai" ]; then
  npm install --no-audit --no-fund --silent --prefix "$node_dir" @modelcontextprotocol/server-everything@2026.8.31 @modelcontextprotocol/sdk@1.32.2 \
    @ag-ui/client@1.0.0 @ag-ui/core@1.0.0 openai@7.59.0 >/dev/null
fi
export APEX_TEST_MCP_EVERYTHING="$everything" APEX_TEST_NODE_MODULES="$node_dir/node_modules"

# A throwaway PostgreSQL cluster for the store conformance and multi-node tests (installed when missing).
source scripts/postgres.sh
# ... and a throwaway Redis for the tests of Apex:Redis (tests/Apex.Tests/Cluster/Redis*; installed when missing).
source scripts/redis.sh
trap 'apex_pg_stop; apex_redis_stop' EXIT
apex_pg_start
apex_redis_start

dotnet build Apex.slnx -c Release --nologo -v quiet
set +e
dotnet test Apex.slnx -c Release --no-build --nologo \
  --logger "trx;LogFilePrefix=apex" --logger "console;verbosity=normal" \
  --results-directory "$results" "$@"
status=$?
set -e

passed=0; failed=0; skipped=0; files=0
for trx in "$results"/*.trx; do
  [ -e "$trx" ] || continue
  files=$((files + 1))
  counters=$(grep -o '<Counters [^>]*>' "$trx" | head -n 1)
  value() { echo "$counters" | sed -n "s/.* $1=\"\([0-9]*\)\".*/\1/p"; }
  passed=$((passed + $(value passed)))
  failed=$((failed + $(value failed) + $(value error) + $(value timeout) + $(value aborted)))
  skipped=$((skipped + $(value notExecuted)))
done
# The failed tests by name with the head of their message, just above the summary, where a log's tail shows them.
if [ "$files" -gt 0 ] && [ "$failed" -gt 0 ]; then
  python3 - "$results"/*.trx <<'PY' || true
import sys, xml.etree.ElementTree as ET
ns = {"t": "http://microsoft.com/schemas/VisualStudio/TeamTest/2010"}
for path in sys.argv[1:]:
    for r in ET.parse(path).getroot().iterfind(".//t:UnitTestResult", ns):
        if r.get("outcome") in ("Passed", "NotExecuted"):
            continue
        text = r.findtext(".//t:ErrorInfo/t:Message", default="", namespaces=ns)
        message = [line.strip() for line in text.splitlines() if line.strip()]
        print(f"FAILED {r.get('testName')} ({r.get('duration')})")
        for line in message[:6]:
            print(f"    {line[:400]}")
PY
fi
if [ "$files" -eq 0 ]; then
  echo "test.sh: no test results were written (the test run crashed?)" >&2
  failed=$((failed + 1))
fi
if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then
  # The runner failed without a failed test (a crashed host, a build error): never report that as green.
  failed=1
fi
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
