package vllmprocessor

import (
	"context"
	"math"
	"path/filepath"
	"testing"
	"time"

	"github.com/open-telemetry/opentelemetry-collector-contrib/pkg/golden"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/connector"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/metric/metricdata/metricdatatest"

	"github.com/otelcol-vllm/otelcol-vllm/connector/vllmconnector"
	"github.com/otelcol-vllm/otelcol-vllm/internal/vllmrequest"
	"github.com/otelcol-vllm/otelcol-vllm/internal/vllmrequest/vllmrequesttest"
	"github.com/otelcol-vllm/otelcol-vllm/processor/vllmprocessor/internal/metadatatest"
)

func readFixture(t *testing.T, name string) ptrace.Traces {
	t.Helper()
	td, err := golden.ReadTraces(filepath.Join("..", "..", "testdata", "spans", name+".yaml"))
	require.NoError(t, err)
	return td
}

func seedSLOConfig() *Config {
	cfg := createDefaultConfig().(*Config)
	cfg.Request.SLO = vllmrequest.SLOConfig{TTFT: dur(200 * time.Millisecond), TPOT: dur(50 * time.Millisecond), E2E: dur(5 * time.Second)}
	return cfg
}

// spanAttrs flattens every span's attributes, in order, as raw maps.
func spanAttrs(td ptrace.Traces) []map[string]any {
	var out []map[string]any
	for i := 0; i < td.ResourceSpans().Len(); i++ {
		sss := td.ResourceSpans().At(i).ScopeSpans()
		for j := 0; j < sss.Len(); j++ {
			for k := 0; k < sss.At(j).Spans().Len(); k++ {
				out = append(out, sss.At(j).Spans().At(k).Attributes().AsRaw())
			}
		}
	}
	return out
}

func TestProcessorAddsDerivedAttributes(t *testing.T) {
	const qwen = "Qwen/Qwen2.5-7B-Instruct"
	tests := []struct {
		fixture string
		cfg     *Config
		added   []map[string]any // per span, exactly the attributes the processor must add
	}{
		{"v1_newest_scope", seedSLOConfig(), []map[string]any{{
			"gen_ai.provider.name": "vllm", "gen_ai.operation.name": "chat", "gen_ai.request.model": "unknown", // model.default
			AttrTimePerOutputToken: 2.9102 / 255, AttrDecodeThroughput: 255 / 2.9102,
			AttrSLOMet: false, AttrSLOViolations: []any{"ttft"},
		}}},
		{"v1_legacy_scope", seedSLOConfig(), []map[string]any{{
			"gen_ai.provider.name": "vllm", "gen_ai.operation.name": "text_completion",
			"gen_ai.request.model": "meta-llama/Llama-3.1-8B-Instruct",
			AttrTimePerOutputToken: 0.01, AttrDecodeThroughput: 100.0,
			AttrSLOMet: true,
		}}},
		{"v0", seedSLOConfig(), []map[string]any{{
			"gen_ai.provider.name": "vllm", "gen_ai.operation.name": "chat", "gen_ai.request.model": "mistralai/Mistral-7B-Instruct-v0.3",
			AttrTimePerOutputToken: 0.1, AttrDecodeThroughput: 10.0,
			AttrPrefillDuration: 0.25, AttrDecodeDuration: 1.0, AttrInferenceDuration: 1.25,
			AttrSLOMet: false, AttrSLOViolations: []any{"ttft", "tpot"},
		}}},
		{"v1_one_token", seedSLOConfig(), []map[string]any{{
			"gen_ai.provider.name": "vllm", "gen_ai.operation.name": "text_completion", "gen_ai.request.model": qwen,
			AttrSLOMet: true,
		}}},
		{"v1_nan", seedSLOConfig(), []map[string]any{{
			"gen_ai.provider.name": "vllm", "gen_ai.operation.name": "chat", "gen_ai.request.model": qwen,
			AttrTimePerOutputToken: 2.9102 / 255, AttrDecodeThroughput: 255 / 2.9102,
			AttrSLOMet: true,
		}}},
		{"v1_greedy", createDefaultConfig().(*Config), []map[string]any{{
			"gen_ai.provider.name": "vllm", "gen_ai.operation.name": "chat", "gen_ai.request.model": qwen,
			AttrTimePerOutputToken: 0.02, AttrDecodeThroughput: 50.0,
		}}},
		{"v1_aborted", seedSLOConfig(), []map[string]any{{
			"gen_ai.provider.name": "vllm", "gen_ai.operation.name": "chat", "gen_ai.request.model": qwen,
			AttrTimePerOutputToken: 1.441 / 36, AttrDecodeThroughput: 36 / 1.441,
			AttrSLOMet: false, AttrSLOViolations: []any{"ttft", "error"}, // the same verdict as the connector's
		}}},
		{"v1_embeddings", seedSLOConfig(), []map[string]any{{
			"gen_ai.provider.name": "vllm", "gen_ai.operation.name": "embeddings", "gen_ai.request.model": qwen,
			AttrSLOMet: true, // no TTFT or TPOT objective for a pooling request
		}}},
		{"not_vllm", seedSLOConfig(), []map[string]any{{}, {}, {}}},
	}
	for _, tt := range tests {
		t.Run(tt.fixture, func(t *testing.T) {
			sink := new(consumertest.TracesSink)
			p, err := NewFactory().CreateTraces(context.Background(), metadatatest.NewSettings(componenttest.NewTelemetry()), tt.cfg, sink)
			require.NoError(t, err)
			before := spanAttrs(readFixture(t, tt.fixture))
			require.NoError(t, p.ConsumeTraces(context.Background(), readFixture(t, tt.fixture)))
			require.Len(t, sink.AllTraces(), 1)
			after := spanAttrs(sink.AllTraces()[0])
			require.Len(t, after, len(tt.added))
			for i := range after {
				for k, v := range before[i] {
					if f, ok := v.(float64); ok && math.IsNaN(f) {
						assert.True(t, math.IsNaN(after[i][k].(float64)), "vLLM attribute %s must be intact", k)
						continue
					}
					assert.Equal(t, v, after[i][k], "vLLM attribute %s must be intact", k)
				}
				added := map[string]any{}
				for k, v := range after[i] {
					if _, ok := before[i][k]; !ok {
						added[k] = v
					}
				}
				assertAttrs(t, tt.added[i], added)
			}
		})
	}
}

func assertAttrs(t *testing.T, want, got map[string]any) {
	t.Helper()
	require.Len(t, got, len(want), "added attributes: %v", got)
	for k, w := range want {
		if f, ok := w.(float64); ok {
			assert.InDelta(t, f, got[k], 1e-12, k)
			continue
		}
		assert.Equal(t, w, got[k], k)
	}
}

func TestProcessorKeepsExistingLabels(t *testing.T) {
	td := readFixture(t, "v1_newest_scope")
	attrs := td.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0).Attributes()
	attrs.PutStr("gen_ai.operation.name", "generate_content")
	attrs.PutStr("gen_ai.provider.name", "vllm-fork")
	sink := new(consumertest.TracesSink)
	p, err := NewFactory().CreateTraces(context.Background(), metadatatest.NewSettings(componenttest.NewTelemetry()), createDefaultConfig(), sink)
	require.NoError(t, err)
	require.NoError(t, p.ConsumeTraces(context.Background(), td))
	got := sink.AllTraces()[0].ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0).Attributes().AsRaw()
	assert.Equal(t, "generate_content", got["gen_ai.operation.name"])
	assert.Equal(t, "vllm-fork", got["gen_ai.provider.name"])
}

func TestProcessorTelemetry(t *testing.T) {
	tel := componenttest.NewTelemetry()
	t.Cleanup(func() { require.NoError(t, tel.Shutdown(context.Background())) })
	p, err := NewFactory().CreateTraces(context.Background(), metadatatest.NewSettings(tel), seedSLOConfig(), consumertest.NewNop())
	require.NoError(t, err)
	for _, f := range []string{"v1_newest_scope", "v1_negative_queue", "v1_nan", "v1_string_latency", "not_vllm"} {
		require.NoError(t, p.ConsumeTraces(context.Background(), readFixture(t, f)))
	}
	require.NoError(t, p.Shutdown(context.Background()))

	metadatatest.AssertEqualProcessorVllmSpansRecognized(t, tel, []metricdata.DataPoint[int64]{{Value: 4}}, metricdatatest.IgnoreTimestamp())
	rejected := func(field, reason string) metricdata.DataPoint[int64] {
		return metricdata.DataPoint[int64]{Value: 1, Attributes: attribute.NewSet(attribute.String("field", field), attribute.String("reason", reason))}
	}
	metadatatest.AssertEqualProcessorVllmFieldsRejected(t, tel, []metricdata.DataPoint[int64]{
		rejected("queue", "negative"), rejected("prefill", "exceeds_e2e"), rejected("inference", "exceeds_e2e"),
		rejected("ttft", "nan"), rejected("e2e", "wrong_type"),
	}, metricdatatest.IgnoreTimestamp())
}

// BenchmarkProcessor measures the per-span cost of enriching a batch of 1,000 realistic V1 spans.
func BenchmarkProcessor(b *testing.B) {
	batch := vllmrequesttest.V1Batch(1000, 4)
	p, err := newSpanEnricher(metadatatest.NewSettings(componenttest.NewTelemetry()), seedSLOConfig())
	require.NoError(b, err)
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		work := ptrace.NewTraces()
		batch.CopyTo(work) // fresh attribute slices without room for the additions, as unmarshalled from OTLP
		b.StartTimer()
		_, _ = p.processTraces(context.Background(), work)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*1000), "ns/span")
}

// TestUnknownOperationsAreCountedWhereDecided: the processor decides the operation of a span whose request id
// has no known prefix (text_completion) and writes it into gen_ai.operation.name, so a vllm connector after it
// sees a known operation. The processor counts them; together, processor then connector count each span once.
func TestUnknownOperationsAreCountedWhereDecided(t *testing.T) {
	tel := componenttest.NewTelemetry()
	t.Cleanup(func() { require.NoError(t, tel.Shutdown(context.Background())) })
	cf := vllmconnector.NewFactory()
	conn, err := cf.CreateTracesToMetrics(context.Background(), connector.Settings{
		ID: component.NewID(cf.Type()), TelemetrySettings: tel.NewTelemetrySettings(), BuildInfo: component.NewDefaultBuildInfo(),
	}, cf.CreateDefaultConfig(), consumertest.NewNop())
	require.NoError(t, err)
	p, err := NewFactory().CreateTraces(context.Background(), metadatatest.NewSettings(tel), createDefaultConfig(), conn)
	require.NoError(t, err)
	td := vllmrequesttest.V1Batch(10, 1)
	for i := range 7 {
		td.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(i).Attributes().PutStr(vllmrequest.AttrRequestID, "mystery-1")
	}
	require.NoError(t, p.ConsumeTraces(context.Background(), td))
	require.NoError(t, p.Shutdown(context.Background()))
	require.NoError(t, conn.Shutdown(context.Background()))

	metadatatest.AssertEqualProcessorVllmOperationsUnknown(t, tel, []metricdata.DataPoint[int64]{{Value: 7}}, metricdatatest.IgnoreTimestamp())
	_, err = tel.GetMetric("otelcol_connector_vllm_operations_unknown")
	assert.Error(t, err, "the connector saw the operation the processor wrote: it counts none")
}
