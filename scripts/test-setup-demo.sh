#!/usr/bin/env bash
# Prepares the demo page's browser test: a Chromium or Chrome, and the locked
# npm packages (playwright-core drives the browser; socket.io-client is the
# source of the page's embedded bundle). How the browser is found: see
# browser-setup.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/browser-setup.sh
browser_setup deploy/standalone/demo/e2e "demo page"
