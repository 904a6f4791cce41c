#!/usr/bin/env bash
# Installs the pinned helm into .tools/ (go install from the Go module proxy:
# a few minutes the first time). deploy/check/helm_test.go lints and renders
# deploy/helm/notify with it; test.sh runs every scripts/test-setup-*.sh
# before the Go tests.
set -euo pipefail
cd "$(dirname "$0")/.."
HELM_VERSION=v3.22.0
TOOLS=$PWD/.tools
if [ -x "$TOOLS/helm-$HELM_VERSION" ]; then
	exit 0
fi
echo "==> installing helm $HELM_VERSION into .tools/ (go install)"
mkdir -p "$TOOLS"
GOBIN=$TOOLS go install "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
mv "$TOOLS/helm" "$TOOLS/helm-$HELM_VERSION"
