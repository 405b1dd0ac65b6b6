# hookferry — `make help` lists the targets. Plain GNU make and the Go toolchain;
# `drift` also needs git.

GO       ?= go
BIN      ?= bin/hookferry
FUZZTIME ?= 30s
VERSION  ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -X main.Version=$(VERSION)

.DEFAULT_GOAL := help
.PHONY: help run build generate portal test fmt-check vet staticcheck drift check fuzz lint breaking ts-check

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

generate: ## regenerate gen/ and the TypeScript client's types from openapi.yaml (generators pinned), then rebuild the portal
	cd gen && $(GO) generate ./...
	cd clients/typescript && { [ -d node_modules ] || npm ci --no-audit --no-fund --loglevel=error </dev/null; } && npm run --silent generate </dev/null
	$(MAKE) --no-print-directory portal

# The portal imports the client's sources, so the client's node_modules come first.
portal: ## build the portal into portal/dist (committed): npm ci in portal/web, tsc --noEmit, esbuild
	cd clients/typescript && { [ -d node_modules ] || npm ci --no-audit --no-fund --loglevel=error </dev/null; }
	cd portal/web && { [ -d node_modules ] || npm ci --no-audit --no-fund --loglevel=error </dev/null; } && npm run --silent typecheck </dev/null && npm run --silent build </dev/null

test: ## run every test with the race detector (PostgreSQL at HOOKFERRY_TEST_POSTGRES_URL); the last line says if PostgreSQL ran
	GO=$(GO) tools/test.sh

fmt-check: ## fail if gofmt would change a file
	@files=$$(gofmt -l .); \
	if [ -n "$$files" ]; then \
		echo 'fmt-check: these files are not gofmt-formatted (run gofmt -w):' >&2; \
		echo "$$files" | sed 's/^/  /' >&2; \
		exit 1; \
	fi; \
	echo 'fmt-check: ok'

vet: ## go vet every package
	$(GO) vet ./...

staticcheck: ## staticcheck every package (pinned by the tool directive of go.mod)
	$(GO) tool staticcheck ./...

drift: generate ## fail if gen/, the TypeScript types or the built portal are stale, or go.mod is untidy
	@git diff --exit-code -- gen openapi.yaml clients/typescript/src portal || { \
		echo 'drift: gen/, clients/typescript/src or portal/dist differ from what openapi.yaml and portal/web generate; commit the output of make generate' >&2; \
		exit 1; }
	@untracked=$$(git status --porcelain -- gen clients/typescript/src portal); \
	if [ -n "$$untracked" ]; then \
		echo 'drift: make generate left files in gen/, clients/typescript/src or portal/ that are not committed:' >&2; \
		echo "$$untracked" | sed 's/^/  /' >&2; \
		exit 1; \
	fi
	@$(GO) mod tidy -diff || { \
		echo 'drift: go.mod/go.sum are not tidy; run go mod tidy and commit the result' >&2; \
		exit 1; }
	@echo 'drift: ok'

check: fmt-check vet staticcheck drift lint breaking test ts-check ## everything CI checks

lint: ## lint openapi.yaml with Redocly CLI (pinned in tools/spec) under redocly.yaml
	tools/spec/lint.sh

breaking: ## fail on breaking changes of openapi.yaml against the released api/released/v1.yaml (or BASE_REF's openapi.yaml)
	tools/spec/breaking.sh $(BASE_REF)

ts-check: ## TypeScript client: npm ci, generate drift, tsc --noEmit, end-to-end test against hookferry
	clients/typescript/check.sh

BENCH_FLAGS ?=

.PHONY: bench bench-isolation
bench: ## build, then benchmark delivery on SQLite and PostgreSQL (BENCH_FLAGS=--events 5000 …)
	$(GO) build -o bin/hookferry ./cmd/hookferry
	$(GO) build -o bin/hookferry-bench ./cmd/hookferry-bench
	bin/hookferry-bench --hookferry bin/hookferry --db sqlite $(BENCH_FLAGS)
	bin/hookferry-bench --hookferry bin/hookferry --db postgres $(BENCH_FLAGS)

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

fuzz: ## run each Fuzz target for FUZZTIME (default 30s)
	@list=$$($(GO) test -list '^Fuzz' ./...) || { echo "$$list" >&2; exit 1; }; \
	targets=$$(echo "$$list" | awk '/^Fuzz/ { names[n++] = $$1 } /^ok / { for (i = 0; i < n; i++) print $$2 "," names[i]; n = 0 }'); \
	if [ -z "$$targets" ]; then echo 'fuzz: no Fuzz targets found' >&2; exit 1; fi; \
	failed=; \
	for t in $$targets; do \
		pkg=$${t%%,*}; name=$${t#*,}; \
		echo "fuzz: $$name in $$pkg for $(FUZZTIME)"; \
		$(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) "$$pkg" || failed="$$failed $$pkg.$$name"; \
	done; \
	if [ -n "$$failed" ]; then echo "fuzz: FAILED:$$failed" >&2; exit 1; fi; \
	echo 'fuzz: ok'
