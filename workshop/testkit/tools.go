package testkit

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// ToolVar is an environment variable through which the Makefile hands a test the path of a tool it installed or
// built (its TEST_ENV).
type ToolVar string

// The tools the tests run. Each is set by `make test-integration` or `make test-e2e`; run directly, a test that
// needs one skips and says how to get it.
const (
	CollectorBin ToolVar = "OTELCOL_VLLM_BIN"
	OCB          ToolVar = "OCB"
	Promtool     ToolVar = "PROMTOOL"
	Prometheus   ToolVar = "PROMETHEUS"
	Jaeger       ToolVar = "JAEGER"
	Helm         ToolVar = "HELM"
	Kustomize    ToolVar = "KUSTOMIZE"
	Tmux         ToolVar = "TMUX_BIN"
	Chromium     ToolVar = "CHROMIUM"
	VLLMVenv     ToolVar = "VLLM_CPU_VENV"
)

type toolHow struct {
	what    string // what the variable names
	install string // the make target that installs or builds it
	setBy   string // the test target that sets the variable
	command string // found on PATH when the variable is not set ("": never; the tests want the pinned build)
}

var toolHows = map[ToolVar]toolHow{
	CollectorBin: {"the distribution, _build/otelcol-vllm", "make dist", "make test-e2e", ""},
	OCB:          {"the OpenTelemetry Collector Builder", "make ocb", "make test-integration", ""},
	Promtool:     {"promtool from Debian's prometheus package", "make prometheus-tools", "make test-e2e", ""},
	Prometheus:   {"Debian's prometheus", "make prometheus-tools", "make test-e2e", ""},
	Jaeger:       {"Jaeger v2, built into the tools cache", "make jaeger", "make test-e2e", ""},
	Helm:         {"Helm, built into the tools cache", "make helm", "make test-e2e", ""},
	Kustomize:    {"kustomize, built into the tools cache", "make kustomize", "make test-e2e", ""},
	Tmux:         {"Debian's tmux", "make ui-tools", "make test-integration", "tmux"},
	Chromium:     {"Debian's chromium", "make ui-tools", "make test-e2e", "chromium"},
	VLLMVenv:     {"the vllm-cpu virtualenv", "make vllm", "make test-e2e", ""},
}

// Tool returns the path the variable names, or skips the test with a hint naming the variable and the make
// targets when it is not set (tmux and chromium are then also looked up on PATH). A relative path is taken from
// the repository root, where make runs, unless it exists from the test's directory. A path to nothing fails
// the test: the variable is set, so the tool was meant to run.
func Tool(t testing.TB, v ToolVar) string {
	t.Helper()
	how, known := toolHows[v]
	if !known {
		t.Fatalf("testkit: no tool is passed in %s", v)
		return ""
	}
	path := os.Getenv(string(v))
	if path == "" && how.command != "" {
		if found, err := exec.LookPath(how.command); err == nil {
			return found
		}
	}
	if path == "" {
		t.Skipf("%s is not set: `%s` sets it; or run `%s` and set %s to %s", v, how.setBy, how.install, v, how.what)
		return ""
	}
	if !filepath.IsAbs(path) {
		if _, err := os.Stat(path); err != nil {
			root, err := RepoRoot()
			if err != nil {
				t.Fatalf("%s=%s: %v", v, path, err)
				return ""
			}
			path = filepath.Join(root, path)
		}
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("%s points to nothing (%v): run `%s`, or unset it to skip", v, err, how.install)
		return ""
	}
	return path
}

// rootModule is the product's module, whose directory is the repository root.
const rootModule = "github.com/otelcol-vllm/otelcol-vllm"

// RepoRoot is the repository root: the nearest directory above the working directory (go test's is the package's,
// or where its TestMain moved) whose go.mod is the product's.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if isRootModule(filepath.Join(dir, "go.mod")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("not inside the otelcol-vllm repository (no go.mod of its module above the working directory)")
		}
		dir = parent
	}
}

func isRootModule(goMod string) bool {
	raw, err := os.ReadFile(goMod)
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if name, ok := strings.CutPrefix(strings.TrimSpace(line), "module "); ok {
			return strings.Trim(strings.TrimSpace(name), `"`) == rootModule
		}
	}
	return false
}
