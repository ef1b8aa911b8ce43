//go:build cgo

// Package fakenvml builds a scripted fake libnvidia-ml.so.1 from fakenvml.c and runs tests against it through
// go-nvml's real dlopen path, so NVML code can be tested end to end on machines without an NVIDIA GPU.
//
// One process can only ever use one fake library: after the first call into a dlopen'd library the dynamic linker
// binds the test binary's references to it and marks it NODELETE, so a second library loaded later (another
// path, other omitted symbols) would never be called. Run therefore executes each test body in a fresh child
// process of the test binary. It compiles the library in the parent and hands the child its path and script.
// A test that runs another program on the fake (the collector binary, in e2e/) needs no Run: it hands that
// process Build's path and, in ScriptEnv, the file WriteScript wrote.
package fakenvml // import "github.com/otelcol-vllm/otelcol-vllm/workshop/fakenvml"

import (
	"bytes"
	_ "embed"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
)

// LibraryName is the file name go-nvml opens by default; Build gives the fake the same name.
const LibraryName = "libnvidia-ml.so.1"

const nvmlModule = "github.com/NVIDIA/go-nvml"

//go:embed testdata/fakenvml.c
var source []byte

// Option changes how Build compiles the library.
type Option func(*buildConfig)

type buildConfig struct {
	omit []string
}

// Omit leaves the named symbols out of the library, as an older driver would. Each must be one of Symbols().
func Omit(symbols ...string) Option {
	return func(c *buildConfig) { c.omit = append(c.omit, symbols...) }
}

var omitGuard = regexp.MustCompile(`(?m)^#ifndef FAKE_OMIT_(\w+)$`)

// Symbols returns every NVML symbol the fake library exports, sorted.
func Symbols() []string {
	var names []string
	for _, m := range omitGuard.FindAllSubmatch(source, -1) {
		names = append(names, string(m[1]))
	}
	slices.Sort(names)
	return names
}

var (
	compiledMu sync.Mutex
	compiled   = map[string][]byte{} // compiled libraries by omitted-symbol set, to run gcc once per test binary
	headerDir  string                // directory holding the nvml.h vendored by go-nvml
)

// Build compiles the fake library with gcc (or $CC) and returns its path, a file named LibraryName in a
// directory of t.TempDir(). It fails t, never skips it, when no C compiler is available.
func Build(t testing.TB, opts ...Option) string {
	t.Helper()
	var cfg buildConfig
	for _, opt := range opts {
		opt(&cfg)
	}
	known := Symbols()
	for _, name := range cfg.omit {
		if _, found := slices.BinarySearch(known, name); !found {
			t.Fatalf("fakenvml: cannot omit %q: the fake library does not export it", name)
		}
	}
	omit := slices.Sorted(slices.Values(cfg.omit))
	omit = slices.Compact(omit)
	key := strings.Join(omit, ",")

	compiledMu.Lock()
	lib, ok := compiled[key]
	if !ok {
		var err error
		if lib, err = compile(t, omit); err != nil {
			compiledMu.Unlock()
			t.Fatal(err)
		}
		compiled[key] = lib
	}
	compiledMu.Unlock()

	path := filepath.Join(t.TempDir(), LibraryName)
	if err := os.WriteFile(path, lib, 0o755); err != nil {
		t.Fatalf("fakenvml: writing %s: %v", path, err)
	}
	return path
}

// compile runs the C compiler and returns the library's bytes. The caller holds compiledMu.
func compile(t testing.TB, omit []string) ([]byte, error) {
	cc := "gcc"
	if env := strings.Fields(os.Getenv("CC")); len(env) > 0 {
		cc = env[0]
	}
	ccPath, err := exec.LookPath(cc)
	if err != nil {
		return nil, fmt.Errorf("fakenvml: C compiler %q not found in PATH: the NVML integration tests compile a fake "+
			"%s and need gcc (Debian: apt-get install gcc): %w", cc, LibraryName, err)
	}
	if headerDir == "" {
		if headerDir, err = findHeaderDir(); err != nil {
			return nil, err
		}
	}

	dir := t.TempDir()
	src := filepath.Join(dir, "fakenvml.c")
	if err := os.WriteFile(src, source, 0o644); err != nil {
		return nil, fmt.Errorf("fakenvml: writing %s: %w", src, err)
	}
	out := filepath.Join(dir, LibraryName)
	args := []string{
		"-shared", "-fPIC", "-std=gnu11", "-O1",
		"-Wall", "-Wextra", "-Wno-unused-parameter", "-Werror",
		// As go-nvml compiles it: every versioned symbol is declared under its own name.
		"-DNVML_NO_UNVERSIONED_FUNC_DEFS=1",
		"-I", headerDir,
	}
	for _, name := range omit {
		args = append(args, "-DFAKE_OMIT_"+name)
	}
	// No -soname: a later dlopen of plain "libnvidia-ml.so.1" must not resolve to this fake.
	args = append(args, "-o", out, src, "-lpthread")
	cmd := exec.Command(ccPath, args...)
	if output, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("fakenvml: %s: %w\n%s", strings.Join(cmd.Args, " "), err, output)
	}
	return os.ReadFile(out)
}

// findHeaderDir locates go-nvml's vendored nvml.h in the module cache, so the fake is compiled against the very
// prototypes and struct layouts go-nvml itself is built with.
func findHeaderDir() (string, error) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("fakenvml: the go command is needed to locate %s's nvml.h: %w", nvmlModule, err)
	}
	cmd := exec.Command(goTool, "list", "-m", "-f", "{{.Dir}}", nvmlModule)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("fakenvml: go list -m %s: %w\n%s", nvmlModule, err, stderr.String())
	}
	dir := filepath.Join(strings.TrimSpace(string(out)), "pkg", "nvml")
	if _, err := os.Stat(filepath.Join(dir, "nvml.h")); err != nil {
		return "", fmt.Errorf("fakenvml: nvml.h not found in %s (run go mod download %s): %w", dir, nvmlModule, err)
	}
	return dir, nil
}
