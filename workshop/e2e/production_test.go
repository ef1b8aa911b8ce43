package e2e

import (
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-vllm/otelcol-vllm/workshop/testkit"
	"github.com/otelcol-vllm/otelcol-vllm/workshop/testkit/otlpsink"
)

// requestsIn is the vllm.requests total a metrics backend holds: every collector's, model's and operation's
// latest cumulative value, added up.
func requestsIn(sink *otlpsink.Sink) float64 {
	total, _, _ := sink.Total("vllm.requests", nil)
	return total
}

// TestProductionExampleSurvivesOutageAndRestart runs examples/forward-metrics.yaml while both metric backends are
// down, stops the collector, starts the backends, starts the collector again on the same storage directory, and
// checks that every request counted before the restart reaches both backends: otlp_http/metrics through its
// file_storage sending queue, prometheus_remote_write through the spool's (otlp_grpc/spool). After the restart the
// queue sends the request that was in flight when the collector stopped after the newer ones (upstream's
// persistent queue puts it back at the end); Prometheus must keep the newest value, not that older one.
func TestProductionExampleSurvivesOutageAndRestart(t *testing.T) {
	testkit.Tool(t, testkit.Prometheus)
	storage := t.TempDir()
	promPort, otlpPort := testkit.FreePort(t), testkit.FreePort(t)
	env := map[string]string{
		"OTELCOL_VLLM_STORAGE_DIR":    storage,
		"OTELCOL_VLLM_INSTANCE_ID":    "collector-p",
		"PROMETHEUS_REMOTE_WRITE_URL": "http://" + testkit.Loopback(promPort) + "/api/v1/write",
		"OTLP_METRICS_ENDPOINT":       "http://" + testkit.Loopback(otlpPort),
		"OTELCOL_VLLM_SPOOL_ENDPOINT": testkit.FreeLoopback(t),
	}
	configs := []string{
		filepath.Join(repoRoot(t), "examples", "forward-metrics.yaml"),
		"yaml:receivers::otlp::protocols::grpc::endpoint: ${env:E2E_OTLP_GRPC_ENDPOINT}",
		"yaml:receivers::otlp::protocols::http::endpoint: ${env:E2E_OTLP_HTTP_ENDPOINT}",
		"yaml:extensions::health_check::endpoint: ${env:E2E_HEALTH_ENDPOINT}",
		"yaml:extensions::pprof::endpoint: 127.0.0.1:0",
		"yaml:extensions::zpages::endpoint: 127.0.0.1:0",
		"yaml:service::telemetry::metrics::readers:\n  - pull:\n      exporter:\n        prometheus:\n          host: 127.0.0.1\n          port: ${env:E2E_TELEMETRY_PORT}",
		"yaml:connectors::vllm::metrics_flush_interval: 1s",
	}

	first := startCollector(t, "collector-before-restart", configs, env)
	s := sendRun(t, genRun{seed: 31, count: 60, protocol: "grpc", shape: "v1", models: "llama-8b,qwen-7b",
		resource: "service.instance.id=vllm-0", slo: defaultSLO}, first.otlpGRPC, first.otlpHTTP)
	// wait until the connector has flushed into the pipeline, whose fan-out puts each request into both
	// persistent queues (otlp_http/metrics' and the remote-write spool's): the data is then on disk, not only in
	// the connector's memory
	require.Eventually(t, func() bool {
		return first.telemetryValue(t, "otelcol_exporter_queue_size") >= 2
	}, 30*time.Second, 200*time.Millisecond, "nothing reached the persistent queues")
	time.Sleep(2 * time.Second) // a few more flushes into the queue
	first.proc.Stop()
	require.False(t, first.proc.Running())

	prom := startPrometheusOn(t, promPort)
	sink := &otlpsink.Sink{}
	otlpsink.StartHTTPAt(t, sink, testkit.Loopback(otlpPort))
	second := startCollector(t, "collector-after-restart", configs, env)
	_ = second

	want := float64(s.Total.Spans)
	assert.Eventually(t, func() bool { return requestsIn(sink) == want }, 60*time.Second, 500*time.Millisecond,
		"OTLP/HTTP backend: vllm.requests %v, want %v", requestsIn(sink), want)
	var last []promSample
	assert.Eventually(t, func() bool {
		last = prom.query(t, `sum(max_over_time(`+promRequests+`{collector_instance_id="collector-p"}[10m]))`)
		return len(last) == 1 && last[0].float(t) == want
	}, 60*time.Second, 500*time.Millisecond, "Prometheus: want %v, last %v", want, last)
	// the newest value, not the older snapshot resent last: Prometheus refused its older samples
	assert.Eventually(t, func() bool {
		last = prom.query(t, `sum(`+promRequests+`{collector_instance_id="collector-p"})`)
		return len(last) == 1 && last[0].float(t) == want
	}, 30*time.Second, 500*time.Millisecond, "Prometheus' latest value: want %v, last %v", want, last)
	t.Logf("after the restart: OTLP backend has %v requests, Prometheus %s", requestsIn(sink), strconv.FormatFloat(want, 'f', 0, 64))
}
