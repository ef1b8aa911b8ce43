package e2e

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-vllm/otelcol-vllm/workshop/testkit"
)

// binaryVersion is the version `otelcol-vllm --version` prints ("otelcol-vllm version X").
func binaryVersion(t *testing.T, bin string) string {
	t.Helper()
	out := strings.Fields(string(run(t, 30*time.Second, "", bin, "--version")))
	require.Len(t, out, 3, "--version printed %q", out)
	return out[2]
}

// `make unit` passes the version it built the binary with (from `git describe`, see the Makefile's VERSION) in
// OTELCOL_VLLM_VERSION; the binary must report exactly that.
func TestVersionFromBuild(t *testing.T) {
	bin := testkit.Tool(t, testkit.CollectorBin)
	want := os.Getenv("OTELCOL_VLLM_VERSION")
	if want == "" {
		t.Skip("OTELCOL_VLLM_VERSION is not set: run `make test`, or set it to the VERSION the binary was built with")
	}
	assert.Equal(t, want, binaryVersion(t, bin))
}
