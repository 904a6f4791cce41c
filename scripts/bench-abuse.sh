#!/usr/bin/env bash
# make bench-abuse: the realtime gateway under cheap abuse (issue 8's
# budget). Eight unauthenticated clients flood pings and read slowly for
# 10 s while 1,000 HTTP requests hold a body they never send; prints the
# gateway's RSS growth (budget 64 MB) and /healthz latency throughout
# (budget 50 ms), and how the half-open requests ended (408). It needs no
# database: NATS runs inside the measuring command.
#
# Settings (environment): CLIENTS (8), BODIES (1000), DURATION (10s),
# ADDR (127.0.0.1:18091), NATS (127.0.0.1:14233).
set -euo pipefail
cd "$(dirname "$0")/.."
CLIENTS=${CLIENTS:-8}
BODIES=${BODIES:-1000}
DURATION=${DURATION:-10s}
ADDR=${ADDR:-127.0.0.1:18091}
NATS=${NATS:-127.0.0.1:14233}

make -s build bench-tools
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
echo "commit $(git rev-parse --short HEAD), $(date -u +%FT%TZ), load average $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores"
exec ./bin/gateway-abuse -bin ./bin/realtime-gateway -addr "$ADDR" -nats "$NATS" \
	-clients "$CLIENTS" -bodies "$BODIES" -duration "$DURATION"
