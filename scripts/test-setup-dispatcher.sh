#!/usr/bin/env bash
# Installs the Node.js receiver of the webhook-dispatcher end-to-end test
# (the npm standardwebhooks package, locked in package-lock.json).
set -euo pipefail
cd "$(dirname "$0")/../services/webhook-dispatcher/e2e"
if ! command -v npm >/dev/null 2>&1; then
	echo "test-setup-dispatcher: npm is required for the webhook end-to-end test (install Node.js 18 or later)" >&2
	exit 1
fi
echo "==> npm ci (services/webhook-dispatcher/e2e)"
npm ci --no-audit --no-fund --loglevel=error
