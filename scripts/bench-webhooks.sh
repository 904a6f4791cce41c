#!/usr/bin/env bash
# The webhook-dispatcher benchmark (make bench-webhooks): 100 webhooks on a
# local keep-alive receiver and 50,000 events, first as fast as they can be
# published (sustained throughput), then paced at 3,000 events/s (latency);
# each with all endpoints healthy and with 10 of them hanging until the
# 10 s timeout. Needs DATABASE_URL (with-postgres.sh sets it).
set -euo pipefail
cd "$(dirname "$0")/.."
BENCH=${BENCH:-./bin/webhook-bench}
EVENTS=${EVENTS:-50000}
RATE=${RATE:-3000}
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB; $(uptime)"
for rate in 0 "$RATE"; do
	for hanging in 0 10; do
		echo
		echo "--- load before the run: $(uptime | sed 's/.*load/load/')"
		"$BENCH" -webhooks 100 -events "$EVENTS" -rate "$rate" -hanging "$hanging"
	done
done
