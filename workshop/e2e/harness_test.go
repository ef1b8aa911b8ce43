package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"
	_ "google.golang.org/grpc/encoding/gzip" // the collector's OTLP exporter compresses with gzip
)

// Environment contract with the Makefile (`make unit` sets them all).
const (
	envCollectorBin = "OTELCOL_VLLM_BIN"
	envPrometheus   = "PROMETHEUS"
	envJaeger       = "JAEGER"
	envChromium     = "CHROMIUM"
)

// requireEnv returns an executable path from the environment, or skips the test when it is not set.
func requireEnv(t *testing.T, name string) string {
	t.Helper()
	value := os.Getenv(name)
	if value == "" {
		hint := map[string]string{
			envCollectorBin: "OTELCOL_VLLM_BIN=_build/otelcol-vllm after `make dist`",
			envPrometheus:   "PROMETHEUS=/usr/bin/prometheus from Debian's prometheus package",
			envJaeger:       "JAEGER=the binary `make jaeger` builds into ~/.cache/otelcol-vllm/tools/jaeger-<version>/",
			envChromium:     "CHROMIUM=/usr/bin/chromium from Debian's chromium package (`make chromium`)",
		}[name]
		t.Skipf("%s is not set: run `make test`, or set it (%s)", name, hint)
	}
	if !filepath.IsAbs(value) {
		// `go test` runs in the package directory; the Makefile passes paths relative to the repository root.
		if _, err := os.Stat(value); err != nil {
			value = filepath.Join(repoRoot(t), value)
		}
	}
	_, err := os.Stat(value)
	require.NoError(t, err, "%s points to a missing file", name)
	return value
}

// workshopRoot is the workshop module's directory (this package is its e2e/); repoRoot the repository's.
func workshopRoot(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	require.NoError(t, err)
	return filepath.Dir(wd)
}

func repoRoot(t *testing.T) string { return filepath.Dir(workshopRoot(t)) }

// freePort asks the kernel for an unused loopback port. The port is released before use, so another
// process could take it in between; on loopback in a test run that race is rare enough.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := l.Addr().(*net.TCPAddr).Port
	require.NoError(t, l.Close())
	return port
}

func loopback(port int) string { return "127.0.0.1:" + strconv.Itoa(port) }

// lockedBuffer collects a child process' output; the process writes while the test reads.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// process is a child process that is stopped when the test ends; its output is printed if the test failed.
type process struct {
	name   string
	cmd    *exec.Cmd
	output *lockedBuffer
	exited chan struct{}
	err    error
}

const logTailBytes = 16 << 10

func startProcess(t *testing.T, name string, env []string, bin string, args ...string) *process {
	t.Helper()
	p := &process{name: name, output: &lockedBuffer{}, exited: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout = p.output
	p.cmd.Stderr = p.output
	require.NoError(t, p.cmd.Start(), "starting %s", name)
	go func() {
		p.err = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		p.stop(t)
		if t.Failed() {
			out := p.output.String()
			if len(out) > logTailBytes {
				out = "…" + out[len(out)-logTailBytes:]
			}
			t.Logf("---- %s output (%s) ----\n%s", p.name, strings.Join(p.cmd.Args, " "), out)
		}
	})
	return p
}

func (p *process) running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

func (p *process) stop(t *testing.T) {
	if !p.running() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(15 * time.Second):
		t.Logf("%s did not stop within 15s of SIGTERM; killing it", p.name)
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// waitHTTP polls url until it answers 200, the process exits, or the timeout passes.
func waitHTTP(t *testing.T, p *process, url string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	client := &http.Client{Timeout: 2 * time.Second}
	for {
		resp, err := client.Get(url)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if !p.running() {
			t.Fatalf("%s exited before %s answered: %v", p.name, url, p.err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s did not answer 200 within %s (last error: %v)", p.name, url, timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// ---- Prometheus ----

type prometheusServer struct {
	proc *process
	base string // http://127.0.0.1:port
}

func (p *prometheusServer) remoteWriteURL() string { return p.base + "/api/v1/write" }

// startPrometheus runs Debian's Prometheus with the remote-write receiver and exemplar storage, on a fresh
// TSDB in a temporary directory, with no scrape targets.
func startPrometheus(t *testing.T) *prometheusServer {
	t.Helper()
	return startPrometheusOn(t, freePort(t))
}

// startPrometheusOn starts Prometheus on a given loopback port, for tests that point a collector at it before it
// runs.
func startPrometheusOn(t *testing.T, port int) *prometheusServer {
	t.Helper()
	return startPrometheusConfig(t, port, "global:\n  scrape_interval: 1m\n", t.TempDir())
}

// startPrometheusWithRules starts Prometheus evaluating deploy/prometheus/recording-rules.yaml every second;
// window, when set, replaces the rules' [5m] range so that a short test fills it.
func startPrometheusWithRules(t *testing.T, window string) *prometheusServer {
	t.Helper()
	dir := t.TempDir()
	rulesFile := filepath.Join(repoRoot(t), "deploy", "prometheus", "recording-rules.yaml")
	if window != "" {
		rules, err := os.ReadFile(rulesFile)
		require.NoError(t, err)
		rulesFile = filepath.Join(dir, "rules.yaml")
		require.NoError(t, os.WriteFile(rulesFile, []byte(strings.ReplaceAll(string(rules), "[5m]", "["+window+"]")), 0o600))
	}
	config := fmt.Sprintf("global:\n  scrape_interval: 1m\n  evaluation_interval: 1s\nrule_files:\n  - %s\n", rulesFile)
	return startPrometheusConfig(t, freePort(t), config, dir)
}

func startPrometheusConfig(t *testing.T, port int, config, dir string) *prometheusServer {
	t.Helper()
	bin := requireEnv(t, envPrometheus)
	configFile := filepath.Join(dir, "prometheus.yml")
	require.NoError(t, os.WriteFile(configFile, []byte(config), 0o600))
	proc := startProcess(t, "prometheus", nil, bin,
		"--config.file="+configFile,
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+loopback(port),
		"--web.enable-remote-write-receiver",
		"--enable-feature=exemplar-storage",
		"--log.level=warn",
	)
	server := &prometheusServer{proc: proc, base: "http://" + loopback(port)}
	waitHTTP(t, proc, server.base+"/-/ready", 60*time.Second)
	return server
}

type promSample struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

func (s promSample) float(t *testing.T) float64 {
	t.Helper()
	str, ok := s.Value[1].(string)
	require.True(t, ok, "sample value %v", s.Value)
	v, err := strconv.ParseFloat(str, 64)
	require.NoError(t, err)
	return v
}

type promResponse struct {
	Status    string          `json:"status"`
	ErrorType string          `json:"errorType"`
	Error     string          `json:"error"`
	Data      json.RawMessage `json:"data"`
}

func (p *prometheusServer) get(t *testing.T, path string, params url.Values) json.RawMessage {
	t.Helper()
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get(p.base + path + "?" + params.Encode())
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	var parsed promResponse
	require.NoError(t, json.Unmarshal(body, &parsed), "prometheus answered %s: %s", resp.Status, body)
	require.Equal(t, "success", parsed.Status, "%s %v: %s %s", path, params, parsed.ErrorType, parsed.Error)
	return parsed.Data
}

// query runs an instant query and returns its vector result.
func (p *prometheusServer) query(t *testing.T, expr string) []promSample {
	t.Helper()
	data := p.get(t, "/api/v1/query", url.Values{"query": {expr}})
	var result struct {
		ResultType string       `json:"resultType"`
		Result     []promSample `json:"result"`
	}
	require.NoError(t, json.Unmarshal(data, &result))
	require.Equal(t, "vector", result.ResultType, "query %s", expr)
	return result.Result
}

// scalar runs a query that must return exactly one sample and returns its value.
func (p *prometheusServer) scalar(t *testing.T, expr string) float64 {
	t.Helper()
	samples := p.query(t, expr)
	require.Len(t, samples, 1, "query %s returned %v", expr, samples)
	return samples[0].float(t)
}

// waitScalar polls a single-sample query until it equals want, or fails after timeout.
func (p *prometheusServer) waitScalar(t *testing.T, expr string, want float64, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last []promSample
	for time.Now().Before(deadline) {
		last = p.query(t, expr)
		if len(last) == 1 && last[0].float(t) == want {
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("%s: want %v within %s, last result %v", expr, want, timeout, last)
}

// metricNames lists every metric name Prometheus holds.
func (p *prometheusServer) metricNames(t *testing.T) []string {
	t.Helper()
	data := p.get(t, "/api/v1/label/__name__/values", url.Values{})
	var names []string
	require.NoError(t, json.Unmarshal(data, &names))
	return names
}

type exemplarSeries struct {
	SeriesLabels map[string]string `json:"seriesLabels"`
	Exemplars    []struct {
		Labels map[string]string `json:"labels"`
		Value  string            `json:"value"`
	} `json:"exemplars"`
}

func (p *prometheusServer) exemplars(t *testing.T, expr string) []exemplarSeries {
	t.Helper()
	now := time.Now()
	data := p.get(t, "/api/v1/query_exemplars", url.Values{
		"query": {expr},
		"start": {strconv.FormatInt(now.Add(-time.Hour).Unix(), 10)},
		"end":   {strconv.FormatInt(now.Add(time.Minute).Unix(), 10)},
	})
	var series []exemplarSeries
	require.NoError(t, json.Unmarshal(data, &series))
	return series
}

// ---- OTLP trace sink ----

// traceSink is an OTLP/gRPC trace server that keeps every span it receives.
type traceSink struct {
	ptraceotlp.UnimplementedGRPCServer
	endpoint string

	mu     sync.Mutex
	traces []ptrace.Traces
	spans  int
}

func startTraceSink(t *testing.T) *traceSink {
	t.Helper()
	sink := &traceSink{}
	sink.endpoint = serveTraces(t, sink)
	return sink
}

// serveTraces serves an OTLP/gRPC trace service on a free loopback port until the test ends.
func serveTraces(t *testing.T, srv ptraceotlp.GRPCServer) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	server := grpc.NewServer()
	ptraceotlp.RegisterGRPCServer(server, srv)
	go func() { _ = server.Serve(l) }()
	t.Cleanup(server.Stop)
	return l.Addr().String()
}

func (s *traceSink) Export(_ context.Context, req ptraceotlp.ExportRequest) (ptraceotlp.ExportResponse, error) {
	td := ptrace.NewTraces()
	req.Traces().CopyTo(td)
	s.mu.Lock()
	s.traces = append(s.traces, td)
	s.spans += td.SpanCount()
	s.mu.Unlock()
	return ptraceotlp.NewExportResponse(), nil
}

func (s *traceSink) spanCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.spans
}

func (s *traceSink) all() []ptrace.Traces {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]ptrace.Traces(nil), s.traces...)
}

func (s *traceSink) waitSpans(t *testing.T, want int, timeout time.Duration) {
	t.Helper()
	require.Eventually(t, func() bool { return s.spanCount() >= want }, timeout, 100*time.Millisecond,
		"trace sink: want %d spans", want)
	// a few more could still be in flight; give the exporter a moment and check there are no extra spans
	time.Sleep(500 * time.Millisecond)
	require.Equal(t, want, s.spanCount(), "trace sink received more spans than were sent")
}

// ---- collector ----

type collector struct {
	proc       *process
	otlpGRPC   string
	otlpHTTP   string
	health     string
	telemetry  string
	status     string // the embedded default's vllm_status exporter (OTELCOL_VLLM_STATUS_ENDPOINT)
	scrape     string // the embedded default's prometheus exporter (OTELCOL_VLLM_PROMETHEUS_ENDPOINT)
	instanceID string
}

// startCollector runs the distribution on the given config sources. The e2e configs read their loopback
// ports and targets from E2E_* environment variables; extra adds more. With no configs the binary starts without
// arguments, on its embedded default, whose listen addresses the OTELCOL_VLLM_* variables move to the same ports.
func startCollector(t *testing.T, name string, configs []string, extra map[string]string) *collector {
	t.Helper()
	bin := requireEnv(t, envCollectorBin)
	c := &collector{
		otlpGRPC:   loopback(freePort(t)),
		otlpHTTP:   loopback(freePort(t)),
		health:     loopback(freePort(t)),
		telemetry:  loopback(freePort(t)),
		status:     loopback(freePort(t)),
		scrape:     loopback(freePort(t)),
		instanceID: name,
	}
	env := []string{
		"E2E_OTLP_GRPC_ENDPOINT=" + c.otlpGRPC,
		"E2E_OTLP_HTTP_ENDPOINT=" + c.otlpHTTP,
		"E2E_HEALTH_ENDPOINT=" + c.health,
		"E2E_TELEMETRY_PORT=" + strings.TrimPrefix(c.telemetry, "127.0.0.1:"),
		"E2E_INSTANCE_ID=" + c.instanceID,
		"OTELCOL_VLLM_OTLP_GRPC_ENDPOINT=" + c.otlpGRPC,
		"OTELCOL_VLLM_OTLP_HTTP_ENDPOINT=" + c.otlpHTTP,
		"OTELCOL_VLLM_HEALTH_CHECK_ENDPOINT=" + c.health,
		"OTELCOL_VLLM_TELEMETRY_HOST=127.0.0.1",
		"OTELCOL_VLLM_TELEMETRY_PORT=" + strings.TrimPrefix(c.telemetry, "127.0.0.1:"),
		"OTELCOL_VLLM_STATUS_ENDPOINT=" + c.status,
		"OTELCOL_VLLM_PROMETHEUS_ENDPOINT=" + c.scrape,
	}
	for k, v := range extra {
		env = append(env, k+"="+v)
	}
	args := make([]string, 0, 2*len(configs))
	for _, cfg := range configs {
		args = append(args, "--config", cfg)
	}
	c.proc = startProcess(t, name, env, bin, args...)
	waitHTTP(t, c.proc, "http://"+c.health+"/", 60*time.Second)
	return c
}

// telemetryValue sums the collector's own Prometheus metric over its labels (e.g.
// otelcol_receiver_accepted_spans; the name with a _total suffix matches too, whichever the collector uses).
func (c *collector) telemetryValue(t *testing.T, metric string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + c.telemetry + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	var sum float64
	for _, line := range strings.Split(string(body), "\n") {
		name := line
		if i := strings.IndexAny(line, "{ "); i >= 0 {
			name = line[:i]
		}
		if name != metric && name != metric+"_total" {
			continue
		}
		fields := strings.Fields(line)
		v, err := strconv.ParseFloat(fields[len(fields)-1], 64)
		require.NoError(t, err, "line %q", line)
		sum += v
	}
	return sum
}

// run executes a command to completion and returns its stdout; stderr is shown on failure.
func run(t *testing.T, timeout time.Duration, dir, bin string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	err := cmd.Run()
	require.NoError(t, err, "%s %s\nstderr:\n%s\nstdout:\n%s", bin, strings.Join(args, " "), stderr.String(), stdout.String())
	return stdout.Bytes()
}

var (
	vllmgenOnce sync.Once
	vllmgenDir  string
	vllmgenPath string
	vllmgenErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if vllmgenDir != "" {
		_ = os.RemoveAll(vllmgenDir)
	}
	os.Exit(code)
}

// vllmgen builds cmd/vllmgen once per test binary.
func vllmgen(t *testing.T) string {
	t.Helper()
	vllmgenOnce.Do(func() {
		dir, err := os.MkdirTemp("", "e2e-vllmgen-")
		if err != nil {
			vllmgenErr = err
			return
		}
		vllmgenDir = dir
		vllmgenPath = filepath.Join(dir, "vllmgen")
		cmd := exec.Command("go", "build", "-o", vllmgenPath, "./cmd/vllmgen")
		cmd.Dir = filepath.Dir(mustGetwd())
		if out, err := cmd.CombinedOutput(); err != nil {
			vllmgenErr = fmt.Errorf("go build ./cmd/vllmgen: %w\n%s", err, out)
		}
	})
	require.NoError(t, vllmgenErr)
	return vllmgenPath
}

// builtCommand is a command of cmd/ built once per test binary, beside vllmgen (whose folder TestMain removes).
type builtCommand struct {
	once sync.Once
	path string
	err  error
}

func (b *builtCommand) get(t *testing.T, name string) string {
	t.Helper()
	dir := filepath.Dir(vllmgen(t))
	b.once.Do(func() {
		b.path = filepath.Join(dir, name)
		cmd := exec.Command("go", "build", "-o", b.path, "./cmd/"+name)
		cmd.Dir = filepath.Dir(mustGetwd())
		if out, err := cmd.CombinedOutput(); err != nil {
			b.err = fmt.Errorf("go build ./cmd/%s: %w\n%s", name, err, out)
		}
	})
	require.NoError(t, b.err)
	return b.path
}

func mustGetwd() string {
	wd, err := os.Getwd()
	if err != nil {
		panic(err)
	}
	return wd
}
