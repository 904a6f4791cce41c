#!/usr/bin/env bash
# `make bench-floors`: what the building blocks of ingest and of the list
# endpoint cost on this machine, measured as the service benchmarks measure
# the services (CPU-seconds of each process from /proc), so that the targets
# of BENCHMARKS.md can be set against what no code change in the services
# removes:
#   1. floors nats: nats-server's CPU per message for core NATS, a JetStream
#      publish (EVENTS settings), a publish with RePublish to a subscriber
#      (NOTIFY settings), a pull consumer set up as ingest's, and the chain
#      of one ingest event (producer → EVENTS → consumer → NOTIFY → live);
#   2. floors http: a minimal net/http server (a child process) with and
#      without one prepared PostgreSQL statement, at a constant rate: its CPU
#      and PostgreSQL's per request, with GOMAXPROCS 2 and 1.
# Runs on its own PostgreSQL cluster and nats-server (scripts/bench-lib.sh),
# removed at exit; nats-server's log is kept in bin/bench/floors-nats.log.
# Settings (environment): BENCH_FLOORS_N (messages per NATS run, 100000),
# BENCH_FLOORS_RATE (requests/s, 500), BENCH_FLOORS_DURATION (per HTTP load,
# 20s), BENCH_FLOORS_LOADS (the HTTP loads, see floors http -h).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bench-lib.sh

N=${BENCH_FLOORS_N:-100000}
RATE=${BENCH_FLOORS_RATE:-500}
DURATION=${BENCH_FLOORS_DURATION:-20s}
LOADS=${BENCH_FLOORS_LOADS:-db,nodb@2,nodb@1,db@1}

[ -x ./bin/floors ] || { echo "bench-floors: ./bin/floors is missing: run make bench-floors" >&2; exit 1; }
trap 'bench_finish floors- nats' EXIT

bench_begin
bench_sql "CREATE DATABASE floors"
say "floors nats: $N messages per run, on streams it creates and deletes"
./bin/floors nats -nats "$BENCH_NATS_URL" -pid "$BENCH_NATS_PID" -n "$N" || BENCH_FAILED+=(nats)
say "floors http: $RATE requests/s for $DURATION per load ($LOADS)"
./bin/floors http -db "$(bench_db_url floors)" -rate "$RATE" -duration "$DURATION" -loads "$LOADS" || BENCH_FAILED+=(http)
bench_end bench-floors
