package e2e

import (
	"compress/gzip"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
)

// otlpHTTPMetricsSink is an OTLP/HTTP (protobuf) metrics receiver that keeps the value of vllm.requests per
// collector instance and model, as the latest cumulative point it received.
type otlpHTTPMetricsSink struct {
	server *http.Server

	mu       sync.Mutex
	requests map[string]int64 // "instance/model" -> latest cumulative vllm.requests
}

// startOTLPHTTPMetricsSink serves on a port chosen in advance, so the collector can be pointed at it while it is down.
func startOTLPHTTPMetricsSink(t *testing.T, port int) *otlpHTTPMetricsSink {
	t.Helper()
	l, err := net.Listen("tcp", loopback(port))
	require.NoError(t, err)
	s := &otlpHTTPMetricsSink{requests: map[string]int64{}}
	s.server = &http.Server{Handler: http.HandlerFunc(s.handle), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = s.server.Serve(l) }()
	t.Cleanup(func() { _ = s.server.Close() })
	return s
}

func (s *otlpHTTPMetricsSink) handle(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/v1/metrics" {
		http.NotFound(w, r)
		return
	}
	var body io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		body = zr
	}
	raw, err := io.ReadAll(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	req := pmetricotlp.NewExportRequest()
	if err := req.UnmarshalProto(raw); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.record(req.Metrics())
	out, _ := pmetricotlp.NewExportResponse().MarshalProto()
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(out)
}

func (s *otlpHTTPMetricsSink) record(md pmetric.Metrics) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := 0; i < md.ResourceMetrics().Len(); i++ {
		rm := md.ResourceMetrics().At(i)
		instance, _ := rm.Resource().Attributes().Get("collector.instance.id")
		for j := 0; j < rm.ScopeMetrics().Len(); j++ {
			ms := rm.ScopeMetrics().At(j).Metrics()
			for k := 0; k < ms.Len(); k++ {
				m := ms.At(k)
				if m.Name() != "vllm.requests" || m.Type() != pmetric.MetricTypeSum {
					continue
				}
				// cumulative points of one series: keep the highest (points may arrive out of order after a restart)
				perKey := map[string]int64{}
				for p := 0; p < m.Sum().DataPoints().Len(); p++ {
					dp := m.Sum().DataPoints().At(p)
					model, _ := dp.Attributes().Get("gen_ai.request.model")
					key := instance.AsString() + "/" + model.AsString() + "/" + operation(dp)
					perKey[key] = max(perKey[key], dp.IntValue())
				}
				for key, v := range perKey {
					s.requests[key] = max(s.requests[key], v)
				}
			}
		}
	}
}

func operation(dp pmetric.NumberDataPoint) string {
	v, _ := dp.Attributes().Get("gen_ai.operation.name")
	return v.AsString()
}

func (s *otlpHTTPMetricsSink) total() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var sum int64
	for _, v := range s.requests {
		sum += v
	}
	return sum
}

// TestProductionExampleSurvivesOutageAndRestart runs examples/forward-metrics.yaml while both metric backends are
// down, stops the collector, starts the backends, starts the collector again on the same storage directory, and
// checks that every request counted before the restart reaches both backends: otlp_http/metrics through its
// file_storage sending queue, prometheus_remote_write through the spool's (otlp_grpc/spool). After the restart the
// queue sends the request that was in flight when the collector stopped after the newer ones (upstream's
// persistent queue puts it back at the end); Prometheus must keep the newest value, not that older one.
func TestProductionExampleSurvivesOutageAndRestart(t *testing.T) {
	requireEnv(t, envPrometheus)
	storage := t.TempDir()
	promPort, otlpPort := freePort(t), freePort(t)
	env := map[string]string{
		"OTELCOL_VLLM_STORAGE_DIR":    storage,
		"OTELCOL_VLLM_INSTANCE_ID":    "collector-p",
		"PROMETHEUS_REMOTE_WRITE_URL": "http://" + loopback(promPort) + "/api/v1/write",
		"OTLP_METRICS_ENDPOINT":       "http://" + loopback(otlpPort),
		"OTELCOL_VLLM_SPOOL_ENDPOINT": loopback(freePort(t)),
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
	first.proc.stop(t)
	require.False(t, first.proc.running())

	prom := startPrometheusOn(t, promPort)
	sink := startOTLPHTTPMetricsSink(t, otlpPort)
	second := startCollector(t, "collector-after-restart", configs, env)
	_ = second

	want := float64(s.Total.Spans)
	assert.Eventually(t, func() bool { return float64(sink.total()) == want }, 60*time.Second, 500*time.Millisecond,
		"OTLP/HTTP backend: vllm.requests %d, want %v", sink.total(), want)
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
	t.Logf("after the restart: OTLP backend has %d requests, Prometheus %s", sink.total(), strconv.FormatFloat(want, 'f', 0, 64))
}
