package e2e

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-vllm/otelcol-vllm/workshop/testkit"
	"github.com/otelcol-vllm/otelcol-vllm/workshop/testkit/otlpsink"
)

func testConfig(t *testing.T) string {
	t.Helper()
	return filepath.Join(workshopRoot(t), "e2e", "testdata", "collector.yaml")
}

// fakeVLLMMetrics serves a /metrics page shaped like vLLM's (prometheus_client text format, vLLM's names and
// labels), for the prometheus receiver to scrape. It lists both KV-cache gauges: newer vLLM exposes
// vllm:kv_cache_usage_perc, older vllm:gpu_cache_usage_perc.
const fakeVLLMMetricsPage = `# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="llama-8b"} 3.0
# HELP vllm:num_requests_waiting Number of requests waiting to be processed.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="llama-8b"} 1.0
# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{engine="0",model_name="llama-8b"} 0.42
# HELP vllm:gpu_cache_usage_perc GPU KV-cache usage. 1 means 100 percent usage.
# TYPE vllm:gpu_cache_usage_perc gauge
vllm:gpu_cache_usage_perc{engine="0",model_name="llama-8b"} 0.42
# HELP vllm:request_success_total Count of successfully processed requests.
# TYPE vllm:request_success_total counter
vllm:request_success_total{engine="0",finished_reason="stop",model_name="llama-8b"} 120.0
vllm:request_success_total{engine="0",finished_reason="length",model_name="llama-8b"} 30.0
vllm:request_success_total{engine="0",finished_reason="abort",model_name="llama-8b"} 0.0
`

func startFakeVLLMMetrics(t *testing.T) string {
	t.Helper()
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		_, _ = io.WriteString(w, fakeVLLMMetricsPage)
	}))
	t.Cleanup(server.Close)
	return strings.TrimPrefix(server.URL, "http://")
}

// singleRun keeps the single-collector results, so that the scale-out test can compare with them when both run.
var singleRun struct {
	sync.Mutex
	values map[string]map[string]float64
}

func snapshot(t *testing.T, prom *prometheusServer, exps []expectation) map[string]map[string]float64 {
	t.Helper()
	out := map[string]map[string]float64{}
	for _, e := range exps {
		out[e.expr] = byLabel(t, prom, e.expr, "gen_ai_request_model")
	}
	return out
}

// checkNoExportFailures reads the collector's own telemetry: nothing refused, nothing failed to export.
func checkNoExportFailures(t *testing.T, c *collector) {
	t.Helper()
	for _, m := range []string{
		"otelcol_receiver_refused_spans",
		"otelcol_receiver_failed_spans",
		"otelcol_exporter_send_failed_spans",
		"otelcol_exporter_send_failed_metric_points",
	} {
		assert.Zero(t, c.telemetryValue(t, m), "%s of %s", m, c.instanceID)
	}
	assert.Positive(t, c.telemetryValue(t, "otelcol_exporter_sent_metric_points"), "%s sent no metric points", c.instanceID)
}

func TestSingleCollector(t *testing.T) {
	prom := startPrometheus(t)
	sink := &otlpsink.Sink{}
	vllmTarget := startFakeVLLMMetrics(t)
	c := startCollector(t, "collector-0", []string{testConfig(t)}, map[string]string{
		"E2E_REMOTE_WRITE_URL":    prom.remoteWriteURL(),
		"E2E_TRACE_SINK_ENDPOINT": otlpsink.StartGRPC(t, sink),
		"E2E_VLLM_METRICS_TARGET": vllmTarget,
	})
	proxy := startRecordingProxy(t, c.otlpGRPC)

	var want summary
	var proxied int64
	for _, r := range workloadRuns {
		grpcEndpoint := c.otlpGRPC
		if r.protocol == "grpc" {
			grpcEndpoint = proxy.endpoint // keep a copy of what was sent, to compare with what the sink gets
		}
		s := sendRun(t, r, grpcEndpoint, c.otlpHTTP)
		if r.protocol == "grpc" {
			proxied += s.Total.Spans
		}
		want.add(s)
	}
	require.Positive(t, want.Total.Spans)

	sink.WaitForSpans(t, int(want.Total.Spans), 30*time.Second)
	received := indexSpans(sink.TraceRequests())
	require.Len(t, received, int(want.Total.Spans), "span ids must be unique")

	t.Run("traces arrive enriched with every original attribute", func(t *testing.T) {
		sent := indexSpans(proxy.traces())
		require.EqualValues(t, proxied, len(sent))
		checkTracesIntact(t, sent, received)
		checkSinkTotals(t, received, want)
	})

	prom.waitScalar(t, "sum("+promRequests+")", float64(want.Total.Spans), 60*time.Second)
	exps := modelExpectations(want)

	t.Run("totals, sums and counts equal what was sent", func(t *testing.T) {
		checkExpectations(t, prom, exps)
	})

	t.Run("histogram buckets", func(t *testing.T) {
		for _, h := range latencyHistograms {
			checkBuckets(t, prom, h.prom+"_bucket", attrValues(received, h.spanAttrs...))
		}
		checkBuckets(t, prom, promDecodeThroughput+"_bucket", attrValues(received, "vllm.request.decode.throughput"))
		// V0 detailed traces only
		checkBuckets(t, prom, promScheduler+"_bucket", attrValues(received, "gen_ai.latency.time_in_scheduler"))
		checkBuckets(t, prom, promModelForward+"_bucket", attrValues(received, "gen_ai.latency.time_in_model_forward"))
		checkBuckets(t, prom, promModelExecute+"_bucket", attrValues(received, "gen_ai.latency.time_in_model_execute"))
		checkBuckets(t, prom, promRequestTokens+`_bucket{gen_ai_token_type="input"}`, attrValues(received, "gen_ai.usage.prompt_tokens"))
		checkBuckets(t, prom, promRequestTokens+`_bucket{gen_ai_token_type="output"}`, attrValues(received, "gen_ai.usage.completion_tokens"))
	})

	t.Run("histogram_quantile", func(t *testing.T) {
		checkQuantiles(t, prom, promTTFT, attrValues(received, "gen_ai.latency.time_to_first_token"))
		checkQuantiles(t, prom, promTPOT, attrValues(received, "vllm.request.time_per_output_token"))
		checkQuantiles(t, prom, promRequestDuration, attrValues(received, "gen_ai.latency.e2e"))
	})

	t.Run("exemplars", func(t *testing.T) {
		checkExemplars(t, prom, received)
	})

	t.Run("labels", func(t *testing.T) {
		// job is the vLLM service.name, instance its service.instance.id, and the collector adds its own id
		samples := prom.query(t, promRequests)
		require.NotEmpty(t, samples)
		for _, s := range samples {
			assert.Equal(t, "vllm-server", s.Metric["job"], "%v", s.Metric)
			assert.Equal(t, "vllm-0", s.Metric["instance"], "%v", s.Metric)
			assert.Equal(t, "collector-0", s.Metric["collector_instance_id"], "%v", s.Metric)
			assert.Equal(t, "vllm", s.Metric["gen_ai_provider_name"], "%v", s.Metric)
			assert.Contains(t, []string{"chat", "text_completion"}, s.Metric["gen_ai_operation_name"], "%v", s.Metric)
		}
	})

	t.Run("vLLM /metrics scraped through the prometheus receiver", func(t *testing.T) {
		for expr, want := range map[string]float64{
			`sum(vllm:num_requests_running)`:                            3,
			`sum(vllm:num_requests_waiting)`:                            1,
			`sum(vllm:kv_cache_usage_perc)`:                             0.42,
			`sum(vllm:request_success_total{finished_reason="stop"})`:   120,
			`sum(vllm:request_success_total{finished_reason="length"})`: 30,
		} {
			var got []promSample
			require.Eventually(t, func() bool {
				got = prom.query(t, expr)
				return len(got) == 1 && closeEnough(got[0].float(t), want)
			}, 30*time.Second, 500*time.Millisecond, "%s: want %v, last %v", expr, want, got)
		}
		labels := prom.query(t, `vllm:num_requests_running`)
		require.Len(t, labels, 1)
		assert.Equal(t, "llama-8b", labels[0].Metric["model_name"])
		assert.Equal(t, "vllm", labels[0].Metric["job"])
	})

	t.Run("deploy/metrics.txt names exist", func(t *testing.T) {
		checkDeployMetrics(t, prom)
	})

	t.Run("collector telemetry", func(t *testing.T) {
		checkNoExportFailures(t, c)
		assert.EqualValues(t, want.Total.Spans, c.telemetryValue(t, "otelcol_receiver_accepted_spans"))
	})

	singleRun.Lock()
	singleRun.values = snapshot(t, prom, exps)
	singleRun.Unlock()
}

func TestScaleOut(t *testing.T) {
	prom := startPrometheus(t)
	sink := &otlpsink.Sink{}
	vllmTarget := startFakeVLLMMetrics(t)
	env := map[string]string{
		"E2E_REMOTE_WRITE_URL":    prom.remoteWriteURL(),
		"E2E_TRACE_SINK_ENDPOINT": otlpsink.StartGRPC(t, sink),
		"E2E_VLLM_METRICS_TARGET": vllmTarget,
	}
	collectors := []*collector{
		startCollector(t, "collector-a", []string{testConfig(t)}, env),
		startCollector(t, "collector-b", []string{testConfig(t)}, env),
	}

	// the same runs as the single-collector test, split: the first to collector-a, the second to collector-b
	var want summary
	perInstance := map[string]float64{}
	for i, r := range workloadRuns {
		c := collectors[i%len(collectors)]
		s := sendRun(t, r, c.otlpGRPC, c.otlpHTTP)
		want.add(s)
		perInstance[c.instanceID] += float64(s.Total.Spans)
	}
	sink.WaitForSpans(t, int(want.Total.Spans), 30*time.Second)
	prom.waitScalar(t, "sum("+promRequests+")", float64(want.Total.Spans), 60*time.Second)
	exps := modelExpectations(want)

	t.Run("totals across instances equal what was sent", func(t *testing.T) {
		checkExpectations(t, prom, exps)
	})

	t.Run("totals equal the single-collector run", func(t *testing.T) {
		singleRun.Lock()
		single := singleRun.values
		singleRun.Unlock()
		if single == nil {
			t.Skip("TestSingleCollector did not run in this process")
		}
		got := snapshot(t, prom, exps)
		for expr, values := range single {
			for model, v := range values {
				assert.True(t, closeEnough(got[expr][model], v), "%s{model=%s}: scale-out %v, single %v", expr, model, got[expr][model], v)
			}
		}
	})

	t.Run("each instance has its own series", func(t *testing.T) {
		got := byLabel(t, prom, "sum by (collector_instance_id) ("+promRequests+")", "collector_instance_id")
		assert.Equal(t, perInstance, got)
		// the scraped vLLM gauges are kept apart by the same label
		var gauges map[string]float64
		assert.Eventually(t, func() bool {
			gauges = byLabel(t, prom, "vllm:num_requests_running", "collector_instance_id")
			return len(gauges) == len(collectors)
		}, 30*time.Second, 500*time.Millisecond, "vllm:num_requests_running by collector_instance_id: %v", gauges)
	})

	t.Run("no collisions or rejected writes", func(t *testing.T) {
		for _, c := range collectors {
			checkNoExportFailures(t, c)
		}
		self := prometheusSelfMetrics(t, prom)
		for _, m := range []string{
			"prometheus_tsdb_out_of_order_samples_total",
			"prometheus_tsdb_out_of_bound_samples_total",
			"prometheus_tsdb_head_out_of_order_samples_appended_total",
		} {
			assert.Zero(t, self[m], "%s", m)
		}
		assert.Zero(t, self[`prometheus_http_requests_total{code="400",handler="/api/v1/write"}`], "remote writes answered 400")
	})
}

// prometheusSelfMetrics reads Prometheus' own /metrics, summing each metric over its labels, except
// prometheus_http_requests_total, which is kept per code and handler.
func prometheusSelfMetrics(t *testing.T, prom *prometheusServer) map[string]float64 {
	t.Helper()
	resp, err := http.Get(prom.base + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	out := map[string]float64{}
	for _, line := range strings.Split(string(body), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		series := line[:i]
		if strings.HasPrefix(series, "prometheus_http_requests_total{") {
			code := labelValue(series, "code")
			handler := labelValue(series, "handler")
			out[fmt.Sprintf(`prometheus_http_requests_total{code=%q,handler=%q}`, code, handler)] += v
			continue
		}
		name := series
		if j := strings.IndexByte(series, '{'); j >= 0 {
			name = series[:j]
		}
		out[name] += v
	}
	return out
}

func labelValue(series, label string) string {
	i := strings.Index(series, label+`="`)
	if i < 0 {
		return ""
	}
	rest := series[i+len(label)+2:]
	return rest[:strings.IndexByte(rest, '"')]
}

func TestExamplesValidate(t *testing.T) {
	bin := testkit.Tool(t, testkit.CollectorBin)
	examples, err := filepath.Glob(filepath.Join(repoRoot(t), "examples", "*.yaml"))
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(examples), 4)
	storage := t.TempDir()
	for _, path := range examples {
		t.Run(filepath.Base(path), func(t *testing.T) {
			cmd := exec.Command(bin, "validate", "--config", path)
			cmd.Env = append(os.Environ(), "OTELCOL_VLLM_STORAGE_DIR="+storage)
			out, err := cmd.CombinedOutput()
			require.NoError(t, err, "%s", out)
		})
	}
	// validate must reject what it should: the check is not a no-op
	cmd := exec.Command(bin, "validate", "--config", examples[0], "--set", "processors::vllm::slo::ttft=-1s")
	out, err := cmd.CombinedOutput()
	require.Error(t, err, "an invalid SLO passed validation: %s", out)
	assert.Contains(t, string(out), "slo.ttft")
}
