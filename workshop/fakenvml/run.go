//go:build cgo

package fakenvml // import "github.com/otelcol-vllm/otelcol-vllm/workshop/fakenvml"

import (
	"bufio"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Variables the parent test process hands to its child.
const (
	childTestEnv   = "FAKENVML_CHILD_TEST"   // name of the test the child runs the body of
	childLibEnv    = "FAKENVML_CHILD_LIB"    // path of the fake library
	childMarkerEnv = "FAKENVML_CHILD_MARKER" // file the child creates once the body has passed
)

// childTimeout bounds one child process; a hung child prints its goroutines through -test.timeout first.
const childTimeout = 2 * time.Minute

// Setup is the fake library one Run uses.
type Setup struct {
	Omit   []string // symbols left out of the library (see Omit)
	Script Script
}

// Lib is the fake library as a test body sees it.
type Lib struct {
	Path    string // the library; pass it to nvml.WithLibraryPath or the receiver's library_path
	callLog string
}

// Call is one call the library logged.
type Call struct {
	Function string
	GPU      int // device index, -1 for library-level calls (and calls with an invalid handle)
}

// Calls returns the calls made to the library so far, in order (nvmlErrorString is not logged).
func (l *Lib) Calls(t testing.TB) []Call {
	t.Helper()
	f, err := os.Open(l.callLog)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatalf("fakenvml: reading call log: %v", err)
	}
	defer f.Close()
	var calls []Call
	scanner := bufio.NewScanner(f)
	for scanner.Scan() {
		fn, index, hasIndex := strings.Cut(scanner.Text(), " ")
		call := Call{Function: fn, GPU: -1}
		if hasIndex {
			if call.GPU, err = strconv.Atoi(index); err != nil {
				t.Fatalf("fakenvml: bad call log line %q", scanner.Text())
			}
		}
		calls = append(calls, call)
	}
	if err := scanner.Err(); err != nil {
		t.Fatalf("fakenvml: reading call log: %v", err)
	}
	return calls
}

// CallCount returns how many times the library function was called.
func (l *Lib) CallCount(t testing.TB, function string) int {
	t.Helper()
	n := 0
	for _, c := range l.Calls(t) {
		if c.Function == function {
			n++
		}
	}
	return n
}

// Run runs body against a fake library built from setup, in a fresh child process of the test binary (see the
// package comment for why). In the parent it compiles the library, writes the script, re-executes the binary
// with -test.run anchored to t.Name() and fails t with the child's output if the child fails or never reaches
// the end of body. In the child it calls body. Code before Run in the test function runs in both processes, so
// keep it free of side effects; code after Run runs in the parent only once the child is done, and in the child
// after body.
func Run(t *testing.T, setup Setup, body func(t *testing.T, lib *Lib)) {
	t.Helper()
	if name, ok := os.LookupEnv(childTestEnv); ok {
		if name != t.Name() {
			t.Fatalf("fakenvml: child process for %q reached Run in %q", name, t.Name())
		}
		runChild(t, body)
		return
	}
	runParent(t, setup)
}

func runChild(t *testing.T, body func(t *testing.T, lib *Lib)) {
	lib := &Lib{Path: os.Getenv(childLibEnv), callLog: os.Getenv(CallLogEnv)}
	marker := os.Getenv(childMarkerEnv)
	// Registered first, so it runs last: only a body that got through without failing leaves the marker.
	t.Cleanup(func() {
		if !t.Failed() {
			if err := os.WriteFile(marker, []byte("passed\n"), 0o644); err != nil {
				t.Errorf("fakenvml: writing pass marker: %v", err)
			}
		}
	})
	body(t, lib)
}

func runParent(t *testing.T, setup Setup) {
	t.Helper()
	libPath := Build(t, Omit(setup.Omit...))
	scriptPath := WriteScript(t, setup.Script)
	dir := t.TempDir()
	marker := filepath.Join(dir, "passed")

	ctx, cancel := context.WithTimeout(context.Background(), childTimeout+30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0],
		"-test.run="+anchoredPattern(t.Name()),
		"-test.count=1",
		"-test.v=true",
		"-test.timeout="+childTimeout.String(),
	)
	cmd.Env = append(cleanEnv(os.Environ()),
		"GORACE="+raceOptions(os.Getenv("GORACE")),
		childTestEnv+"="+t.Name(),
		childLibEnv+"="+libPath,
		childMarkerEnv+"="+marker,
		ScriptEnv+"="+scriptPath,
		CallLogEnv+"="+filepath.Join(dir, "calls.log"),
	)
	cmd.WaitDelay = 10 * time.Second
	output, err := cmd.CombinedOutput()
	_, markerErr := os.Stat(marker)
	switch {
	case err != nil:
		t.Fatalf("fakenvml: child test process failed: %v\n%s", err, output)
	case markerErr != nil:
		t.Fatalf("fakenvml: child test process did not run the test body to the end (%v)\n%s", markerErr, output)
	case testing.Verbose():
		t.Logf("child test process output:\n%s", output)
	}
}

// anchoredPattern matches exactly the test named name and no sibling whose name it prefixes.
func anchoredPattern(name string) string {
	parts := strings.Split(name, "/")
	for i, p := range parts {
		parts[i] = "^" + regexp.QuoteMeta(p) + "$"
	}
	return strings.Join(parts, "/")
}

// raceOptions keeps the parent's race detector options but drops the race runtime's default one-second sleep at
// exit, which would otherwise dominate every child's run time.
func raceOptions(parent string) string {
	if strings.Contains(parent, "atexit_sleep_ms") {
		return parent
	}
	return strings.TrimSpace(parent + " atexit_sleep_ms=0")
}

// cleanEnv drops the variables Run sets, so a child never inherits a stale value.
func cleanEnv(env []string) []string {
	out := env[:0:0]
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		switch name {
		case childTestEnv, childLibEnv, childMarkerEnv, ScriptEnv, CallLogEnv, "GORACE":
			continue
		}
		out = append(out, kv)
	}
	return out
}
