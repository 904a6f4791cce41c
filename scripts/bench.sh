#!/usr/bin/env bash
# `make bench`: the notification-api benchmarks against a real notifyd.
#
# Runs under with-postgres.sh (DATABASE_URL points at a server that answers)
# after `make build bench-tools`. For each benchmark it starts ./bin/notifyd on its own
# ports, with a fresh JetStream store in a temporary directory and its own
# database on the same server, runs `notifybench`, and stops notifyd:
#   ingest  database notify_bench_ingest, recreated every run: the COPY
#           ceiling is measured into an empty table, so ingest starts empty too
#   list    database notify_bench_list, kept between runs: the 5M-row seed is
#           loaded once (a marker row records it) and reused
# notifyd's logs are kept in bin/bench/ (ingest.log, list.log).
# Settings (environment): BENCH_HTTP_ADDR, BENCH_NATS_LISTEN, BENCH_EVENTS,
# BENCH_PACED_RATE, BENCH_LIST_ROWS, BENCH_LIST_USERS, BENCH_LIST_RATE,
# BENCH_LIST_DURATION.
set -euo pipefail
cd "$(dirname "$0")/.."

HTTP_ADDR=${BENCH_HTTP_ADDR:-127.0.0.1:48080}
NATS_LISTEN=${BENCH_NATS_LISTEN:-127.0.0.1:44223}
EVENTS=${BENCH_EVENTS:-200000}
PACED_RATE=${BENCH_PACED_RATE:-10000}
LIST_ROWS=${BENCH_LIST_ROWS:-5000000}
LIST_USERS=${BENCH_LIST_USERS:-10000}
LIST_RATE=${BENCH_LIST_RATE:-500}
LIST_DURATION=${BENCH_LIST_DURATION:-30s}

say() { printf '==> %s\n' "$*"; }

: "${DATABASE_URL:?run through scripts/with-postgres.sh (make bench)}"
for bin in notifyd notifybench; do
	[ -x "bin/$bin" ] || { echo "bench: bin/$bin is missing: run make build bench-tools" >&2; exit 1; }
done
PSQL=$(command -v psql || ls -d /usr/lib/postgresql/*/bin/psql 2>/dev/null | sort -V | tail -n 1 || true)
[ -n "$PSQL" ] || { echo "bench: psql not found (Debian: apt-get install postgresql-client)" >&2; exit 1; }

# db_url NAME: DATABASE_URL with its database replaced by NAME.
db_url() {
	local base=${DATABASE_URL%%\?*} query=""
	[[ $DATABASE_URL == *\?* ]] && query="?${DATABASE_URL#*\?}"
	echo "${base%/*}/$1$query"
}
sql() { "$PSQL" "$(db_url postgres)" -qAtc "$1"; }

TMP=$(mktemp -d)
NOTIFYD_PID=""
NOTIFYD_LOG=""
stop_notifyd() {
	[ -n "$NOTIFYD_PID" ] || return 0
	kill "$NOTIFYD_PID" 2>/dev/null || true
	wait "$NOTIFYD_PID" 2>/dev/null || true
	NOTIFYD_PID=""
}
finish() {
	local status=$?
	if [ "$status" -ne 0 ] && [ -n "$NOTIFYD_LOG" ]; then
		echo "bench: failed; the end of notifyd's log:" >&2
		tail -n 20 "$NOTIFYD_LOG" >&2
	fi
	stop_notifyd
	mkdir -p bin/bench && cp "$TMP"/*.log bin/bench/ 2>/dev/null || true
	rm -rf "$TMP"
}
trap finish EXIT

# start_notifyd NAME DB: notifyd on the bench ports, fresh JetStream store.
start_notifyd() {
	local name=$1 db=$2
	mkdir -p "$TMP/$name"
	NOTIFYD_LOG=$TMP/$name.log
	DATABASE_URL=$(db_url "$db") HTTP_ADDR=$HTTP_ADDR NATS_LISTEN=$NATS_LISTEN NATS_URL= \
		DATA_DIR="$TMP/$name" LOG_LEVEL=warn ./bin/notifyd >"$TMP/$name.log" 2>&1 &
	NOTIFYD_PID=$!
	for _ in $(seq 100); do
		if curl -sf "http://$HTTP_ADDR/readyz" >/dev/null 2>&1; then return 0; fi
		if ! kill -0 "$NOTIFYD_PID" 2>/dev/null; then break; fi
		sleep 0.2
	done
	echo "bench: notifyd did not become ready on $HTTP_ADDR; its log:" >&2
	cat "$TMP/$name.log" >&2
	exit 1
}

say "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), PostgreSQL $(sql 'SHOW server_version') at $(db_url '')"
say "uptime: $(uptime)"
start=$(date +%s)

say "ingest: fresh database notify_bench_ingest, notifyd on $HTTP_ADDR, NATS $NATS_LISTEN"
sql "DROP DATABASE IF EXISTS notify_bench_ingest WITH (FORCE)"
sql "CREATE DATABASE notify_bench_ingest"
start_notifyd ingest notify_bench_ingest
say "ingest 1/2: $EVENTS events as fast as JetStream takes them (throughput), then one COPY of the same rows (ceiling)"
./bin/notifybench ingest -nats "nats://$NATS_LISTEN" -db "$(db_url notify_bench_ingest)" -pid "$NOTIFYD_PID" -events "$EVENTS"
say "uptime: $(uptime)"
say "ingest 2/2: $EVENTS events paced at $PACED_RATE/s (latency when not saturated)"
./bin/notifybench ingest -nats "nats://$NATS_LISTEN" -db "$(db_url notify_bench_ingest)" -pid "$NOTIFYD_PID" -events "$EVENTS" -rate "$PACED_RATE" -copy=false
stop_notifyd
say "uptime: $(uptime)"

say "list: database notify_bench_list (seed kept between runs)"
if [ -z "$(sql "SELECT 1 FROM pg_database WHERE datname = 'notify_bench_list'")" ]; then
	sql "CREATE DATABASE notify_bench_list"
fi
start_notifyd list notify_bench_list
./bin/notifybench list -url "http://$HTTP_ADDR" -db "$(db_url notify_bench_list)" -pid "$NOTIFYD_PID" \
	-rows "$LIST_ROWS" -users "$LIST_USERS" -rate "$LIST_RATE" -duration "$LIST_DURATION"
stop_notifyd
say "uptime: $(uptime)"
say "done in $(($(date +%s) - start))s"
