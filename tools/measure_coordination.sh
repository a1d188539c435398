#!/bin/sh
# What each coordination point costs PostgreSQL per request, measured with pgbench against a
# baseline transaction in the same run: a transaction-scoped advisory lock (a singleton), and the
# rate counter's conditional upsert (one per authenticated request).
# usage: tools/measure_coordination.sh postgres://postgres@127.0.0.1:5432/test [seconds] [clients]
set -eu
url=$1
secs=${2:-5}
clients=${3:-1}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
psql "$url" -qc "CREATE TABLE IF NOT EXISTS bench_rate_counters (tenant varchar(64) PRIMARY KEY,
  minute_start bigint, minute_count bigint, day_start bigint, day_count bigint)"
printf 'BEGIN;\nSELECT 1;\nCOMMIT;\n' > "$dir/baseline.sql"
printf '\\set k random(1, 1000)\nBEGIN;\nSELECT pg_advisory_xact_lock(:k);\nCOMMIT;\n' > "$dir/advisory.sql"
cat > "$dir/rate.sql" <<'SQL'
\set t random(1, 100)
INSERT INTO bench_rate_counters (tenant, minute_start, minute_count, day_start, day_count)
VALUES ('t' || :t, 0, 1, 0, 1) ON CONFLICT (tenant) DO UPDATE SET
minute_count = CASE WHEN excluded.minute_start > bench_rate_counters.minute_start THEN excluded.minute_count ELSE bench_rate_counters.minute_count + excluded.minute_count END,
day_count = CASE WHEN excluded.day_start > bench_rate_counters.day_start THEN excluded.day_count ELSE bench_rate_counters.day_count + excluded.day_count END
WHERE bench_rate_counters.minute_count + excluded.minute_count <= 1000000000
RETURNING minute_count, day_count;
SQL
for script in baseline advisory rate; do
  latency=$(pgbench -n -c "$clients" -T "$secs" -f "$dir/$script.sql" "$url" 2>/dev/null |
    sed -n 's/^latency average = \(.*\)$/\1/p')
  echo "$script: $latency per transaction ($clients client(s))"
done
psql "$url" -qc "DROP TABLE bench_rate_counters"
