#!/bin/bash
# The floor of workload E on this machine's PostgreSQL: cog's schema and cog's own claim and
# outcome statements, sent by pgbench (4 clients, as E's 4 processes), with no cog process and
# no definitions join — what PostgreSQL alone costs per task for the history cog keeps.
# Prints the queueing insert's time, the claim + outcome rate and the server's CPU per task.
#
# Run from the repository root: benches/floor/run.sh [server URL without database]
# (default postgres://postgres@127.0.0.1:5432). Needs psql, pgbench and the server on this
# machine (its CPU is read from the postmaster's /proc entry, which counts the backends, its
# children, once they exit).
set -euo pipefail
server=${1:-postgres://postgres@127.0.0.1:5432}
here=$(dirname "$0")
psql -q "$server/postgres" -c "DROP DATABASE IF EXISTS cog_floor" -c "CREATE DATABASE cog_floor"
cargo bench -q --bench pipelines -- --migrate "$server/cog_floor?sslmode=disable" >/dev/null
postmaster=$(pgrep -o -f 'bin/postgres')
cpu() { awk '{print $14 + $15 + $16 + $17}' "/proc/$postmaster/stat"; }
for round in 1 2; do
  psql -q "$server/cog_floor" -f "$here/setup.sql" | grep Time
  psql -q "$server/cog_floor" -c "VACUUM ANALYZE cog_task_run"
  before=$(cpu); start=$(date +%s.%N)
  pgbench -n -M simple -c 4 -j 2 -t 100 -f "$here/work.sql" "$server/cog_floor" 2>&1 | grep -E "^tps|failed"
  end=$(date +%s.%N); after=$(cpu)
  echo "round $round: claim + outcome of 100,000 task runs in $(echo "$end - $start" | bc) s:" \
    "$(echo "100000 / ($end - $start)" | bc) tasks/s, PostgreSQL CPU $(echo "($after - $before) * 10000 / 100000" | bc) µs/task"
done
psql -q "$server/postgres" -c "DROP DATABASE cog_floor"
