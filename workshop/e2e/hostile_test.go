package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/otelcol-vllm/otelcol-vllm/workshop/testkit"
	"github.com/otelcol-vllm/otelcol-vllm/workshop/testkit/otlpsink"
)

// requestBatches numbers the batches requestSpans builds, so that each batch's spans have their own trace ids:
// spans sent again with the same ids count once (the connector's duplicate_window).
var requestBatches atomic.Uint32

// requestSpans is n vLLM V1 request spans, the model of span i being model(i), with ids of their own.
func requestSpans(n int, model func(i int) string) ptrace.Traces {
	batch := requestBatches.Add(1)
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "vllm-hostile")
	spans := rs.ScopeSpans().AppendEmpty().Spans()
	for i := range n {
		s := spans.AppendEmpty()
		s.SetName("llm_request")
		s.SetTraceID(pcommon.TraceID{1, byte(i), byte(i >> 8), byte(i >> 16), byte(batch), byte(batch >> 8), byte(batch >> 16)})
		s.SetSpanID(pcommon.SpanID{2, byte(i), byte(i >> 8), byte(i >> 16)})
		a := s.Attributes()
		a.PutStr("gen_ai.request.id", "chatcmpl-"+strconv.Itoa(i))
		a.PutStr("gen_ai.response.model", model(i))
		a.PutDouble("gen_ai.latency.time_to_first_token", 0.1)
		a.PutDouble("gen_ai.latency.e2e", 1.5)
		a.PutDouble("gen_ai.latency.time_in_queue", 0.01)
		a.PutInt("gen_ai.usage.prompt_tokens", 100)
		a.PutInt("gen_ai.usage.completion_tokens", 50)
	}
	return td
}

// nestedResourceJSON is one OTLP/JSON request whose resource's service.instance.id is an array nested depth
// deep, with one request span.
func nestedResourceJSON(depth int) []byte {
	var b bytes.Buffer
	b.WriteString(`{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"vllm-hostile"}},{"key":"service.instance.id","value":`)
	for range depth {
		b.WriteString(`{"arrayValue":{"values":[`)
	}
	for range depth {
		b.WriteString(`]}}`)
	}
	b.WriteString(`}]},"scopeSpans":[{"spans":[{"traceId":"0102030405060708090a0b0c0d0e0f10","spanId":"0102030405060708","name":"llm_request",` +
		`"attributes":[{"key":"gen_ai.request.id","value":{"stringValue":"chatcmpl-nested"}},{"key":"gen_ai.response.model","value":{"stringValue":"nested"}},` +
		`{"key":"gen_ai.latency.e2e","value":{"doubleValue":1.0}}]}]}]}]}`)
	return b.Bytes()
}

// TestHostileInput sends, on loopback, what once made the collector's memory grow without bound and stopped
// every metric delivery: thousands of distinct 64 KiB model names, one 512 KiB model name among 5,000 normal
// series, and a resource attribute nested 100,000 deep. Every normal series must still reach a default OTLP
// receiver, and the collector's memory must stay bounded.
func TestHostileInput(t *testing.T) {
	// gRPC's defaults, among them the 4 MiB message limit of a default collector's OTLP receiver
	sink := &otlpsink.Sink{}
	sinkEndpoint := otlpsink.StartGRPC(t, sink)
	c := startCollector(t, "hostile", []string{filepath.Join(workshopRoot(t), "e2e", "testdata", "hostile.yaml")},
		map[string]string{"E2E_METRICS_SINK_ENDPOINT": sinkEndpoint})
	conn, err := grpc.NewClient(c.otlpGRPC, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(64<<20)))
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	client := ptraceotlp.NewGRPCClient(conn)
	send := func(td ptrace.Traces) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, err := client.Export(ctx, ptraceotlp.NewExportRequestFromTraces(td))
		require.NoError(t, err)
	}

	// 5,000 normal series and one poison model name
	const normal = 5000
	models := make([]string, normal)
	for i := range models {
		models[i] = fmt.Sprintf("model-%04d", i)
	}
	send(requestSpans(normal, func(i int) string { return models[i] }))
	send(requestSpans(1, func(int) string { return "poison-" + strings.Repeat("x", 512<<10) }))

	// the deeply nested resource, over OTLP/JSON
	resp, err := http.Post("http://"+c.otlpHTTP+"/v1/traces", "application/json", bytes.NewReader(nestedResourceJSON(100_000)))
	require.NoError(t, err)
	_ = resp.Body.Close()
	t.Logf("nested OTLP/JSON request: HTTP %d", resp.StatusCode)

	// 2,000 distinct 64 KiB model names (128 MiB of input), 100 spans a request
	for batch := 0; batch < 20; batch++ {
		send(requestSpans(100, func(i int) string {
			return fmt.Sprintf("big-%d-%d-", batch, i) + strings.Repeat("y", 64<<10)
		}))
	}

	// the poison series arrives too, its model cut to max_attribute_length, and the nested resource's request
	poison := "poison-" + strings.Repeat("x", 256-len("poison-"))
	want := append([]string{poison, "nested"}, models...)
	deadline := time.Now().Add(60 * time.Second)
	var missing []string
	for {
		missing = sink.Missing("vllm.requests", "gen_ai.request.model", want)
		if len(missing) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	require.Empty(t, missing, "series that never reached the default OTLP receiver (%d of %d)", len(missing), len(want))

	assert.Zero(t, c.telemetryValue(t, "otelcol_exporter_send_failed_metric_points"), "every flush was accepted downstream")
	assert.Positive(t, c.telemetryValue(t, "otelcol_connector_vllm_attributes_truncated"))
	assert.Positive(t, c.telemetryValue(t, "otelcol_connector_vllm_attributes_dropped"), "the nested array was dropped")
	// The input alone is 128 MiB of model names, which the connector kept once per series and copied into every
	// point of a flush; bounded, the collector stays within a few hundred MiB.
	rss := c.proc.Memory(t).PeakRSS
	t.Logf("peak RSS %d MiB, %d requests received", rss>>20, sink.Requests())
	assert.Less(t, rss, int64(600<<20), "peak RSS of the collector")
}

// TestConfigValidationNamesTheKey runs `otelcol-vllm validate` on configurations that once validated and then
// misbehaved: each must be refused, naming the key.
func TestConfigValidationNamesTheKey(t *testing.T) {
	bin := testkit.Tool(t, testkit.CollectorBin)
	tests := []struct {
		name, connector, processor, nvml, want string
	}{
		{name: "exemplars beyond the bound", connector: "exemplars: {enabled: true, max_per_data_point: 2000000000}",
			want: "exemplars.max_per_data_point: must be between 1 and 100, got 2000000000"},
		{name: "nanosecond flush", connector: "metrics_flush_interval: 1ns", want: "metrics_flush_interval: must be at least 1s, got 1ns"},
		{name: "duration without a unit", connector: "slo: {ttft: 200}", want: "slo.ttft: 200 has no unit; write a duration with its unit, such as 200ms"},
		{name: "fractional duration", connector: "slo: {ttft: 0.2}", want: "slo.ttft: 0.2 has no unit"},
		{name: "processor duration without a unit", processor: "slo: {e2e: 5}", want: "slo.e2e: 5 has no unit"},
		{name: "fractional integer", connector: "cardinality_limit: 10.5", want: "cardinality_limit: 10.5 is not an integer"},
		{name: "overflowing integer", connector: "cardinality_limit: 99999999999999999999", want: "cardinality_limit: 1e+20 is out of range"},
		{name: "cardinality beyond the bound", connector: "cardinality_limit: 2000000", want: "cardinality_limit: must be between 1 and 1000000, got 2000000"},
		{name: "exponential size beyond the bound", connector: "histograms: {type: exponential, max_size: 100000}",
			want: "histograms.max_size: must be between 2 and 1024, got 100000"},
		{name: "tiny requests", connector: "max_request_bytes: 10", want: "max_request_bytes: must be between 65536 and 67108864, got 10"},
		{name: "typo", connector: "cardinality_limt: 10", want: "cardinality_limt"},
		{name: "sampling ratio below 2^-56", connector: "sampling: {ratio: 1e-320}", want: "sampling.ratio: must be a sampling probability from 2^-56"},
		{name: "nvml timeout without a unit", nvml: "timeout: 5", want: "timeout: 5 has no unit"},
		{name: "nvml interval without a unit", nvml: "collection_interval: 10", want: "collection_interval: 10 has no unit"},
		{name: "nvml nanosecond interval", nvml: "collection_interval: 1ns", want: "collection_interval: must be at least 1s, got 1ns"},
		{name: "nvml refresh without a unit", nvml: "kubernetes: {refresh_interval: 10}", want: "kubernetes.refresh_interval: 10 has no unit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// each case is a flow mapping's content: `{slo: {ttft: 200}}`
			config := fmt.Sprintf(`receivers:
  otlp:
    protocols: {grpc: {endpoint: "127.0.0.1:0"}}
  nvml: {%s}
processors:
  vllm: {%s}
connectors:
  vllm: {%s}
exporters:
  debug: {}
service:
  pipelines:
    traces: {receivers: [otlp], processors: [vllm], exporters: [vllm]}
    metrics: {receivers: [vllm, nvml], exporters: [debug]}
`, tt.nvml, tt.processor, tt.connector)
			path := filepath.Join(t.TempDir(), "config.yaml")
			require.NoError(t, os.WriteFile(path, []byte(config), 0o600))
			out, err := exec.Command(bin, "validate", "--config", path).CombinedOutput()
			require.Error(t, err, "validated: %s", out)
			assert.Contains(t, string(out), tt.want)
		})
	}
}
