#!/usr/bin/env bash
# `make bench`: what notification-api costs, and its latency, on this machine.
#
# Runs after `make build bench-tools` on its own PostgreSQL cluster and
# nats-server (scripts/bench-lib.sh: production settings, everything removed
# at exit), with ./bin/notification-api as a process of its own, so that the
# CPU time of each process is known:
#   1. cost of ingest: bursts of events with 1, 10 and 100 recipients each;
#      CPU-seconds per 1,000 events of notification-api, nats-server, the
#      PostgreSQL cluster and the benchmark (these do not depend on how busy
#      the machine is);
#   2. latency of ingest: BENCH_PACED_RATE events/s, 3 runs, each with its
#      load average, CPU pressure and cost;
#   3. the list endpoint over a BENCH_LIST_ROWS-row table: 3 runs, each with
#      its latency, load, and CPU per request.
# notification-api's log is kept in bin/bench/notification-api.log.
# Settings (environment): BENCH_EVENTS (events of the 1-recipient burst; the
# 10- and 100-recipient bursts carry as many notifications), BENCH_PACED_RATE,
# BENCH_PACED_EVENTS, BENCH_RUNS, BENCH_LIST_ROWS, BENCH_LIST_USERS,
# BENCH_LIST_RATE, BENCH_LIST_DURATION, BENCH_RECIPIENTS (the bursts' recipients
# per event, "1 10 100"), BENCH_PHASES (any of "cost latency list": e.g.
# BENCH_PHASES=cost BENCH_RECIPIENTS=1 for the 1-recipient burst alone).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bench-lib.sh

EVENTS=${BENCH_EVENTS:-100000}
PACED_RATE=${BENCH_PACED_RATE:-10000}
PACED_EVENTS=${BENCH_PACED_EVENTS:-100000}
RUNS=${BENCH_RUNS:-3}
LIST_ROWS=${BENCH_LIST_ROWS:-5000000}
LIST_USERS=${BENCH_LIST_USERS:-10000}
LIST_RATE=${BENCH_LIST_RATE:-500}
LIST_DURATION=${BENCH_LIST_DURATION:-30s}
RECIPIENTS=${BENCH_RECIPIENTS:-1 10 100}
PHASES=" ${BENCH_PHASES:-cost latency list} "
phase() { [[ $PHASES == *" $1 "* ]]; }

API_BIN=${BENCH_API_BIN:-./bin/notification-api}
for bin in "$API_BIN" ./bin/notifybench; do
	[ -x "$bin" ] || { echo "bench: $bin is missing: run make build bench-tools" >&2; exit 1; }
done

# The tokens of the list benchmark: notifybench signs them with the same
# $JWT_SECRET.
JWT_SECRET=$(head -c 48 /dev/urandom | base64)
export JWT_SECRET
API_PID=""
failed=() # latency runs that failed: the others still run and print
finish() {
	local status=$?
	if [ "$status" -ne 0 ] && [ -f "$BENCH_TMP/api.log" ]; then
		echo "bench: failed; the end of notification-api's log:" >&2
		tail -n 20 "$BENCH_TMP/api.log" >&2
	fi
	mkdir -p bin/bench && cp "$BENCH_TMP/api.log" bin/bench/notification-api.log 2>/dev/null || true
	bench_cleanup
}
trap finish EXIT

# start_api DB: notification-api on a free port, against the bench's NATS.
start_api() {
	[ -z "$API_PID" ] || { kill "$API_PID"; wait "$API_PID" 2>/dev/null || true; }
	API_ADDR=127.0.0.1:$(bench_free_port)
	DATABASE_URL=$(bench_db_url "$1") NATS_URL=$BENCH_NATS_URL HTTP_ADDR=$API_ADDR LOG_LEVEL=warn \
		"$API_BIN" >>"$BENCH_TMP/api.log" 2>&1 &
	API_PID=$!
	BENCH_PIDS+=("$API_PID")
	for _ in $(seq 150); do
		curl -sf "http://$API_ADDR/readyz" >/dev/null 2>&1 && return 0
		kill -0 "$API_PID" 2>/dev/null || break
		sleep 0.2
	done
	echo "bench: notification-api did not become ready on $API_ADDR" >&2
	exit 1
}

say "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo); commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
say "uptime: $(uptime)"
start=$(date +%s)
bench_postgres_start
bench_nats_start
say "nats-server $BENCH_NATS_URL (pid $BENCH_NATS_PID)"
bench_sql "CREATE DATABASE notify_bench_ingest"
start_api notify_bench_ingest
INGEST=(./bin/notifybench ingest -nats "$BENCH_NATS_URL" -db "$(bench_db_url notify_bench_ingest)" -pid "$API_PID" -copy=false)
PARTIES=(notification-api="$API_PID" nats-server="$BENCH_NATS_PID" postgresql=cluster:"$BENCH_PG_PID" benchmark=self)

for r in $RECIPIENTS; do
	phase cost || break
	n=$((EVENTS / r))
	say "ingest cost, $r recipient(s) per event: $n events ($((n * r)) notifications) as fast as JetStream takes them"
	bench_cost_start "${PARTIES[@]}"
	"${INGEST[@]}" -events "$n" -recipients "$r"
	bench_cost_report "$n" events
	bench_cost_report "$((n * r))" notifications
done

for i in $(seq "$RUNS"); do
	phase latency || break
	say "ingest latency, run $i/$RUNS: $PACED_EVENTS events paced at $PACED_RATE/s"
	bench_cost_start "${PARTIES[@]}"
	"${INGEST[@]}" -events "$PACED_EVENTS" -rate "$PACED_RATE" || failed+=("ingest latency run $i")
	bench_cost_report "$PACED_EVENTS" events
done

phase list && {
say "list: $LIST_ROWS rows over $LIST_USERS users (seeded once), $RUNS runs at $LIST_RATE requests/s"
bench_sql "CREATE DATABASE notify_bench_list"
start_api notify_bench_list
for i in $(seq "$RUNS"); do
	say "list, run $i/$RUNS"
	./bin/notifybench list -url "http://$API_ADDR" -db "$(bench_db_url notify_bench_list)" -pid "$API_PID" \
		-rows "$LIST_ROWS" -users "$LIST_USERS" -rate "$LIST_RATE" -duration "$LIST_DURATION" || failed+=("list run $i")
done
}
say "uptime: $(uptime)"
say "done in $(($(date +%s) - start))s; removing the cluster and the JetStream store"
if [ ${#failed[@]} -gt 0 ]; then
	echo "bench: failed (each run's reason above): ${failed[*]}" >&2
	exit 1
fi
