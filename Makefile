# Xpeditis Notify. `make run` starts the standalone binary; `make test` runs
# vet, the linter and every test. Both find or start a PostgreSQL.
SHELL := /bin/bash
MODULES := pkg services/notification-api services/realtime-gateway services/webhook-dispatcher deploy/standalone scripts/chaos
TOOLS := $(CURDIR)/.tools
BUF_VERSION := v1.75.0
PROTOC_GEN_GO_VERSION := v1.36.12

.PHONY: run test build lint vet proto bench bench-webhooks bench-gateway bench-abuse chaos chaos-short clean

run: build
	./scripts/with-postgres.sh ./bin/notifyd

test:
	./scripts/with-postgres.sh ./scripts/test.sh

build:
	@mkdir -p bin
	cd services/notification-api && go build -o ../../bin/notification-api ./cmd/notification-api
	cd services/realtime-gateway && go build -o ../../bin/realtime-gateway ./cmd/realtime-gateway
	cd services/webhook-dispatcher && go build -o ../../bin/webhook-dispatcher ./cmd/webhook-dispatcher
	cd deploy/standalone && go build -o ../../bin/notifyd ./cmd/notifyd
	cd pkg && go build -o ../bin/notifyctl ./cmd/notifyctl

vet:
	@for m in $(MODULES); do (cd $$m && go vet ./...) || exit 1; done

# Regenerates pkg/contract/eventv1 from proto/.
proto:
	GOBIN=$(TOOLS) go install github.com/bufbuild/buf/cmd/buf@$(BUF_VERSION)
	GOBIN=$(TOOLS) go install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
	cd proto && PATH=$(TOOLS):$$PATH buf lint && PATH=$(TOOLS):$$PATH buf generate

bench: build
	./scripts/with-postgres.sh ./scripts/bench.sh

# Webhook delivery throughput and isolation; figures go to BENCHMARKS.md.
bench-webhooks:
	@mkdir -p bin
	cd services/webhook-dispatcher && go build -o ../../bin/webhook-bench ./cmd/webhook-bench
	./scripts/with-postgres.sh ./scripts/bench-webhooks.sh

# The realtime gateway against the Node.js reference server, 15,000 clients
# each (see BENCHMARKS.md); settings in scripts/bench-gateway.sh.
bench-gateway:
	./scripts/with-postgres.sh ./scripts/bench-gateway.sh

# The gateway's memory and /healthz latency under abusive clients (ping
# floods, half-open bodies); figures go to BENCHMARKS.md.
bench-abuse:
	./scripts/bench-abuse.sh

# The chaos suite (scripts/chaos; results in BENCHMARKS.md, "Chaos"): a 3-node
# nats-server cluster, a private PostgreSQL and 2 replicas of each service,
# faults injected while events flow; fails on a lost event, a duplicated row
# or a missed socket message. The partition needs root. `make chaos-short`
# (or CHAOS=short): one fault of each kind, under 5 minutes.
chaos:
	@mkdir -p bin
	cd scripts/chaos && go build -o ../../bin/chaos ./cmd/chaos
	./bin/chaos -root . $(if $(filter short,$(CHAOS)),-short)

chaos-short:
	$(MAKE) chaos CHAOS=short

clean:
	rm -rf bin .tools
