#!/usr/bin/env bash
# The README's test command: vet, lint and race-enabled tests of every module,
# against a real PostgreSQL (found or started by with-postgres.sh) and
# in-process NATS servers.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/modules.sh

TOOLS=$PWD/.tools
STATICCHECK_VERSION=v0.8.2
if [ ! -x "$TOOLS/staticcheck-$STATICCHECK_VERSION" ]; then
	echo "==> installing staticcheck $STATICCHECK_VERSION into .tools/"
	GOBIN=$TOOLS go install "honnef.co/go/tools/cmd/staticcheck@$STATICCHECK_VERSION"
	mv "$TOOLS/staticcheck" "$TOOLS/staticcheck-$STATICCHECK_VERSION"
fi

echo "==> go vet"
for m in "${MODULES[@]}"; do (cd "$m" && go vet ./...); done
echo "==> staticcheck $STATICCHECK_VERSION"
for m in "${MODULES[@]}"; do (cd "$m" && "$TOOLS/staticcheck-$STATICCHECK_VERSION" ./...); done

for s in scripts/test-setup-*.sh; do
	[ -e "$s" ] && bash "$s"
done

echo "==> go test -race"
status=0
for m in "${MODULES[@]}"; do
	(cd "$m" && go test -race -count=1 -timeout 15m ./...) || status=1
done
./scripts/fuzz.sh || status=1
exit $status
