# hookferry — `make help` lists the targets. Plain GNU make and the Go toolchain;
# `drift` also needs git.

GO       ?= go
BIN      ?= bin/hookferry
FUZZTIME ?= 30s
VERSION  ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -X main.Version=$(VERSION)

.DEFAULT_GOAL := help
.PHONY: help run build generate portal test fmt-check vet staticcheck drift sdk-deps check fuzz lint breaking ts-check

help: ## list the targets
	@echo 'Usage: make TARGET [FUZZTIME=30s]'
	@echo
	@awk 'BEGIN { FS = ":.*## " } /^[a-zA-Z_-]+:.*## / { printf "  %-10s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)

# Build, then exec the binary: go run exits 1 after Ctrl-C even when the service
# stops cleanly, which make reports as an error.
run: build ## run the service on :8080 with the SQLite file hookferry.db (no setup)
	exec $(BIN) serve

build: ## build bin/hookferry, stamped with `git describe` (or dev)
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/hookferry

# gen/generate.go also writes the Go SDK, clients/go, with this module's pinned
# oapi-codegen: the SDK's own module has no generator to pin.
generate: ## regenerate gen/, the Go SDK (clients/go) and the TypeScript client's types from openapi.yaml (generators pinned), then rebuild the portal
	cd gen && $(GO) generate ./...
	cd clients/typescript && { [ -d node_modules ] || npm ci --no-audit --no-fund --loglevel=error </dev/null; } && npm run --silent generate </dev/null
	$(MAKE) --no-print-directory portal

# The portal imports the client's sources, so the client's node_modules come first.
portal: ## build the portal into portal/dist (committed): npm ci in portal/web, tsc --noEmit, esbuild
	cd clients/typescript && { [ -d node_modules ] || npm ci --no-audit --no-fund --loglevel=error </dev/null; }
	cd portal/web && { [ -d node_modules ] || npm ci --no-audit --no-fund --loglevel=error </dev/null; } && npm run --silent typecheck </dev/null && npm run --silent build </dev/null

test: ## run every test, the Go SDK's (clients/go) too, with the race detector (PostgreSQL at HOOKFERRY_TEST_POSTGRES_URL); the last line says if PostgreSQL ran
	GO=$(GO) tools/test.sh

fmt-check: ## fail if gofmt would change a file
	@files=$$(gofmt -l .); \
	if [ -n "$$files" ]; then \
		echo 'fmt-check: these files are not gofmt-formatted (run gofmt -w):' >&2; \
		echo "$$files" | sed 's/^/  /' >&2; \
		exit 1; \
	fi; \
	echo 'fmt-check: ok'

# clients/go is a module of its own: ./... at the root does not enter it.
vet: ## go vet every package, the Go SDK's (clients/go) too
	$(GO) vet ./...
	cd clients/go && $(GO) vet ./...

# The SDK's module does not pin staticcheck: run the root's pinned build there
# (`go tool -n` builds it if needed and prints its path).
staticcheck: ## staticcheck every package, the Go SDK's (clients/go) too (pinned by the tool directive of go.mod)
	$(GO) tool staticcheck ./...
	sc=$$($(GO) tool -n staticcheck) && cd clients/go && "$$sc" ./...

drift: generate ## fail if gen/, the Go SDK, the TypeScript types or the built portal are stale, or a go.mod is untidy
	@git diff --exit-code -- gen openapi.yaml clients/go clients/typescript/src portal || { \
		echo 'drift: gen/, clients/go, clients/typescript/src or portal/dist differ from what openapi.yaml and portal/web generate; commit the output of make generate' >&2; \
		exit 1; }
	@untracked=$$(git status --porcelain -- gen clients/go clients/typescript/src portal); \
	if [ -n "$$untracked" ]; then \
		echo 'drift: make generate left files in gen/, clients/go, clients/typescript/src or portal/ that are not committed:' >&2; \
		echo "$$untracked" | sed 's/^/  /' >&2; \
		exit 1; \
	fi
	@$(GO) mod tidy -diff || { \
		echo 'drift: go.mod/go.sum are not tidy; run go mod tidy and commit the result' >&2; \
		exit 1; }
	@cd clients/go && $(GO) mod tidy -diff || { \
		echo 'drift: clients/go/go.mod/go.sum are not tidy; run go mod tidy in clients/go and commit the result' >&2; \
		exit 1; }
	@echo 'drift: ok'

sdk-deps: ## fail if the Go SDK's module graph (clients/go) holds Echo, kin-openapi, GORM or the server module
	GO=$(GO) tools/sdk-deps.sh

check: fmt-check vet staticcheck drift sdk-deps lint breaking test ts-check ## everything CI checks

lint: ## lint openapi.yaml with Redocly CLI (pinned in tools/spec) under redocly.yaml
	tools/spec/lint.sh

breaking: ## fail on breaking changes of openapi.yaml against the released api/released/v1.yaml (or BASE_REF's openapi.yaml)
	tools/spec/breaking.sh $(BASE_REF)

ts-check: ## TypeScript client: npm ci, generate drift, tsc --noEmit, npm pack checked as a consumer, unit and end-to-end tests
	clients/typescript/check.sh

BENCH_FLAGS ?=

.PHONY: bench bench-isolation bench-scale
bench: ## build, then benchmark delivery on SQLite and PostgreSQL (BENCH_FLAGS=--events 5000 …)
	$(GO) build -o bin/hookferry ./cmd/hookferry
	$(GO) build -o bin/hookferry-bench ./cmd/hookferry-bench
	bin/hookferry-bench --hookferry bin/hookferry --db sqlite $(BENCH_FLAGS)
	bin/hookferry-bench --hookferry bin/hookferry --db postgres $(BENCH_FLAGS)

bench-scale: ## build, then the throughput, history (1,000,000 delivered rows) and backlog (1,000,000 held) phases on SQLite and PostgreSQL (BENCH_FLAGS)
	$(GO) build -o bin/hookferry ./cmd/hookferry
	$(GO) build -o bin/hookferry-bench ./cmd/hookferry-bench
	bin/hookferry-bench --hookferry bin/hookferry --db sqlite --phases throughput,history,backlog $(BENCH_FLAGS)
	bin/hookferry-bench --hookferry bin/hookferry --db postgres --phases throughput,history,backlog $(BENCH_FLAGS)

# Both databases run even when the first fails; the target fails if either did.
# What fails is a pause check (an arrival after a pause's or delete's 200, a
# paused webhook's deliveries not intact); the isolation figures only inform.
BENCH_PHASES ?= isolation,pause
bench-isolation: ## build, then the isolation and pause phases on SQLite and PostgreSQL (BENCH_PHASES, BENCH_FLAGS, BENCH_PG_FLAGS=--instances 2)
	$(GO) build -o bin/hookferry ./cmd/hookferry
	$(GO) build -o bin/hookferry-bench ./cmd/hookferry-bench
	@status=0; \
	bin/hookferry-bench --hookferry bin/hookferry --db sqlite --phases $(BENCH_PHASES) $(BENCH_FLAGS) || status=1; \
	bin/hookferry-bench --hookferry bin/hookferry --db postgres --phases $(BENCH_PHASES) $(BENCH_FLAGS) $(BENCH_PG_FLAGS) || status=1; \
	exit $$status

# Each module on its own: the root's and the Go SDK's (clients/go).
fuzz: ## run each Fuzz target, the Go SDK's too, for FUZZTIME (default 30s)
	@failed=; \
	for mod in . clients/go; do \
		list=$$(cd $$mod && $(GO) test -list '^Fuzz' ./...) || { echo "$$list" >&2; exit 1; }; \
		targets=$$(echo "$$list" | awk '/^Fuzz/ { names[n++] = $$1 } /^ok / { for (i = 0; i < n; i++) print $$2 "," names[i]; n = 0 }'); \
		if [ -z "$$targets" ]; then echo "fuzz: no Fuzz targets found in $$mod" >&2; exit 1; fi; \
		for t in $$targets; do \
			pkg=$${t%%,*}; name=$${t#*,}; \
			echo "fuzz: $$name in $$pkg for $(FUZZTIME)"; \
			(cd $$mod && $(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) "$$pkg") || failed="$$failed $$pkg.$$name"; \
		done; \
	done; \
	if [ -n "$$failed" ]; then echo "fuzz: FAILED:$$failed" >&2; exit 1; fi; \
	echo 'fuzz: ok'
