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
