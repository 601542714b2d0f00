# Keel — build, run, test. `make help` lists the targets.
SHELL       := /bin/bash
GO          ?= go
VERSION     ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT      ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || date +%s)
BUILD_DATE  ?= $(shell date -u -d @$(SOURCE_DATE_EPOCH) +%Y-%m-%dT%H:%M:%SZ 2>/dev/null || date -u +%Y-%m-%dT%H:%M:%SZ)
LDFLAGS     := -s -w -buildid= -X main.version=$(VERSION) -X main.commit=$(COMMIT) -X main.date=$(BUILD_DATE)
# Reproducible: no build paths, no VCS stamp, no build id; the date is SOURCE_DATE_EPOCH's.
GOBUILD     := $(GO) build -trimpath -buildvcs=false
BIN         := bin
DIST        ?= dist
CROSS       := linux/amd64 linux/arm64 linux/arm linux/386 windows/amd64
# Packages: nfpm (pinned in tools/go.mod) builds a .deb and an .rpm per architecture (GOARCH;
# arm is armv7: nfpm's arm7, the .deb's armhf and the .rpm's armv7hl).
PKG_ARCHES  ?= amd64 arm64 arm
PKG_VERSION ?= $(shell packaging/pkg-version '$(VERSION)' '$(SOURCE_DATE_EPOCH)' '$(COMMIT)')
PKG_RELEASE ?= 1
PKG_MAINTAINER ?= Keel authors <keel-relay@users.noreply.github.com>
TOOL        := $(GO) tool -modfile=tools/go.mod
FUZZTIME    ?= 10s
export CGO_ENABLED ?= 0

.PHONY: help build try run test test-unit fuzz bench bench-quick bench-constrained lint proto proto-check man cross cross-check test-32bit package package-test test-emulated verify-units clean

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | column -t -s $$'\t'

build: ## build keel-relay and keel-agent into ./bin
	$(GOBUILD) -ldflags '$(LDFLAGS)' -o $(BIN)/keel-relay ./cmd/keel-relay
	$(GOBUILD) -ldflags '$(LDFLAGS)' -o $(BIN)/keel-agent ./cmd/keel-agent

try: build ## build, and write keel-try/: two test node keys, a node map pinning them, relay and agent configs (README, "Try it")
	tools/try-setup keel-try

run: build ## build and run the relay on the embedded default config (loopback, data in ./keel-data)
	$(BIN)/keel-relay run

test: test-unit ## every test (the fuzz targets' seed corpora included), under 5 minutes; `make fuzz` fuzzes each target

test-unit: ## unit, integration and end-to-end tests under the race detector (real Badger, real servers, real processes)
	$(GO) vet ./...
	CGO_ENABLED=1 $(GO) test -race -count=1 -timeout 20m ./...

# Fault injection against the real binary on loopback (package faults/): a few minutes.
.PHONY: test-faults
test-faults: ## kill -9 during uploads and deliveries, upstream down, disk full (as root), slow and hostile clients, garbage and huge node maps, the relay box end to end
	KEEL_FAULT_TESTS=1 $(GO) test -count=1 -timeout 10m -v ./faults/

.PHONY: test-hostile
test-hostile: ## only the hostile-client fault tests (faults/hostile_*_test.go): half-closed pipelines, slow bogus uploads, floods, huge node maps
	KEEL_FAULT_TESTS=1 $(GO) test -count=1 -timeout 5m -v -run '^TestHostile' ./faults/

fuzz: ## run every Go fuzz target for FUZZTIME (tools/fuzz-all)
	GO='$(GO)' FUZZTIME='$(FUZZTIME)' tools/fuzz-all

bench: ## benchmark report vs the machine's limits (real binary, loopback) into bench/REPORT.md and bench/report.json
	$(GO) run ./bench/cmd/report -out bench -command 'make bench'

bench-quick: ## the benchmark report at small sizes (about a minute) on stdout; fails on errors, never on figures
	$(GO) run ./bench/cmd/report -quick -command 'make bench-quick'

bench-constrained: ## only the constrained section of the benchmark report (memory cgroup, small files, wear) on stdout; QUICK=1 for small sizes
	$(GO) run ./bench/cmd/report -only constrained $(if $(QUICK),-quick) -command 'make bench-constrained$(if $(QUICK), QUICK=1)'

lint: ## gofmt, go vet (linux and windows), staticcheck
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '\.pb\.go$$')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	GOOS=windows $(GO) vet ./...
	$(TOOL) staticcheck ./...

# Protobuf: protoc from Debian's protobuf-compiler, the Go plugins pinned in tools/go.mod.
PROTO_DIR   := internal/wire/edgepb
PROTO_BIN   := $(BIN)/protoc-plugins
proto: ## regenerate the committed gRPC/protobuf code under internal/wire/edgepb from cluster.proto
	@command -v protoc >/dev/null || { echo "protoc not found: apt-get install protobuf-compiler"; exit 1; }
	$(GO) build -modfile=tools/go.mod -o $(PROTO_BIN)/ google.golang.org/protobuf/cmd/protoc-gen-go google.golang.org/grpc/cmd/protoc-gen-go-grpc
	PATH="$(CURDIR)/$(PROTO_BIN):$$PATH" protoc -I $(PROTO_DIR) \
	  --go_out=$(PROTO_DIR) --go_opt=paths=source_relative \
	  --go-grpc_out=$(PROTO_DIR) --go-grpc_opt=paths=source_relative \
	  $(PROTO_DIR)/cluster.proto

proto-check: proto ## fail when the committed generated code is not what `make proto` produces
	@git diff --exit-code -- $(PROTO_DIR) || { echo "internal/wire/edgepb is stale: run make proto and commit"; exit 1; }

# The man pages and the completion scripts' golden files are generated from the command
# tables (internal/cli); the tests of cmd/keel-relay and cmd/keel-agent (TestGenerated) fail
# when the committed ones are stale.
man: ## regenerate packaging/*.1 and the completion golden files from the command tables
	@set -e; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; for c in $(CMDS); do \
	  $(GO) build -o $$tmp/$$c ./cmd/$$c; $$tmp/$$c man > packaging/$$c.1; \
	  $$tmp/$$c completion bash > cmd/$$c/testdata/completion.bash; \
	  $$tmp/$$c completion zsh > cmd/$$c/testdata/completion.zsh; done

# The commands every cross build and package covers.
CMDS        := keel-relay keel-agent
# go_build GOOS GOARCH DIR: static keel-relay and keel-agent (GOARM=7 for linux/arm) into DIR.
# (It ends in ":" so that callers can follow it with ";".)
go_build = $(foreach c,$(CMDS),GOOS=$(1) GOARCH=$(2) GOARM=7 $(GOBUILD) -ldflags '$(LDFLAGS)' -o $(3)/$(c)$(if $(filter windows,$(1)),.exe) ./cmd/$(c);) :

cross: ## static, reproducible binaries for linux/amd64, arm64, armv7, 386 and windows/amd64 into dist/<os>-<arch>/
	@set -e; $(foreach t,$(CROSS),echo "build $(t)"; $(call go_build,$(word 1,$(subst /, ,$(t))),$(word 2,$(subst /, ,$(t))),$(DIST)/$(subst /,-,$(t)));)
	@cd $(DIST) && sha256sum $(foreach t,$(CROSS),$(foreach c,$(CMDS),$(subst /,-,$(t))/$(c)$(if $(findstring windows,$(t)),.exe))) > SHA256SUMS && cat SHA256SUMS

# The second build runs from a copy of the tree at another path, with an empty build cache.
cross-check: cross ## prove the cross build reproducible: rebuild elsewhere from scratch, compare sha256
	@set -e; tmp=$$(mktemp -d); trap 'chmod -R u+w "$$tmp"; rm -rf "$$tmp"' EXIT; mkdir "$$tmp/src"; \
	git ls-files -z -co --exclude-standard | while IFS= read -r -d '' f; do [ -e "$$f" ] && printf '%s\0' "$$f"; done \
	  | tar --null -T - -cf - | tar -xf - -C "$$tmp/src"; \
	echo "rebuilding in $$tmp/src with GOCACHE=$$tmp/cache"; \
	GOCACHE="$$tmp/cache" $(MAKE) --no-print-directory -s -C "$$tmp/src" cross DIST="$$tmp/dist" \
	  VERSION='$(VERSION)' COMMIT='$(COMMIT)' SOURCE_DATE_EPOCH='$(SOURCE_DATE_EPOCH)' >/dev/null; \
	if diff -u $(DIST)/SHA256SUMS "$$tmp/dist/SHA256SUMS"; then echo "cross-check: reproducible (identical sha256 for every target)"; \
	else echo "cross-check: FAIL: the binaries differ"; exit 1; fi

test-32bit: ## every test on 32-bit (GOARCH=386, no cgo): no 64-bit-only assumptions
	CGO_ENABLED=0 GOARCH=386 $(GO) test -count=1 -timeout 20m ./...

package: ## .deb and .rpm of keel-relay and keel-agent for PKG_ARCHES (amd64 arm64 arm = armhf/armv7hl) into dist/ (nfpm), replacing those of earlier builds
	@set -e; build=$(DIST)/pkg; mkdir -p $$build; \
	rm -f $(foreach c,$(CMDS),$(DIST)/$(c)_*.deb $(DIST)/$(c)-*.rpm); \
	$(foreach a,$(PKG_ARCHES),echo "build linux/$(a)"; $(call go_build,linux,$(a),$(DIST)/linux-$(a));) \
	for c in $(CMDS); do gzip -9 -n -c packaging/$$c.1 > $$build/$$c.1.gz; \
	  $(GO) run ./cmd/$$c completion bash > $$build/$$c.bash; $(GO) run ./cmd/$$c completion zsh > $$build/$$c.zsh; done; \
	{ echo "- semver: $(PKG_VERSION)-$(PKG_RELEASE)"; \
	  echo "  date: $$(date -u -d @$(SOURCE_DATE_EPOCH) +%Y-%m-%dT%H:%M:%SZ)"; \
	  echo "  packager: $(PKG_MAINTAINER)"; \
	  echo "  deb: {urgency: medium, distributions: [stable]}"; \
	  echo "  changes:"; \
	  echo "    - note: Keel $(VERSION) (commit $(COMMIT))."; } > $$build/changelog.yml; \
	for c in $(CMDS); do sed "s|@PKG_BUILD@|$$build|g" packaging/$$c.nfpm.yaml > $$build/$$c.nfpm.yaml; done; \
	for c in $(CMDS); do for arch in $(PKG_ARCHES); do for fmt in deb rpm; do \
	  ARCH=$$([ $$arch = arm ] && echo arm7 || echo $$arch) PKG_BIN=$(DIST)/linux-$$arch/$$c PKG_BUILD=$$build PKG_VERSION='$(PKG_VERSION)' \
	  PKG_RELEASE='$(PKG_RELEASE)' PKG_MAINTAINER='$(PKG_MAINTAINER)' SOURCE_DATE_EPOCH='$(SOURCE_DATE_EPOCH)' \
	  $(TOOL) nfpm package --config $$build/$$c.nfpm.yaml --packager $$fmt --target $(DIST)/; \
	done; done; done

package-test: package ## inspect and lint the packages; as root, install, run, upgrade, remove and purge the .debs; install the ARM ones and run them under qemu-user; promtool on the alert rules
	packaging/monitoring/check-rules.sh
	packaging/test-packages.sh $(DIST)
	packaging/test-agent-package.sh $(DIST)
	packaging/test-foreign-packages.sh $(DIST)

test-emulated: ## the arm64 and armv7 binaries under qemu-user: version of both, then one relay status request
	@set -e; $(foreach a,arm64 arm,echo "build linux/$(a)"; $(call go_build,linux,$(a),$(DIST)/linux-$(a));)
	packaging/test-emulated.sh $(DIST)

verify-units: ## systemd-analyze verify and security on init/*.service
	packaging/verify-units.sh $(DIST)

clean: ## remove build outputs (not ./keel-data)
	rm -rf $(BIN) $(DIST)
