# otelcol-vllm — build, test and run targets.
# Every target installs what it needs when missing: Go tools into .tools/ with `go install`/`go build`,
# Prometheus/promtool with apt-get.

GO          ?= go
TOOLS       := $(CURDIR)/.tools
MDATAGEN    := $(TOOLS)/mdatagen
OCB_VERSION := v0.165.0
OCB         := $(TOOLS)/builder
DIST_DIR    := $(CURDIR)/_build
DIST_BIN    := $(DIST_DIR)/otelcol-vllm
PROMTOOL    ?= $(shell command -v promtool 2>/dev/null || echo /usr/bin/promtool)
PROMETHEUS  ?= $(shell command -v prometheus 2>/dev/null || echo /usr/bin/prometheus)
# Helm, built from its Go module into a cache outside the clone, keyed by its version (the chart tests run it).
HELM_VERSION := v3.22.0
HELM        ?= $(HOME)/.cache/otelcol-vllm/tools/helm-$(HELM_VERSION)/helm
# kustomize, the same way (the tests build deploy/kubernetes and the README's overlay with it). v5.8.3 needs Go 1.27.
KUSTOMIZE_VERSION := v5.8.2
KUSTOMIZE   ?= $(HOME)/.cache/otelcol-vllm/tools/kustomize-$(KUSTOMIZE_VERSION)/kustomize
export CGO_ENABLED := 1
# go-nvml's cgo wrappers call NVML functions that NVML 13 marks deprecated; the warnings are noise.
export CGO_CFLAGS  ?= -O2 -g -Wno-deprecated-declarations

.PHONY: all test vet fmt-check unit generate tools ocb dist run prometheus-tools helm kustomize bench bench-e2e

all: test

## tools: repo-local build tools (mdatagen v0.159.0 through the internal/tools module)
tools: $(MDATAGEN) $(OCB)

$(MDATAGEN): internal/tools/go.mod internal/tools/go.sum
	cd internal/tools && $(GO) build -o $(MDATAGEN) go.opentelemetry.io/collector/cmd/mdatagen

## ocb: the OpenTelemetry Collector Builder, into .tools/builder
ocb: $(OCB)

$(OCB):
	GOBIN=$(TOOLS) $(GO) install go.opentelemetry.io/collector/cmd/builder@$(OCB_VERSION)

## generate: regenerate mdatagen output (internal/metadata, documentation.md) for every component
generate: $(MDATAGEN)
	PATH="$(TOOLS):$$PATH" $(GO) generate ./...

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

DIST_SOURCES := $(shell find processor connector receiver internal distribution -type f \( -name '*.go' -o -name '*.yaml' \) -not -name '*_test.go' -not -path '*/testdata/*' 2>/dev/null)

# ocb's generated main.go has no default config URI; the sed adds `embedded:default` (served by
# distribution/embeddedprovider) to its ResolverSettings, so that the binary started without --config runs
# the configuration compiled into it. The grep makes a changed ocb template fail the build instead of
# silently producing a binary without a default.
$(DIST_BIN): $(OCB) builder-config.yaml go.mod go.sum $(DIST_SOURCES)
	$(OCB) --config builder-config.yaml --skip-compilation
	sed -i 's|^\([[:space:]]*\)ResolverSettings: confmap.ResolverSettings{$$|&\n\1\tURIs: []string{"embedded:default"},|' $(DIST_DIR)/main.go
	@grep -q 'URIs: \[\]string{"embedded:default"}' $(DIST_DIR)/main.go || \
		{ echo "could not add the embedded:default config URI to $(DIST_DIR)/main.go (ocb template changed?)"; exit 1; }
	$(OCB) --config builder-config.yaml --skip-generate --skip-get-modules
	@touch $@

## run: build if needed, then run the collector on its embedded default config (embedded:default). Switch on
## exporters with OTELCOL_VLLM_JAEGER_ENDPOINT / OTELCOL_VLLM_REMOTE_WRITE_ENDPOINT (docs/distribution.md)
run: dist
	$(DIST_BIN)

## prometheus-tools: promtool and prometheus from Debian's prometheus package (tests need both)
prometheus-tools:
	@if ! command -v promtool >/dev/null 2>&1 || ! command -v prometheus >/dev/null 2>&1; then \
		echo "installing Debian's prometheus package (promtool, prometheus)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus; \
	fi

## vet: go vet over the whole module, and the bench/ comparison module
vet:
	$(GO) vet ./...
	cd bench && $(GO) vet ./...

## fmt-check: fail when a file is not gofmt-formatted
fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './_build/*')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

## unit: every Go test with the race detector. Tests that need the built distribution, promtool, prometheus or
## helm or kustomize read their paths from OTELCOL_VLLM_BIN, PROMTOOL, PROMETHEUS, HELM and KUSTOMIZE, which this
## target always sets.
unit: dist prometheus-tools $(HELM) $(KUSTOMIZE)
	OTELCOL_VLLM_BIN=$(DIST_BIN) PROMTOOL=$(PROMTOOL) PROMETHEUS=$(PROMETHEUS) HELM=$(HELM) KUSTOMIZE=$(KUSTOMIZE) \
		$(GO) test -race -count=1 ./...

## test: everything CI runs
test: vet fmt-check unit

## bench-e2e: load benchmark of the built binary pinned to one core (not in CI): the floor (OTLP -> OTLP traces),
## span_metrics and our vllm processor+connector at increasing span rates; prints a markdown table
## (docs/distribution.md). Pass e.g. BENCH_E2E_FLAGS="--collector-cpu=3 --load-cpus=0-2 --step=20s".
BENCH_E2E_FLAGS ?=
VLLMGEN_BIN := $(DIST_DIR)/vllmgen

$(VLLMGEN_BIN): $(shell find cmd/vllmgen -name '*.go' -not -name '*_test.go' 2>/dev/null) go.mod go.sum
	$(GO) build -o $@ ./cmd/vllmgen

bench-e2e: dist $(VLLMGEN_BIN)
	$(GO) run ./e2e/benche2e --collector=$(DIST_BIN) --vllmgen=$(VLLMGEN_BIN) --configs=e2e/benche2e/configs $(BENCH_E2E_FLAGS)

## bench: Go benchmarks of the components (ns/op, allocs/op)
bench:
	$(GO) test -run='^$$' -bench=. -benchmem ./...
	cd bench && $(GO) test -run='^$$' -bench=. -benchmem ./...
