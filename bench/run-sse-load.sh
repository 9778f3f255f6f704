#!/usr/bin/env bash
# Starts a Release server (built-in model) on a throwaway SQLite file or a throwaway PostgreSQL cluster
# and drives it with the HTTP + SSE load generator (Apex.Bench sse).
# Usage: bench/run-sse-load.sh [sqlite|postgres] [users] [runs] [warm-up runs]
# Environment:
#   APEX_BENCH_OUT=dir       where the server's (and PostgreSQL's) logs are kept (default: a new /tmp/apex-sse.* dir)
#   APEX_BENCH_PG_STATS=1    load pg_stat_statements in the cluster and print the statements per run at the end
#   APEX_BENCH_PG_EXPLAIN=ms (postgres) auto_explain: the plan, timings and buffers of every statement slower than ms
#                            go to postgres.log in the output dir
#   APEX_BENCH_SERVER_ENV="K=V K=V"  extra environment for the server (e.g. DOTNET_PerfMapEnabled=1)
#   APEX_BENCH_HOLD=1        after the load, wait for Enter before stopping (to attach a profiler)
#   APEX_BENCH_NODES=3       (postgres) start that many identical nodes on one database; users are spread over them
#   APEX_BENCH_REDIS=1       (postgres) also start a throwaway redis-server (scripts/redis.sh) and give every node
#                            Apex:Redis:Configuration: wake-ups over Redis pub/sub instead of NOTIFY, limits cluster-wide
#   APEX_BENCH_SIZE=1        after the load, print the database's bytes per run and per event, table by table (SQLite:
#                            dbstat over the file; PostgreSQL: pg_total_relation_size, indexes and TOAST included)
#   APEX_BENCH_SAMPLE=1      each user loads the sample workload first: the team analyses it and streams its full report
#                            (with APEX_BENCH_SERVER_ENV="Apex__Llm__BuiltInPieces=tokens Apex__Llm__BuiltInDelay=00:00:00.002":
#                            ~500 token pieces, 2 ms apart)
#   APEX_BENCH_SERVER_DLL=path  the server to start instead of the Release build (e.g. a ReadyToRun publish:
#                            dotnet publish src/Apex.Server -c Release -r linux-x64 --self-contained false -p:PublishReadyToRun=true -o DIR)
#   APEX_BENCH_KEEP=1        (sqlite) keep the database file: it is copied to the output dir before clean-up
#   APEX_BENCH_AGENT=bench/agents/react.json  an agent definition: each user defines it and every message names it (the
#                            equal-work ReAct agent: one tool call, then a ~40-token streamed answer); default: the shipped team
set -euo pipefail
cd "$(dirname "$0")/.."
provider=${1:-sqlite}; users=${2:-50}; runs=${3:-3000}; warmup=${4:-100}
case "$provider" in sqlite|postgres) ;; *) echo "usage: $0 [sqlite|postgres] [users] [runs] [warm-up runs]" >&2; exit 2;; esac
out=${APEX_BENCH_OUT:-$(mktemp -d /tmp/apex-sse.XXXXXX)}
mkdir -p "$out"
port=5098
nodes=${APEX_BENCH_NODES:-1}
[ "$provider" = postgres ] || nodes=1
dir=$(mktemp -d)
server=""
servers=()

cleanup() {
  for pid in "${servers[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  if [ "$provider" = postgres ]; then
    [ -n "${APEX_PG_DIR:-}" ] && cp "$APEX_PG_DIR/log" "$out/postgres.log" 2>/dev/null || true
    if declare -f apex_pg_stop >/dev/null; then apex_pg_stop; fi
  fi
  if declare -f apex_redis_stop >/dev/null; then apex_redis_stop; fi
  if [ "${APEX_BENCH_KEEP:-0}" = 1 ] && [ -f "$dir/apex.db" ]; then
    sqlite3 "$dir/apex.db" "PRAGMA wal_checkpoint(TRUNCATE)" >/dev/null 2>&1 || true
    cp "$dir/apex.db" "$out/apex.db"
  fi
  rm -rf "$dir"
}
trap cleanup EXIT

# Bytes per finished run and per event, table by table with its indexes (SQLite: pages in use by dbstat, the WAL included;
# PostgreSQL: pg_total_relation_size after VACUUM, TOAST and indexes included).
storage_size() {
  local q runs events rows total
  if [ "$provider" = sqlite ]; then
    q() { sqlite3 -readonly "$dir/apex.db" "$1"; }
    rows=$(q "SELECT name, SUM(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC")
    total=$(q "SELECT SUM(pgsize) FROM dbstat")
  else
    q() { "${psql[@]}" -F '|' -c "$1"; }
    "${psql[@]}" -c "VACUUM ANALYZE" >/dev/null
    rows=$(q "SELECT c.relname, pg_relation_size(c.oid) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = 'public' AND c.relkind IN ('r', 'i', 't') ORDER BY 2 DESC")
    total=$(q "SELECT SUM(pg_total_relation_size(c.oid)) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relkind = 'r'")
  fi
  runs=$(q "SELECT count(*) FROM runs WHERE status IN ('completed', 'failed', 'cancelled')")
  events=$(q "SELECT count(*) FROM events")
  echo "stored: $runs finished runs, $events events ($(awk -v e="$events" -v r="$runs" 'BEGIN{printf "%.1f", e/r}') a run), by table and index:"
  echo "$rows" | tr '|' ' ' | awk -v r="$runs" '$2 > 0 {printf "  %-36s %12d bytes %8.0f bytes a run\n", $1, $2, $2 / r}'
  awk -v t="$total" -v r="$runs" -v e="$events" 'BEGIN{printf "in all %d bytes: %.0f bytes (%.2f KB) a run, %.0f bytes an event (everything stored / events)\n", t, t/r, t/r/1024, t/e}'
  awk -v t="$total" -v r="$runs" 'BEGIN{printf "a year at 10,000 runs a day: %.1f GB\n", t/r*10000*365/1e9}'
}

dotnet build Apex.slnx -c Release --nologo -v quiet >/dev/null

if [ "$provider" = postgres ]; then
  # shellcheck source=../scripts/postgres.sh
  source scripts/postgres.sh
  apex_pg_start
  psql=("${APEX_PG_RUN[@]}" "$(apex_pg_bindir)/psql" -h 127.0.0.1 -p "$APEX_PG_PORT" -U apex -d postgres -qAtX)
  # Lock waits longer than deadlock_timeout (1 s) and every deadlock with both statements go to the cluster's log.
  "${psql[@]}" -c "ALTER SYSTEM SET log_lock_waits = on" >/dev/null
  if [ -n "${APEX_BENCH_PG_EXPLAIN:-}" ]; then
    # Loaded in this session first, so that ALTER SYSTEM knows the module's settings; every new session loads it.
    "${psql[@]}" -c "LOAD 'auto_explain'" -c "ALTER SYSTEM SET session_preload_libraries = 'auto_explain'" \
      -c "ALTER SYSTEM SET auto_explain.log_min_duration = '${APEX_BENCH_PG_EXPLAIN}ms'" -c "ALTER SYSTEM SET auto_explain.log_analyze = on" \
      -c "ALTER SYSTEM SET auto_explain.log_buffers = on" >/dev/null
  fi
  if [ "${APEX_BENCH_PG_STATS:-0}" = 1 ]; then
    "${psql[@]}" -c "ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'" >/dev/null
    "${APEX_PG_RUN[@]}" "$(apex_pg_bindir)/pg_ctl" -D "$APEX_PG_DIR/data" -w restart >/dev/null
    # track = all: statements inside functions and DO blocks are counted one by one.
    "${psql[@]}" -c "ALTER SYSTEM SET pg_stat_statements.track = 'all'" -c "SELECT pg_reload_conf()" -c "CREATE EXTENSION pg_stat_statements" >/dev/null
  else
    "${psql[@]}" -c "SELECT pg_reload_conf()" >/dev/null
  fi
  storage=(Apex__Storage__Provider=postgres "Apex__Storage__ConnectionString=$APEX_TEST_POSTGRES")
  if [ "${APEX_BENCH_REDIS:-0}" = 1 ]; then
    # shellcheck source=../scripts/redis.sh
    source scripts/redis.sh
    apex_redis_start
    storage+=("Apex__Redis__Configuration=$APEX_TEST_REDIS")
  fi
else
  storage=(Apex__Storage__Provider=sqlite "Apex__Storage__ConnectionString=$dir/apex.db")
fi

urls=""; pids=""
for n in $(seq 0 $((nodes - 1))); do
  log="$out/server.log"; [ "$n" -gt 0 ] && log="$out/server$n.log"
  # shellcheck disable=SC2086 # APEX_BENCH_SERVER_ENV is a list of K=V words.
  env "${storage[@]}" \
    Apex__Limits__MaxConnectionsPerUser=1000 \
    Apex__Limits__MaxActiveRunsPerUser=8 \
    Apex__Limits__AuthRequestsPerMinutePerAddress=100000 \
    Apex__Limits__MessagesPerMinutePerUser=100000 \
    Logging__LogLevel__Default=Warning \
    ${APEX_BENCH_SERVER_ENV:-} \
    dotnet "${APEX_BENCH_SERVER_DLL:-src/Apex.Server/bin/Release/net10.0/Apex.Server.dll}" --urls "http://127.0.0.1:$((port + n))" >"$log" 2>&1 &
  servers+=($!)
  until curl -sf "http://127.0.0.1:$((port + n))/readyz" >/dev/null; do
    kill -0 "${servers[$n]}" 2>/dev/null || { echo "the server exited:" >&2; tail -n 30 "$log" >&2; exit 1; }
    sleep 0.2
  done
  urls="$urls${urls:+,}http://127.0.0.1:$((port + n))/"; pids="$pids${pids:+,}${servers[$n]}"
done
server=${servers[0]}
[ "${APEX_BENCH_PG_STATS:-0}" = 1 ] && "${psql[@]}" -c "SELECT pg_stat_statements_reset()" >/dev/null

signals=$(curl -sf "http://127.0.0.1:$port/readyz" | sed -n 's/.*"signals":"\([a-z]*\)".*/\1/p')
echo "${APEX_BENCH_AGENT:-the shipped team}: $provider, $nodes node(s), wake-ups over ${signals:-notify}, $users users, $runs runs after $warmup warm-up runs; server pids $pids; logs in $out"
status=0
dotnet bench/Apex.Bench/bin/Release/net10.0/Apex.Bench.dll sse --url "$urls" \
  --users "$users" --runs "$runs" --warmup "$warmup" --pid "$pids" --seconds 1800 ${APEX_BENCH_AGENT:+--agent-file "$APEX_BENCH_AGENT"} ${APEX_BENCH_SAMPLE:+--sample-data} || status=$?
echo "server CPU seconds in all (registrations and start-up included): $(ps -o times= -p "$pids" | xargs)"
echo "deadlocks (40P01) in the server log(s): $(cat "$out"/server*.log | grep -c 40P01 || true)"
echo "server log lines with node_lost: $(cat "$out"/server*.log | grep -c node_lost || true)"
if [ "$provider" = postgres ]; then
  echo "deadlocks in the PostgreSQL log: $(grep -c 'deadlock detected' "$APEX_PG_DIR/log" || true)"
  if [ "${APEX_BENCH_PG_STATS:-0}" = 1 ]; then
    finished=$("${psql[@]}" -c "SELECT count(*) FROM runs WHERE status <> 'queued' AND status <> 'running'")
    echo "statements per finished run ($finished runs, warm-up included), by calls:"
    "${psql[@]}" -F ' | ' -c "SELECT round(calls::numeric / $finished, 2), calls, round(total_exec_time::numeric / calls, 3) AS ms_each, left(regexp_replace(query, '\s+', ' ', 'g'), 160)
      FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = 'postgres') ORDER BY calls DESC LIMIT 40" \
      | tee "$out/statements.txt"
  fi
fi
if [ "${APEX_BENCH_SIZE:-0}" = 1 ]; then storage_size | tee "$out/size.txt"; fi
if [ "${APEX_BENCH_HOLD:-0}" = 1 ]; then read -r -p "holding the server (pid $server); Enter stops it " _; fi
exit "$status"
