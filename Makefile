# Skiff: one binary, a whole Kubernetes-compatible cluster.
SHELL     := /bin/bash
GO        ?= go
BIN       := bin/skiff
DATA_DIR  ?= $(CURDIR)/.data
PORT      ?= 6443
# Unit and integration packages (everything but the end-to-end suite).
UNIT_PKGS := $(shell $(GO) list ./... 2>/dev/null | grep -v /test/e2e)

.PHONY: all build images helm up test unit e2e bench lint generate deps clean upstream differential conformance conformance-api bench-scale

all: build

build:
	$(GO) build -o $(BIN) ./cmd/skiff

# The pause and busybox images (and the e2e suite's in-cluster client,
# admission webhook and operator), built locally (no registry needed) into
# bin/images, which skiff imports into its containerd at start.
images:
	$(GO) run ./hack/mkimages -out bin/images

# Helm 4 from the test-only module test/helm, for the e2e suite's chart.
# go build relinks only when an input changed, so this is quick when the
# binary is up to date.
helm:
	cd test/helm && $(GO) build -o $(CURDIR)/bin/helm helm.sh/helm/v4/cmd/helm

# Bring up a single-node cluster in the foreground (installing what is
# missing first); kubectl it with
#   export KUBECONFIG=$(DATA_DIR)/server/admin.kubeconfig
up: deps build images
	$(BIN) up --data-dir $(DATA_DIR) --secure-port $(PORT)

# Everything CI runs: static checks, unit and integration tests, e2e tests.
test: deps lint unit e2e

deps:
	bash hack/install-deps.sh

lint:
	@out=$$(gofmt -l cmd internal test bench hack 2>/dev/null); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...

# KUBE_CACHE_MUTATION_DETECTOR makes client-go panic when an informer's
# object is changed in place: in-process informers share the API server's
# cached objects, so such a change would corrupt what the API serves.
unit:
	KUBE_CACHE_MUTATION_DETECTOR=true $(GO) test -race -count=1 -timeout 15m $(UNIT_PKGS)
	cd test/images/operator && $(GO) test -race -count=1 ./...
	cd test/promsd && $(GO) test -race -count=1 ./...
	cd test/images/csi && $(GO) test -race -count=1 ./...

e2e: build images helm
	KUBE_CACHE_MUTATION_DETECTOR=true SKIFF_BIN=$(CURDIR)/$(BIN) SKIFF_IMAGES=$(CURDIR)/bin/images SKIFF_HELM=$(CURDIR)/bin/helm $(GO) test -count=1 -timeout 20m ./test/e2e/

# Upstream kube-apiserver, kube-scheduler and an etcd launcher, v1.37.2, from
# the test-only module test/upstream: the oracle of the differential tests.
upstream:
	bash hack/upstream.sh build

# Skiff against upstream: discovery, a corpus of requests and generated
# mutations of every kind, and upstream's kube-scheduler against Skiff.
# DIFF_SUBSET=1 skips the generated mutations; DIFF_REPORT=FILE writes the
# differences there.
differential: upstream
	SKIFF_UPSTREAM_BIN=$(CURDIR)/bin/upstream DIFF_SUBSET=$(DIFF_SUBSET) DIFF_REPORT=$(DIFF_REPORT) \
		$(GO) test -count=1 -timeout 20m ./test/differential/

# Upstream's conformance suite (e2e.test v1.37.2, every [Conformance] spec)
# against a Skiff cluster of a server and agents in network namespaces; needs
# root. CONFORMANCE_FOCUS / CONFORMANCE_SKIP override the specs; reports in
# bin/conformance. conformance-api is the API-level subset (about 12 minutes),
# which CI runs after make test and the differential.
conformance: build
	bash hack/conformance.sh full

conformance-api: build
	bash hack/conformance.sh api

bench: build images
	$(GO) run ./bench/apiserver
	$(GO) run ./bench/apiserver -full
	$(GO) run ./bench/scheduler -cpuprofile scheduler.pprof
	$(GO) run ./bench/controllers
	$(GO) run ./bench/storage
	$(GO) run ./bench/podstartup
	$(GO) run ./bench/streams
	$(GO) run ./bench/snapshot
	$(GO) run ./bench/proxy
	$(GO) run ./bench/scrape
	$(GO) test -run XXX -bench . ./internal/dns/

# Issue 21's scale scenario, Skiff then upstream's etcd, kube-apiserver,
# kube-scheduler and kube-controller-manager v1.37.2 on the same simulated
# nodes and pods. SCALE_ARGS sizes it (default 5,000 nodes, 150,000 pods);
# upstream needs far longer, hence the timeout.
SCALE_ARGS ?=
bench-scale: build upstream
	$(GO) run ./bench/scale $(SCALE_ARGS)
	@dir=$$(mktemp -d /tmp/upstream-scale.XXXX); trap 'bash hack/upstream.sh stop '$$dir'; rm -rf '$$dir'' EXIT; \
		kc=$$(UPSTREAM_PORT=26543 UPSTREAM_ETCD_PORT=23890 bash hack/upstream.sh plane $$dir) && \
		$(GO) run ./bench/scale -kubeconfig $$kc -pids $$(bash hack/upstream.sh pids $$dir) -timeout 90m $(SCALE_ARGS)

generate:
	bash hack/update-openapi.sh

clean:
	rm -rf bin $(DATA_DIR)
