package deploytest

import (
	"fmt"
	"os"
	"testing"
)

// deployDir is the operations kit the tests check, relative to this package's directory.
const deployDir = "../../deploy"

// TestMain runs the tests in deploy/, so that every path they name (prometheus/alerts.yaml, helm/otelcol-vllm,
// ../examples) is the one a reader of the kit sees.
func TestMain(m *testing.M) {
	if err := os.Chdir(deployDir); err != nil {
		fmt.Fprintln(os.Stderr, "deploytest:", err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}
