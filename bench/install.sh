# What the benchmarks install when it is missing, shared by bench/run.sh and bench/streams/run.sh
# (sourced, not run). The caller defines say and die.

APT_UPDATED=0
# Installs Debian packages, running apt-get update once first.
apt_install() {
  command -v apt-get >/dev/null 2>&1 || die "$* missing and no apt-get to install it; install it by hand"
  [[ $(id -u) -eq 0 ]] || die "$* missing; installing it needs root (apt-get install -y $*)"
  if ((APT_UPDATED == 0)); then
    say "apt-get update"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    APT_UPDATED=1
  fi
  say "installing $* (missing)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# The newest pgbench of the PostgreSQL installations present, else one on the PATH, else nothing.
find_pgbench() {
  local p
  for p in $(ls -d /usr/lib/postgresql/*/bin/pgbench 2>/dev/null | sort -t/ -k5 -n -r); do
    [[ -x "$p" ]] && { echo "$p"; return; }
  done
  if command -v pgbench >/dev/null 2>&1 && pgbench --version >/dev/null 2>&1; then command -v pgbench; fi
}

# Sets PGBENCH to a working pgbench, installing Debian's package only when none is found.
ensure_pgbench() {
  PGBENCH="$(find_pgbench)"
  if [[ -z "$PGBENCH" ]]; then
    apt_install postgresql-client
    PGBENCH="$(find_pgbench)"
  fi
  if [[ -z "$PGBENCH" ]]; then
    # Debian 12 ships pgbench in the server package (postgresql-15), not the client. Its install must not
    # create and start a cluster of its own: the benchmarks run their own server.
    local major
    major=$(ls /usr/lib/postgresql 2>/dev/null | sort -n | tail -1)
    [[ -n "$major" ]] || die "could not find the PostgreSQL client version to install pgbench for"
    mkdir -p /etc/postgresql-common/createcluster.d
    echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.d/paystream-bench.conf
    say "pgbench is in postgresql-$major on this system; installing it without creating a cluster"
    apt_install "postgresql-$major"
    PGBENCH="$(find_pgbench)"
  fi
  [[ -n "$PGBENCH" ]] || die "pgbench could not be installed"
}

# The Java major version of a java executable ("17", "25"), or nothing if it does not run.
java_major() {
  "$1" -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = \([0-9]*\).*/\1/p'
}

# The Java major of the production image: BP_JVM_VERSION in pom.xml (the buildpack's JRE).
image_java_major() {
  sed -n 's:.*<BP_JVM_VERSION>\([0-9]*\)</BP_JVM_VERSION>.*:\1:p' "$1/pom.xml" | head -1
}

# Sets APP_JAVA to a java executable of the image's Java major, so that the application is measured on
# the JVM it runs on in production: the one on the PATH if it is that major, else one under
# /usr/lib/jvm, else (with a warning) the one on the PATH. Takes the project directory.
ensure_app_java() {
  local major candidate
  major="$(image_java_major "$1")"
  APP_JAVA="$(command -v java)"
  [[ -n "$major" ]] || return 0
  for candidate in "$APP_JAVA" /usr/lib/jvm/*/bin/java; do
    [[ -x "$candidate" ]] || continue
    if [[ "$(java_major "$candidate")" == "$major" ]]; then
      APP_JAVA="$candidate"
      return 0
    fi
  done
  say "warning: no Java $major (the image's, BP_JVM_VERSION in pom.xml) found on the PATH or under /usr/lib/jvm;" \
    "the application runs on $("$APP_JAVA" --version 2>/dev/null | head -1)"
}
