# The Go modules of the workspace, in build order. Sourced by the other scripts.
MODULES=(pkg services/notification-api services/realtime-gateway services/webhook-dispatcher deploy/standalone deploy/check scripts/bench scripts/chaos)
