#!/usr/bin/env bash
# Installs what the demo page's browser test needs: Debian's Chromium and
# the locked npm packages (playwright-core drives the browser;
# socket.io-client is the source of the page's embedded bundle).
set -euo pipefail
cd "$(dirname "$0")/../deploy/standalone/demo/e2e"
if [ ! -x /usr/bin/chromium ]; then
	if [ "$(id -u)" != 0 ]; then
		echo "test-setup-demo: /usr/bin/chromium is missing; install it as root: apt-get install -y chromium" >&2
		exit 1
	fi
	echo "==> apt-get install chromium"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq chromium >/dev/null
fi
if ! command -v npm >/dev/null 2>&1; then
	echo "test-setup-demo: node and npm are required (Debian: apt-get install nodejs npm)" >&2
	exit 1
fi
# npm ci starts from scratch; skip it when the tree was installed from this
# very lock file.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
	echo "==> npm ci (deploy/standalone/demo/e2e)"
	npm ci --no-audit --no-fund --loglevel=error
fi
