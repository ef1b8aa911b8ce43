package e2e

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/otelcol-vllm/otelcol-vllm/workshop/testkit"
	"github.com/otelcol-vllm/otelcol-vllm/workshop/testkit/otlpsink"
)

// sendSpans exports td to the collector's OTLP/gRPC receiver.
func sendSpans(t *testing.T, c *collector, td ptrace.Traces) {
	t.Helper()
	conn, err := grpc.NewClient(c.otlpGRPC, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(64<<20)))
	require.NoError(t, err)
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err = ptraceotlp.NewGRPCClient(conn).Export(ctx, ptraceotlp.NewExportRequestFromTraces(td))
	require.NoError(t, err)
}

// exampleOnLoopback runs an example config with its listen addresses moved to the test's loopback ports, plus
// the given overrides (yaml: config sources).
func exampleOnLoopback(t *testing.T, name, example string, env map[string]string, overrides ...string) *collector {
	t.Helper()
	configs := append([]string{
		filepath.Join(repoRoot(t), "examples", example),
		"yaml:receivers::otlp::protocols::grpc::endpoint: ${env:E2E_OTLP_GRPC_ENDPOINT}",
		"yaml:receivers::otlp::protocols::grpc::max_recv_msg_size_mib: 64",
		"yaml:receivers::otlp::protocols::http::endpoint: ${env:E2E_OTLP_HTTP_ENDPOINT}",
		"yaml:extensions::health_check::endpoint: ${env:E2E_HEALTH_ENDPOINT}",
		"yaml:service::telemetry::metrics::readers:\n  - pull:\n      exporter:\n        prometheus:\n          host: 127.0.0.1\n          port: ${env:E2E_TELEMETRY_PORT}",
	}, overrides...)
	return startCollector(t, name, configs, env)
}

// TestEmptyDimensionIsOneSeriesInPrometheus: Prometheus drops an empty label, so tenant="" and no tenant are one
// series there. They were two series in the connector, both written to that one Prometheus series, each flush
// overwriting the other: vllm_requests_total read 5 for 3 + 5 requests.
func TestEmptyDimensionIsOneSeriesInPrometheus(t *testing.T) {
	prom := startPrometheus(t)
	config := `receivers:
  otlp:
    protocols: {grpc: {endpoint: "${env:E2E_OTLP_GRPC_ENDPOINT}"}}
extensions:
  health_check: {endpoint: "${env:E2E_HEALTH_ENDPOINT}"}
connectors:
  vllm:
    metrics_flush_interval: 1s
    dimensions: [{name: tenant}]
exporters:
  prometheus_remote_write:
    endpoint: ${env:E2E_REMOTE_WRITE_URL}
service:
  extensions: [health_check]
  pipelines:
    traces: {receivers: [otlp], exporters: [vllm]}
    metrics: {receivers: [vllm], exporters: [prometheus_remote_write]}
`
	path := filepath.Join(t.TempDir(), "config.yaml")
	require.NoError(t, os.WriteFile(path, []byte(config), 0o600))
	c := startCollector(t, "empty-dimension", []string{path}, map[string]string{"E2E_REMOTE_WRITE_URL": prom.remoteWriteURL()})
	td := requestSpans(8, func(int) string { return "m" })
	spans := td.ResourceSpans().At(0).ScopeSpans().At(0).Spans()
	for i := range 3 {
		spans.At(i).Attributes().PutStr("tenant", "")
	}
	sendSpans(t, c, td)
	prom.waitScalar(t, `sum(`+promRequests+`{job="vllm-hostile"})`, 8, 30*time.Second)
	assert.Len(t, prom.query(t, promRequests+`{job="vllm-hostile"}`), 1, "one series")
	// a few more flushes: the value stays (two series would overwrite each other)
	time.Sleep(2 * time.Second)
	assert.Equal(t, 8.0, prom.scalar(t, `sum(`+promRequests+`{job="vllm-hostile"})`))
}

// TestShippedExampleDeliversLargestSeries runs examples/add-to-existing-pipeline.yaml, whose metrics go to an
// OTLP/gRPC backend, with the largest attribute values the connector allows (max_attribute_length 4096, two
// dimensions of 4 KiB): every series must reach a receiver with gRPC's default 4 MiB message limit. A batch
// processor after the connector (send_batch_max_size: 2000 points) merged its 1 MiB requests into about 17 MiB,
// and every point was refused.
func TestShippedExampleDeliversLargestSeries(t *testing.T) {
	sink := &otlpsink.Sink{}
	c := exampleOnLoopback(t, "largest-series", "add-to-existing-pipeline.yaml",
		map[string]string{"OTLP_BACKEND_ENDPOINT": otlpsink.StartGRPC(t, sink)},
		"yaml:connectors::vllm::metrics_flush_interval: 2s",
		"yaml:connectors::vllm::max_attribute_length: 4096",
		"yaml:connectors::vllm::dimensions: [{name: tenant}, {name: team}]",
	)
	const series = 150
	td := requestSpans(series, func(int) string { return "m" })
	spans := td.ResourceSpans().At(0).ScopeSpans().At(0).Spans()
	for i := range series {
		a := spans.At(i).Attributes()
		a.PutStr("tenant", fmt.Sprintf("tenant-%03d-", i)+strings.Repeat("t", 4096))
		a.PutStr("team", fmt.Sprintf("team-%03d-", i)+strings.Repeat("u", 4096))
	}
	sendSpans(t, c, td)
	deadline := time.Now().Add(60 * time.Second)
	var requests float64
	var got int
	for time.Now().Before(deadline) {
		if requests, _, got = sink.Total("vllm.requests", nil); got == series {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	assert.Equal(t, series, got, "series that reached the default OTLP receiver")
	assert.Equal(t, float64(series), requests)
	assert.Zero(t, c.telemetryValue(t, "otelcol_exporter_send_failed_metric_points"), "every request was accepted")
}

// dirSize is the bytes of the files under dir.
func dirSize(t *testing.T, dir string) int64 {
	t.Helper()
	var size int64
	require.NoError(t, filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err == nil {
			size += info.Size()
		}
		return err
	}))
	return size
}

// The bound docs/distribution.md states for examples/forward-metrics.yaml: 64 requests of at most 1 MiB per
// persistent queue (two: the remote-write spool and otlp_http/metrics), which bbolt may hold at up to about
// twice their size before it compacts; the collector's memory stays that of a collector whose backends are up
// (about 200 MiB with 5,000 series) plus the requests being sent.
const (
	outageDiskBound = 2 * 2 * 64 << 20
	outageRSSBound  = 512 << 20
)

// TestRemoteWriteOutageIsBounded runs examples/forward-metrics.yaml with both metric backends unreachable while
// 1,000 series are flushed every 3 seconds: the remote-write WAL it used to write grew about 500 MB per flush, and
// RSS past 4 GB in 75 s. Memory and disk must stay under the stated bound, and what was queued must arrive once
// the backends are back.
func TestRemoteWriteOutageIsBounded(t *testing.T) {
	testkit.Tool(t, testkit.Prometheus)
	storage := t.TempDir()
	promPort, otlpPort := testkit.FreePort(t), testkit.FreePort(t)
	c := exampleOnLoopback(t, "outage", "forward-metrics.yaml", map[string]string{
		"OTELCOL_VLLM_STORAGE_DIR":    storage,
		"OTELCOL_VLLM_INSTANCE_ID":    "collector-outage",
		"OTELCOL_VLLM_SPOOL_ENDPOINT": testkit.FreeLoopback(t),
		"PROMETHEUS_REMOTE_WRITE_URL": "http://" + testkit.Loopback(promPort) + "/api/v1/write",
		"OTLP_METRICS_ENDPOINT":       "http://" + testkit.Loopback(otlpPort),
	},
		"yaml:extensions::pprof::endpoint: 127.0.0.1:0",
		"yaml:extensions::zpages::endpoint: 127.0.0.1:0",
		// a flush every 3s (not the example's 15s), so that the queues fill within seconds; 1,000 series make nine
		// requests of about 1 MiB per flush, which this machine's two cores convert and send as fast as they come
		"yaml:connectors::vllm::metrics_flush_interval: 3s",
	)
	const series = 1000
	sendSpans(t, c, requestSpans(series, func(i int) string { return fmt.Sprintf("model-%04d", i) }))

	// until the queues are full and refuse flushes (then a few more flushes), or memory or disk passed the bound
	full := false
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
		if c.proc.Memory(t).PeakRSS > outageRSSBound || dirSize(t, storage) > outageDiskBound {
			break
		}
		if c.telemetryValue(t, "otelcol_exporter_enqueue_failed_metric_points") > 0 {
			full = true
			time.Sleep(6 * time.Second)
			break
		}
	}
	mem := c.proc.Memory(t)
	t.Logf("memory: %s", mem)
	rss, disk := mem.PeakRSS, dirSize(t, storage)
	t.Logf("outage: peak RSS %d MiB, storage %d MiB, queue size %v", rss>>20, disk>>20, c.telemetryValue(t, "otelcol_exporter_queue_size"))
	assert.Less(t, rss, int64(outageRSSBound), "peak RSS during the outage")
	assert.Less(t, disk, int64(outageDiskBound), "storage during the outage")
	require.True(t, full, "the queues never filled: they are not bounded")

	// the backends come back: every request arrives
	prom := startPrometheusOn(t, promPort)
	sink := &otlpsink.Sink{}
	otlpsink.StartHTTPAt(t, sink, testkit.Loopback(otlpPort))
	deadline := time.Now().Add(90 * time.Second)
	var inProm float64
	for time.Now().Before(deadline) {
		if got := prom.query(t, `sum(`+promRequests+`{collector_instance_id="collector-outage"})`); len(got) == 1 {
			inProm = got[0].float(t)
		}
		if inProm == series {
			break
		}
		t.Logf("Prometheus has %v requests; queues %v, sent %v, send failed %v", inProm, c.telemetryValue(t, "otelcol_exporter_queue_size"),
			c.telemetryValue(t, "otelcol_exporter_sent_metric_points"), c.telemetryValue(t, "otelcol_exporter_send_failed_metric_points"))
		time.Sleep(3 * time.Second)
	}
	assert.Equal(t, float64(series), inProm, "requests in Prometheus once it is back")
	assert.Eventually(t, func() bool { return requestsIn(sink) == series }, 30*time.Second, 500*time.Millisecond,
		"OTLP/HTTP backend: vllm.requests %v, want %d", requestsIn(sink), series)
	assert.Less(t, c.proc.Memory(t).PeakRSS, int64(outageRSSBound), "peak RSS while the queues drained")
}
