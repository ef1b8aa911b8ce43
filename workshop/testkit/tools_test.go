package testkit

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// recordingTB keeps what Tool asked of the test instead of skipping or failing it.
type recordingTB struct {
	testing.TB
	skipped, failed string
}

func (r *recordingTB) Helper() {}

func (r *recordingTB) Skipf(format string, args ...any) { r.skipped = fmt.Sprintf(format, args...) }

func (r *recordingTB) Fatalf(format string, args ...any) { r.failed = fmt.Sprintf(format, args...) }

func TestTool(t *testing.T) {
	root, err := RepoRoot()
	require.NoError(t, err)
	require.FileExists(t, filepath.Join(root, "builder-config.yaml"), "the repository root")
	// a tmux on PATH, for the fallback
	bin := t.TempDir()
	fakeTmux := filepath.Join(bin, "tmux")
	require.NoError(t, os.WriteFile(fakeTmux, []byte("#!/bin/sh\n"), 0o755))

	tests := []struct {
		name     string
		tool     ToolVar
		value    string // "" unsets it
		path     string
		want     string
		skipped  []string // what the skip message names
		failedOn string
	}{
		{name: "unset", tool: Prometheus, path: bin,
			skipped: []string{"PROMETHEUS is not set", "make test-e2e", "make prometheus-tools"}},
		{name: "unset, built by make", tool: CollectorBin, path: bin,
			skipped: []string{"OTELCOL_VLLM_BIN is not set", "make test-e2e", "make dist"}},
		{name: "unset, not on PATH", tool: Tmux, path: t.TempDir(),
			skipped: []string{"TMUX_BIN is not set", "make test-integration", "make ui-tools"}},
		{name: "unset, on PATH", tool: Tmux, path: bin, want: fakeTmux},
		{name: "absolute", tool: Helm, value: fakeTmux, want: fakeTmux},
		{name: "relative to the repository root", tool: Helm, value: "workshop/go.mod", want: filepath.Join(root, "workshop", "go.mod")},
		{name: "relative to the test's directory", tool: Helm, value: "tools.go", want: "tools.go"},
		{name: "points to nothing", tool: Kustomize, value: "no/such/kustomize", failedOn: "KUSTOMIZE points to nothing"},
		{name: "not a tool", tool: "HOME", failedOn: "no tool is passed in HOME"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(string(tt.tool), tt.value)
			t.Setenv("PATH", tt.path)
			rec := &recordingTB{TB: t}
			got := Tool(rec, tt.tool)
			assert.Equal(t, tt.want, got)
			for _, s := range tt.skipped {
				assert.Contains(t, rec.skipped, s)
			}
			if len(tt.skipped) == 0 {
				assert.Empty(t, rec.skipped)
			}
			if tt.failedOn != "" {
				assert.Contains(t, rec.failed, tt.failedOn)
			} else {
				assert.Empty(t, rec.failed)
			}
		})
	}
}

// TestToolHintsMatchTheMakefile: every hint names targets the Makefile has, and TEST_ENV sets every variable.
func TestToolHintsMatchTheMakefile(t *testing.T) {
	root, err := RepoRoot()
	require.NoError(t, err)
	raw, err := os.ReadFile(filepath.Join(root, "Makefile"))
	require.NoError(t, err)
	makefile := string(raw)
	testEnv := makefile[strings.Index(makefile, "TEST_ENV ="):]
	testEnv = testEnv[:strings.Index(testEnv, "\n\n")]
	for v, how := range toolHows {
		for _, target := range []string{how.install, how.setBy} {
			name := strings.TrimPrefix(target, "make ")
			assert.Regexp(t, `(?m)^`+regexp.QuoteMeta(name)+`:`, makefile, "%s: %s", v, target)
		}
		assert.Contains(t, testEnv, string(v)+"=", "TEST_ENV sets %s", v)
	}
}
