#!/usr/bin/env bash
# Prepares the webhook portal's browser test: a Chromium or Chrome, and the
# locked playwright-core (see browser-setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/browser-setup.sh
browser_setup services/webhook-dispatcher/internal/portal/e2e "webhook portal"
