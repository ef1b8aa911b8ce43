package integration_test

// TestUserOCBBuild is the first use of the product: a user's own ocb build with our components. It builds the
// manifest that README.md's "Add to your own collector build" shows (only its replace path and output folder
// are changed), runs the binary with a config that uses all of our components, and checks the module graph.

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/otelcol-vllm/otelcol-vllm/internal/vllmrequest/vllmrequesttest"
	"github.com/otelcol-vllm/otelcol-vllm/workshop/testkit"
)

const (
	productModule    = "github.com/otelcol-vllm/otelcol-vllm"
	readmeSection    = "## Add to your own collector build"
	readmeReplaceDir = "/path/to/otelcol-vllm"
)

// userManifest returns the first yaml block of README.md's section on a user's own build.
func userManifest(t *testing.T, repo string) string {
	t.Helper()
	readme, err := os.ReadFile(filepath.Join(repo, "README.md"))
	require.NoError(t, err)
	_, section, found := strings.Cut(string(readme), "\n"+readmeSection+"\n")
	require.True(t, found, "README.md has no %q section", readmeSection)
	_, block, found := strings.Cut(section, "```yaml\n")
	require.True(t, found, "no yaml block in README.md's %q", readmeSection)
	manifest, _, found := strings.Cut(block, "```")
	require.True(t, found)
	require.Contains(t, manifest, readmeReplaceDir, "the manifest's replaces point at a checkout")
	return manifest
}

func TestUserOCBBuild(t *testing.T) {
	ocb := testkit.Tool(t, testkit.OCB)
	repo, err := filepath.Abs(filepath.Join("..", ".."))
	require.NoError(t, err)

	dir := t.TempDir()
	manifest := strings.ReplaceAll(userManifest(t, repo), readmeReplaceDir, repo)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "manifest.yaml"), []byte(manifest), 0o644))
	build := exec.Command(ocb, "--config", "manifest.yaml")
	build.Dir = dir
	out, err := build.CombinedOutput()
	require.NoError(t, err, "ocb build of README.md's manifest:\n%s", out)
	buildDir := filepath.Join(dir, "_build")
	bin := filepath.Join(buildDir, "otelcol-custom")

	t.Run("module graph holds nothing of the workshop", func(t *testing.T) {
		checkNoWorkshopModules(t, repo, buildDir)
	})
	t.Run("runs the components", func(t *testing.T) {
		runUserCollector(t, bin, dir)
	})
}

// checkNoWorkshopModules: every module whose packages the workshop uses and the product's packages (tests
// included) do not (plotting, the TUI, Kubernetes API types for the chart tests, span_metrics and the
// probabilistic sampler for comparisons, ...) is absent from the part of the user's module graph that our module
// brings in, and our go.mod requires none of them.
func checkNoWorkshopModules(t *testing.T, repo, buildDir string) {
	product := packageModules(t, repo)
	workshop := packageModules(t, filepath.Join(repo, "workshop"))
	workshopOnly := map[string]bool{}
	for path := range workshop {
		if !product[path] && path != productModule+"/workshop" {
			workshopOnly[path] = true
		}
	}
	require.NotEmpty(t, workshopOnly, "the workshop requires modules the product does not (gonum, bubbletea, ...)")

	// go mod graph: "from to" per edge. What only our module brings in = reachable from the main module minus
	// what stays reachable when our module's edges are taken away.
	cmd := exec.Command("go", "mod", "graph")
	cmd.Dir = buildDir
	graph, err := cmd.Output()
	require.NoError(t, err)
	edges := map[string][]string{}
	var main string
	sc := bufio.NewScanner(bytes.NewReader(graph))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		from, to, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		if main == "" {
			main = from
		}
		edges[from] = append(edges[from], to)
	}
	require.NoError(t, sc.Err())
	modulePath := func(node string) string { path, _, _ := strings.Cut(node, "@"); return path }
	reach := func(skipOurs bool) map[string]bool {
		seen := map[string]bool{}
		stack := []string{main}
		for len(stack) > 0 {
			node := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			if seen[node] || (skipOurs && modulePath(node) == productModule) {
				continue
			}
			seen[node] = true
			stack = append(stack, edges[node]...)
		}
		paths := map[string]bool{}
		for node := range seen {
			paths[modulePath(node)] = true
		}
		return paths
	}
	all, withoutOurs := reach(false), reach(true)
	require.True(t, all[productModule], "our module is in the user's graph")
	var brought []string
	for path := range all {
		if !withoutOurs[path] && workshopOnly[path] {
			brought = append(brought, path)
		}
	}
	assert.Empty(t, brought, "workshop-only modules that our module brings into a user's build")
	// The set is what it should be: the workshop's plotting, TUI and peer components are in it. (A module of the
	// set may still be in the user's graph through other components: gonum's plot through gonum, say.)
	for _, path := range []string{"gonum.org/v1/plot", "github.com/charmbracelet/bubbletea",
		"github.com/open-telemetry/opentelemetry-collector-contrib/processor/probabilisticsamplerprocessor",
		"github.com/open-telemetry/opentelemetry-collector-contrib/connector/spanmetricsconnector"} {
		assert.True(t, workshopOnly[path], "%s: expected among the workshop's own requirements", path)
	}
	for _, to := range edges[productModule+"@v0.0.0"] {
		assert.False(t, workshopOnly[modulePath(to)], "our go.mod requires %s, which only the workshop uses", to)
	}
	require.NotEmpty(t, edges[productModule+"@v0.0.0"], "our module's requirements are in the graph")
}

// packageModules returns the modules that provide the packages the module in dir builds or tests with.
func packageModules(t *testing.T, dir string) map[string]bool {
	t.Helper()
	cmd := exec.Command("go", "list", "-deps", "-test", "-f", "{{with .Module}}{{.Path}}{{end}}", "./...")
	cmd.Dir = dir
	out, err := cmd.Output()
	require.NoError(t, err, "go list -deps -test ./... in %s", dir)
	paths := map[string]bool{}
	for _, line := range strings.Fields(string(out)) {
		paths[line] = true
	}
	return paths
}

// runUserCollector runs the user's binary with the vllm processor and connector on a traces pipeline, the nvml
// receiver (no GPU here: it must start anyway) and the status exporter on the metrics pipeline, sends vLLM spans
// and waits for the derived span attributes and metrics in the debug exporter's output and the status API.
func runUserCollector(t *testing.T, bin, dir string) {
	otlpPort, statusPort := testkit.FreePort(t), testkit.FreePort(t)
	config := fmt.Sprintf(`
receivers:
  otlp:
    protocols:
      grpc: {endpoint: 127.0.0.1:%d}
  nvml: {}
processors:
  batch: {}
  vllm:
    slo: &slo {ttft: 200ms, tpot: 50ms, e2e: 5s}
connectors:
  vllm:
    slo: *slo
    metrics_flush_interval: 1s
exporters:
  debug: {verbosity: detailed}
  vllm_status: {endpoint: 127.0.0.1:%d, snapshot_interval: 1s, window: 1m, windows: [1m]}
service:
  telemetry:
    metrics: {level: none}
  pipelines:
    traces:
      receivers: [otlp]
      processors: [vllm, batch]
      exporters: [debug, vllm]
    metrics:
      receivers: [vllm, nvml]
      exporters: [debug, vllm_status]
`, otlpPort, statusPort)
	configPath := filepath.Join(dir, "config.yaml")
	require.NoError(t, os.WriteFile(configPath, []byte(config), 0o644))

	var output testkit.LockedBuffer
	collector := exec.Command(bin, "--config", configPath)
	collector.Stdout, collector.Stderr = &output, &output
	require.NoError(t, collector.Start())
	t.Cleanup(func() {
		_ = collector.Process.Signal(os.Interrupt)
		_ = collector.Wait()
	})
	require.Eventually(t, func() bool { return strings.Contains(output.String(), "Everything is ready") }, time.Minute,
		100*time.Millisecond, "the collector did not start:\n%s", &output)

	const spans = 40
	conn, err := grpc.NewClient(fmt.Sprintf("127.0.0.1:%d", otlpPort), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = ptraceotlp.NewGRPCClient(conn).Export(ctx, ptraceotlp.NewExportRequestFromTraces(vllmrequesttest.V1Batch(spans, 2)))
	require.NoError(t, err)

	// the processor's attributes on the spans, the connector's histograms, both models on the status API
	for _, want := range []string{"vllm.request.time_per_output_token", "vllm.slo.met", "gen_ai.server.time_to_first_token",
		"gen_ai.server.request.duration", "vllm.requests"} {
		require.Eventually(t, func() bool { return strings.Contains(output.String(), want) }, 30*time.Second,
			100*time.Millisecond, "%q never appeared in the debug exporter's output:\n%s", want, &output)
	}
	require.Eventually(t, func() bool {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/api/v1/metrics", statusPort))
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode == http.StatusOK && strings.Contains(string(body), `"model-0"`) && strings.Contains(string(body), `"model-1"`)
	}, 30*time.Second, 200*time.Millisecond, "the status API never showed both models")
	assert.NotContains(t, output.String(), "panic")
}
