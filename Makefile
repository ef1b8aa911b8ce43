# otelcol-vllm — build, test and run targets.
# Every target installs what it needs when missing (Go tools into .tools/, Debian packages with apt-get).

GO          ?= go
TOOLS       := $(CURDIR)/.tools
MDATAGEN    := $(TOOLS)/mdatagen
export CGO_ENABLED := 1

.PHONY: all test vet fmt-check unit generate tools

all: test

## tools: repo-local build tools (mdatagen v0.159.0 through the internal/tools module)
tools: $(MDATAGEN)

$(MDATAGEN): internal/tools/go.mod internal/tools/go.sum
	cd internal/tools && $(GO) build -o $(MDATAGEN) go.opentelemetry.io/collector/cmd/mdatagen

## generate: regenerate mdatagen output (internal/metadata, documentation.md) for every component
generate: $(MDATAGEN)
	PATH="$(TOOLS):$$PATH" $(GO) generate ./...

## vet: go vet over the whole module
vet:
	$(GO) vet ./...

## fmt-check: fail when a file is not gofmt-formatted
fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './_build/*')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

## unit: unit, golden, fuzz-seed and lifecycle tests with the race detector
unit:
	$(GO) test -race -count=1 ./...

## test: everything CI runs
test: vet fmt-check unit
