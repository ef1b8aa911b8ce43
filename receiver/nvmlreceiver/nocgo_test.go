//go:build cgo

package nvmlreceiver

import (
	"os"
	"os/exec"
	"testing"
)

// TestBuildsWithoutCgo builds the whole module with CGO_ENABLED=0 (the receiver then has a factory that
// refuses to create with a clear error) and runs that factory's test. Slow on a cold build cache.
func TestBuildsWithoutCgo(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the module without cgo")
	}
	for _, args := range [][]string{
		{"build", "-o", os.DevNull, "./..."},
		{"test", "-count=1", "-run", "^TestFactoryWithoutCgo$", "./receiver/nvmlreceiver/"},
	} {
		cmd := exec.Command("go", args...)
		cmd.Dir = "../.."
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("CGO_ENABLED=0 go %v: %v\n%s", args, err, out)
		}
	}
}
