#!/usr/bin/env bash
# What tracing costs notification-api: `notifybench ingest` (a burst of
# 30,000 one-recipient events) against notifyd with tracing off, then on
# with every event traced and exported to a local OTLP/HTTP sink
# (otlp-sink.py, which counts the bytes it receives). Reports CPU per
# event from /proc (see docs/napi-bench.md). Needs make build bench-tools, psql, curl,
# python3, and DATABASE_URL (a role that may create databases):
#   DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres scripts/bench/tracing/run.sh
set -euo pipefail
cd "$(dirname "$0")/../../.."
: "${DATABASE_URL:?set DATABASE_URL}"
freeport() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
base=${DATABASE_URL%%\?*}
base=${base%/*}
EVENTS=${EVENTS:-30000}
for mode in off on; do
	db=notify_bench_tracing_$mode
	psql "$base/postgres" -qAtc "DROP DATABASE IF EXISTS $db" 2>/dev/null
	psql "$base/postgres" -qAtc "CREATE DATABASE $db"
	dir=$(mktemp -d)
	http=$(freeport) nats=$(freeport) sink=$(freeport)
	extra=()
	if [ "$mode" = on ]; then
		python3 scripts/bench/tracing/otlp-sink.py "$sink" 2>"$dir/sink.log" &
		SINK=$!
		extra=("OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:$sink")
	fi
	env "${extra[@]}" DATABASE_URL="$base/$db" HTTP_ADDR="127.0.0.1:$http" NATS_LISTEN="127.0.0.1:$nats" NATS_URL= \
		DATA_DIR="$dir/data" LOG_LEVEL=warn ./bin/notifyd >"$dir/notifyd.log" 2>&1 &
	PID=$!
	for _ in $(seq 150); do curl -sf "http://127.0.0.1:$http/readyz" >/dev/null && break; sleep 0.2; done
	echo "== tracing $mode ($(uptime | sed 's/.*load/load/'))"
	./bin/notifybench ingest -nats "nats://127.0.0.1:$nats" -db "$base/$db" -pid "$PID" -events "$EVENTS" -copy=false 2>&1 | grep -v '^ *[0-9.]*s  published'
	kill "$PID"
	wait "$PID" || true
	if [ "$mode" = on ]; then
		sleep 1
		echo "exported to the sink: $(tail -n 1 "$dir/sink.log")"
		kill "$SINK"
	fi
	rm -rf "$dir"
	psql "$base/postgres" -qAtc "DROP DATABASE IF EXISTS $db"
done
