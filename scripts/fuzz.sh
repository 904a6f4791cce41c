#!/usr/bin/env bash
# Runs every fuzz target for FUZZTIME (default 30000x: that many inputs)
# beyond its committed seed corpus (which plain `go test` already runs).
# make test calls it, so CI fuzzes each decoder that takes outside input a
# little on every run; a finding fails the run and is written under the
# package's testdata/fuzz. The default is a count, not a duration: with a
# duration, Go 1.26's fuzzing coordinator can report its own stop deadline
# as a failure ("context deadline exceeded", no input written) when the
# machine is busy (go.dev/issue/75804, fixed in Go 1.27).
# For a longer session: FUZZTIME=10m scripts/fuzz.sh
set -euo pipefail
cd "$(dirname "$0")/.."
FUZZTIME=${FUZZTIME:-30000x}

# module  package  target
TARGETS=(
	"pkg ./contract FuzzDecode"
	"pkg ./contract FuzzDecodeReceived"
	"services/notification-api ./internal/api FuzzDecodeCursor"
	"services/realtime-gateway ./internal/engineio FuzzDecodePayload"
	"services/realtime-gateway ./internal/engineio FuzzDecode"
	"services/realtime-gateway ./internal/socketio FuzzDecode"
	"services/realtime-gateway ./internal/gateway FuzzDecodePlain"
	"services/realtime-gateway ./internal/hub FuzzFrames"
	"services/realtime-gateway ./internal/hub FuzzScanValue"
)

echo "==> fuzzing each target for $FUZZTIME"
for t in "${TARGETS[@]}"; do
	read -r module pkg target <<<"$t"
	(cd "$module" && go test -run '^$' -fuzz "^${target}\$" -fuzztime "$FUZZTIME" "$pkg")
done
