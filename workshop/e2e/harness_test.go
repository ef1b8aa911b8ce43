package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/otelcol-vllm/otelcol-vllm/workshop/testkit"
)

// workshopRoot is the workshop module's directory (this package is its e2e/); repoRoot the repository's.
func workshopRoot(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	require.NoError(t, err)
	return filepath.Dir(wd)
}

func repoRoot(t *testing.T) string { return filepath.Dir(workshopRoot(t)) }

// ---- Prometheus ----

type prometheusServer struct {
	proc *testkit.Process
	base string // http://127.0.0.1:port
}

func (p *prometheusServer) remoteWriteURL() string { return p.base + "/api/v1/write" }

// startPrometheus runs Debian's Prometheus with the remote-write receiver and exemplar storage, on a fresh
// TSDB in a temporary directory, with no scrape targets.
func startPrometheus(t *testing.T) *prometheusServer {
	t.Helper()
	return startPrometheusOn(t, testkit.FreePort(t))
}

// startPrometheusOn starts Prometheus on a given loopback port, for tests that point a collector at it before it
// runs.
func startPrometheusOn(t *testing.T, port int) *prometheusServer {
	t.Helper()
	return startPrometheusConfig(t, port, "global:\n  scrape_interval: 1m\n", t.TempDir())
}

// startPrometheusWithRules starts Prometheus evaluating deploy/prometheus/recording-rules.yaml every second;
// window, when set, replaces the rules' [5m] range so that a short test fills it, and offset, when set, shifts
// that range into the past (as Prometheus' rule query_offset would), so that a rule evaluated now does not read
// the last second or two, where one side's remote-written samples may not have arrived yet: with a short window
// that gap alone lowers a rate() by a few per cent.
func startPrometheusWithRules(t *testing.T, window, offset string) *prometheusServer {
	t.Helper()
	dir := t.TempDir()
	rulesFile := filepath.Join(repoRoot(t), "deploy", "prometheus", "recording-rules.yaml")
	if window != "" {
		rules, err := os.ReadFile(rulesFile)
		require.NoError(t, err)
		selector := "[" + window + "]"
		if offset != "" {
			selector += " offset " + offset
		}
		rulesFile = filepath.Join(dir, "rules.yaml")
		require.NoError(t, os.WriteFile(rulesFile, []byte(strings.ReplaceAll(string(rules), "[5m]", selector)), 0o600))
	}
	config := fmt.Sprintf("global:\n  scrape_interval: 1m\n  evaluation_interval: 1s\nrule_files:\n  - %s\n", rulesFile)
	return startPrometheusConfig(t, testkit.FreePort(t), config, dir)
}

func startPrometheusConfig(t *testing.T, port int, config, dir string) *prometheusServer {
	t.Helper()
	bin := testkit.Tool(t, testkit.Prometheus)
	configFile := filepath.Join(dir, "prometheus.yml")
	require.NoError(t, os.WriteFile(configFile, []byte(config), 0o600))
	proc := testkit.StartProcess(t, "prometheus", nil, bin,
		"--config.file="+configFile,
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+testkit.Loopback(port),
		"--web.enable-remote-write-receiver",
		"--enable-feature=exemplar-storage",
		"--log.level=warn",
	)
	server := &prometheusServer{proc: proc, base: "http://" + testkit.Loopback(port)}
	proc.WaitHTTP(t, server.base+"/-/ready", 60*time.Second)
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

// ---- collector ----

type collector struct {
	proc       *testkit.Process
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
	bin := testkit.Tool(t, testkit.CollectorBin)
	c := &collector{
		otlpGRPC:   testkit.FreeLoopback(t),
		otlpHTTP:   testkit.FreeLoopback(t),
		health:     testkit.FreeLoopback(t),
		telemetry:  testkit.FreeLoopback(t),
		status:     testkit.FreeLoopback(t),
		scrape:     testkit.FreeLoopback(t),
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
	c.proc = testkit.StartProcess(t, name, env, bin, args...)
	c.proc.WaitHTTP(t, "http://"+c.health+"/", 60*time.Second)
	return c
}

// telemetryValue sums the collector's own Prometheus metric over its labels (e.g.
// otelcol_receiver_accepted_spans; the name with a _total suffix matches too, whichever the collector uses).
func (c *collector) telemetryValue(t *testing.T, metric string) float64 {
	t.Helper()
	return testkit.TelemetryValue(t, "http://"+c.telemetry+"/metrics", metric)
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
