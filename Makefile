# Keel — build, run, test. `make help` lists the targets.
SHELL       := /bin/bash
GO          ?= go
VERSION     ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT      ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || date +%s)
BUILD_DATE  ?= $(shell date -u -d @$(SOURCE_DATE_EPOCH) +%Y-%m-%dT%H:%M:%SZ 2>/dev/null || date -u +%Y-%m-%dT%H:%M:%SZ)
LDFLAGS     := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT) -X main.date=$(BUILD_DATE)
BIN         := bin
TOOL        := $(GO) tool -modfile=tools/go.mod
FUZZTIME    ?= 10s
BENCHTIME   ?= 1x
export CGO_ENABLED ?= 0

.PHONY: help build run test test-unit fuzz bench lint cross clean

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | column -t -s $$'\t'

build: ## build keel-relay into ./bin
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/keel-relay ./cmd/keel-relay

run: build ## build and run the relay on the embedded default config (loopback, data in ./keel-data)
	$(BIN)/keel-relay run

test: test-unit fuzz ## every test, then each fuzz target briefly (FUZZTIME=10s)

test-unit: ## unit, integration and end-to-end tests under the race detector (real Badger, real servers, real processes)
	$(GO) vet ./...
	CGO_ENABLED=1 $(GO) test -race -count=1 -timeout 20m ./...

# Each fuzz target runs alone for FUZZTIME (go test -fuzz takes one target at a time).
fuzz: ## run every Go fuzz target for FUZZTIME
	@set -e; for pkg in $$($(GO) list ./...); do \
	  dir=$$($(GO) list -f '{{.Dir}}' $$pkg); \
	  for t in $$(grep -ho '^func Fuzz[A-Za-z0-9_]*' $$dir/*_test.go 2>/dev/null | cut -c6-); do \
	    echo "fuzz $$pkg $$t ($(FUZZTIME))"; \
	    $(GO) test -run='^$$' -fuzz="^$$t$$" -fuzztime=$(FUZZTIME) $$pkg > /tmp/keel-fuzz.log 2>&1 || { cat /tmp/keel-fuzz.log; exit 1; }; \
	  done; \
	done

bench: ## Go benchmarks: PUT throughput vs SHA-256, HEAD req/s, RSS under concurrent PUTs
	$(GO) test -run='^$$' -bench=. -benchtime=$(BENCHTIME) -benchmem ./...

lint: ## gofmt, go vet, staticcheck
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '\.pb\.go$$')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(TOOL) staticcheck ./...

cross: ## static binaries for the release targets (the packaging issue completes this)
	@set -e; for t in linux/amd64 linux/arm64 linux/arm linux/386 windows/amd64; do \
	  os=$${t%/*}; arch=$${t#*/}; ext=; [ $$os = windows ] && ext=.exe; \
	  echo "build $$t"; \
	  GOOS=$$os GOARCH=$$arch GOARM=7 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/$$os-$$arch/keel-relay$$ext ./cmd/keel-relay; \
	done

clean: ## remove build outputs (not ./keel-data)
	rm -rf $(BIN)
