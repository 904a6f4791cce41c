# Xpeditis Notify. `make help` lists the targets; `make run` starts the standalone binary; `make test` runs
# vet, the linter and every test. Both find or start a PostgreSQL.
SHELL := /bin/bash
MODULES := pkg services/notification-api services/realtime-gateway services/webhook-dispatcher deploy/standalone deploy/check scripts/bench scripts/chaos
TOOLS := $(CURDIR)/.tools
# Stamped into every binary (pkg/buildinfo): `<binary> --version` and notify_build_info.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
LDFLAGS := -X github.com/xpeditis/notify/pkg/buildinfo.Version=$(VERSION) -X github.com/xpeditis/notify/pkg/buildinfo.Commit=$(COMMIT)
IMAGES := notification-api realtime-gateway webhook-dispatcher notifyd
IMAGE_REPOSITORY ?= xpeditis
BUF_VERSION := v1.75.0
PROTOC_GEN_GO_VERSION := v1.36.12

.PHONY: help run test build images helm-check bench-tools vet proto bench bench-pipeline bench-webhooks bench-floors bench-gateway bench-gateway-100k bench-abuse chaos chaos-short cluster compose-config rules-test clean

help: ## list the targets, one line each
	@awk -F ':.*## ' '/^[a-z][a-z0-9-]*:.*## / { printf "  make %-15s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)

run: build ## build and start notifyd (all services, embedded NATS) on 127.0.0.1:8080, finding or starting PostgreSQL
	./scripts/with-postgres.sh ./bin/notifyd

test: ## go vet, staticcheck and every test with -race, against real PostgreSQL and JetStream (see README prerequisites)
	./scripts/with-postgres.sh ./scripts/test.sh

build: ## build the service binaries, notifyd and notifyctl into ./bin
	@mkdir -p bin
	cd services/notification-api && go build -ldflags "$(LDFLAGS)" -o ../../bin/notification-api ./cmd/notification-api
	cd services/realtime-gateway && go build -ldflags "$(LDFLAGS)" -o ../../bin/realtime-gateway ./cmd/realtime-gateway
	cd services/webhook-dispatcher && go build -ldflags "$(LDFLAGS)" -o ../../bin/webhook-dispatcher ./cmd/webhook-dispatcher
	cd deploy/standalone && go build -ldflags "$(LDFLAGS)" -o ../../bin/notifyd ./cmd/notifyd
	cd pkg && go build -ldflags "$(LDFLAGS)" -o ../bin/notifyctl ./cmd/notifyctl

# No engine runs on the project's machines: deploy/check/dockerfile_test.go
# checks the Dockerfile there instead (parsed, and its go build commands run).
images: ## build the four images (deploy/docker/Dockerfile) as $(IMAGE_REPOSITORY)/<name>:$(VERSION); needs a Docker engine
	@docker info >/dev/null 2>&1 || { echo "make images: no Docker engine answers (docker info failed); start one, or set DOCKER_HOST" >&2; exit 1; }
	@for i in $(IMAGES); do \
		echo "==> $(IMAGE_REPOSITORY)/$$i:$(VERSION)"; \
		docker build -f deploy/docker/Dockerfile --target $$i --build-arg VERSION=$(VERSION) --build-arg COMMIT=$(COMMIT) \
			-t $(IMAGE_REPOSITORY)/$$i:$(VERSION) . || exit 1; \
	done

# The chart's tests (deploy/check/helm_test.go): helm lint --strict and helm
# template with values.yaml and values-production.yaml, every object decoded
# strictly into its Kubernetes API type, and the refusals of bad values.
helm-check: ## lint, render and strictly decode deploy/helm/notify with its default and production values (helm into .tools)
	./scripts/test-setup-helm.sh
	cd deploy/check && go test -count=1 -run 'TestChart' -v .

# The benchmark module (scripts/bench): load generators and probes, kept out
# of the services and of pkg/.
BENCH_CMDS := notifybench floors webhook-bench webhook-dispatcher-pprof notification-api-pprof gateway-abuse gateway-idle-rss realtime-gateway-pprof
bench-tools: ## build the benchmark commands of scripts/bench (notifybench, webhook-bench, …) into ./bin
	@mkdir -p bin
	cd scripts/bench && for c in $(BENCH_CMDS); do go build -o ../../bin/$$c ./cmd/$$c || exit 1; done

rules-test: ## check and unit-test the Prometheus rules of deploy/prometheus with promtool (apt-get install prometheus)
	./scripts/rules-test.sh

vet: ## go vet every module
	@for m in $(MODULES); do (cd $$m && go vet ./...) || exit 1; done

proto: ## regenerate pkg/contract/eventv1 from proto/ (buf, protoc-gen-go into .tools)
	GOBIN=$(TOOLS) go install github.com/bufbuild/buf/cmd/buf@$(BUF_VERSION)
	GOBIN=$(TOOLS) go install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
	cd proto && PATH=$(TOOLS):$$PATH buf lint && PATH=$(TOOLS):$$PATH buf generate

# bench, bench-pipeline, bench-webhooks and bench-floors start their own
# PostgreSQL cluster and NATS (scripts/bench-lib.sh) and remove them at exit.
bench: build bench-tools ## CPU per event of each process for ingest and for the pipeline to sockets, ingest latency, list (BENCHMARKS.md)
	./scripts/bench.sh; status=$$?; ./scripts/bench-pipeline.sh || status=1; exit $$status

bench-pipeline: build bench-tools ## events to Socket.IO clients through notification-api and realtime-gateway: CPU per 1,000 events of each process, burst and paced
	./scripts/bench-pipeline.sh

bench-webhooks: build bench-tools ## webhook deliveries: throughput, isolation, CPU per delivery in a burst and paced (BENCHMARKS.md)
	./scripts/bench-webhooks.sh

# What the building blocks cost (NATS operations, a minimal HTTP server with
# and without one PostgreSQL round trip), against which the targets are set.
bench-floors: ## CPU per operation of NATS, JetStream and a minimal HTTP server, the floors under ingest and list (BENCHMARKS.md)
	@mkdir -p bin
	cd scripts/bench && go build -o ../../bin/floors ./cmd/floors
	./scripts/bench-floors.sh

# Settings in scripts/bench-gateway.sh.
bench-gateway: ## the realtime gateway side by side with the Node.js reference and Centrifugo, 15,000 clients each (BENCHMARKS.md)
	./scripts/with-postgres.sh ./scripts/bench-gateway.sh

# 100,000 connections over 6 gateway processes (each may open 20,000 files),
# heartbeats at their defaults for IDLE, then fan-out to random users; the
# settings can be overridden like those of bench-gateway (CLIENTS=2000 for a
# quick check).
bench-gateway-100k: ## 100,000 connections over 6 gateway processes, then fan-out at 5,000 messages/s (BENCHMARKS.md)
	CLIENTS=$${CLIENTS:-100000} GATEWAYS=$${GATEWAYS:-6} PER_WORKER=$${PER_WORKER:-10000} SERVERS=go \
		PHASES=$${PHASES:-fanout} IDLE=$${IDLE:-60s} DURATION=$${DURATION:-60s} OUT=$${OUT:-bin/bench-gateway-100k} \
		./scripts/with-postgres.sh ./scripts/bench-gateway.sh

bench-abuse: build bench-tools ## the gateway's memory and /healthz latency under abusive clients (ping floods, half-open bodies)
	./scripts/bench-abuse.sh

# The chaos suite (scripts/chaos; results in BENCHMARKS.md, "Chaos"): a 3-node
# nats-server cluster, a private PostgreSQL and 2 replicas of each service,
# faults injected while events flow; fails on a lost event, a duplicated row
# or a missed socket message. The partition needs root.
chaos: ## the full chaos suite: 3 NATS nodes, 2 replicas per service, every fault while events flow (root for the partition)
	@mkdir -p bin
	cd scripts/chaos && go build -o ../../bin/chaos ./cmd/chaos
	./bin/chaos -root . $(if $(filter short,$(CHAOS)),-short)

chaos-short: ## the chaos suite's short form: one fault of each kind, under 5 minutes
	$(MAKE) chaos CHAOS=short

# The production topology on this machine, in the foreground: 3 nats-server
# nodes (JetStream, STREAM_REPLICAS=3), a private PostgreSQL, 2 replicas of
# each service and HAProxy (deploy/compose/haproxy.cfg, the one compose runs)
# on one port. The chaos suite's cluster runner (scripts/chaos/cluster).
CLUSTER_ADDR ?= 127.0.0.1:8080
cluster: ## the production topology here behind one port (CLUSTER_ADDR, default 127.0.0.1:8080): 3 NATS nodes, PostgreSQL, 2 replicas per service, HAProxy; Ctrl-C stops it
	@command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || { echo "make cluster needs HAProxy, the proxy in front: sudo apt-get install haproxy (Debian, Ubuntu) or brew install haproxy (macOS)" >&2; exit 1; }
	@mkdir -p bin
	cd scripts/chaos && go build -o ../../bin/cluster ./cmd/cluster
	./bin/cluster -root . -addr $(CLUSTER_ADDR)

compose-config: ## check deploy/compose with docker compose config (the Docker Compose plugin, no engine; the secrets from deploy/compose/.env or the environment)
	@docker compose version >/dev/null 2>&1 || { echo "compose-config needs the Docker Compose plugin (docker compose version fails)" >&2; exit 1; }
	docker compose -f deploy/compose/compose.yaml config --quiet

clean: ## remove ./bin and the tools in .tools
	rm -rf bin .tools
