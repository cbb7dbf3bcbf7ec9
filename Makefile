# Sentiment Analyzer Pro. `make help` lists the targets.
GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.Version=$(VERSION)
CACHE   := $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/sentiment-analyzer-pro

# The rig (internal/testenv) finds the service binaries here.
export SAP_CONSUL_BIN    := $(CACHE)/bin/consul
export SAP_VERSITYGW_BIN := $(CACHE)/bin/versitygw

.DEFAULT_GOAL := help
.PHONY: help build tools test test-short test-race vet

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-14s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

build: ## build every binary into bin/
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/ ./cmd/...

tools: ## build Consul and the S3 server into ~/.cache (once per pinned version)
	scripts/tools.sh

vet: ## go vet and a gofmt check
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }

test: tools vet ## build the real services, then run every test against them
	$(GO) test -count=1 -timeout 30m ./...

test-short: ## quick loop: skips the tests that need real services
	$(GO) test -short ./...

test-race: tools ## every test with the race detector
	$(GO) test -race -count=1 -timeout 40m ./...
