package benchpeers

import (
	"context"
	"testing"

	"github.com/open-telemetry/opentelemetry-collector-contrib/connector/spanmetricsconnector"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/connector"
	"go.opentelemetry.io/collector/connector/connectortest"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/processor/processortest"

	"github.com/otelcol-vllm/otelcol-vllm/connector/vllmconnector"
	"github.com/otelcol-vllm/otelcol-vllm/internal/vllmrequest/vllmrequesttest"
	"github.com/otelcol-vllm/otelcol-vllm/processor/vllmprocessor"
)

const batchSize = 1000

// perSpan reports the cost per span of one batch.
func perSpan(b *testing.B) {
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batchSize), "ns/span")
}

func consumeLoop(b *testing.B, c connector.Traces, batch ptrace.Traces) {
	require.NoError(b, c.Start(context.Background(), nil))
	b.Cleanup(func() { require.NoError(b, c.Shutdown(context.Background())) })
	require.NoError(b, c.ConsumeTraces(context.Background(), batch)) // create the series: measure steady state
	// Each round gets new span ids, outside the timer: the same spans again would be a retry's duplicates,
	// which the vllm connector skips.
	allocs := testing.AllocsPerRun(3, func() {
		vllmrequesttest.UniqueSpanIDs(batch)
		_ = c.ConsumeTraces(context.Background(), batch)
	})
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		vllmrequesttest.UniqueSpanIDs(batch)
		b.StartTimer()
		_ = c.ConsumeTraces(context.Background(), batch)
	}
	perSpan(b)
	b.ReportMetric(allocs/batchSize, "allocs/span")
}

// BenchmarkSpansToMetrics runs every contender over the same 1,000 realistic vLLM V1 spans (4 models).
func BenchmarkSpansToMetrics(b *testing.B) {
	batch := vllmrequesttest.V1Batch(batchSize, 4)

	b.Run("bare_attribute_read", func(b *testing.B) {
		var sink float64
		allocs := testing.AllocsPerRun(3, func() { sink += readVLLMAttributes(batch) })
		b.ReportAllocs()
		for b.Loop() {
			sink += readVLLMAttributes(batch)
		}
		perSpan(b)
		b.ReportMetric(allocs/batchSize, "allocs/span")
		_ = sink
	})

	b.Run("vllm_connector", func(b *testing.B) {
		f := vllmconnector.NewFactory()
		c, err := f.CreateTracesToMetrics(context.Background(), connectortest.NewNopSettings(f.Type()), f.CreateDefaultConfig(), consumertest.NewNop())
		require.NoError(b, err)
		consumeLoop(b, c, batch)
	})

	// the same spans, 12.5% sampled at the source (an OTEP 235 threshold in every tracestate): each is weighted
	sampled := ptrace.NewTraces()
	batch.CopyTo(sampled)
	vllmrequesttest.ForEachSpan(sampled, func(s ptrace.Span) { s.TraceState().FromRaw("ot=th:e") })
	b.Run("vllm_connector_sampled", func(b *testing.B) {
		f := vllmconnector.NewFactory()
		c, err := f.CreateTracesToMetrics(context.Background(), connectortest.NewNopSettings(f.Type()), f.CreateDefaultConfig(), consumertest.NewNop())
		require.NoError(b, err)
		consumeLoop(b, c, sampled)
	})

	b.Run("span_metrics_connector", func(b *testing.B) {
		f := spanmetricsconnector.NewFactory()
		cfg := f.CreateDefaultConfig().(*spanmetricsconnector.Config)
		// the same model dimension the vllm connector keeps; everything else at its defaults
		cfg.Dimensions = []spanmetricsconnector.Dimension{{Name: "gen_ai.request.model"}}
		c, err := f.CreateTracesToMetrics(context.Background(), connectortest.NewNopSettings(f.Type()), cfg, consumertest.NewNop())
		require.NoError(b, err)
		consumeLoop(b, c, batch)
	})

	b.Run("vllm_processor", func(b *testing.B) {
		f := vllmprocessor.NewFactory()
		p, err := f.CreateTraces(context.Background(), processortest.NewNopSettings(f.Type()), f.CreateDefaultConfig(), consumertest.NewNop())
		require.NoError(b, err)
		require.NoError(b, p.Start(context.Background(), nil))
		b.ReportAllocs()
		for b.Loop() {
			b.StopTimer()
			work := ptrace.NewTraces()
			batch.CopyTo(work) // the processor mutates spans: fresh copies, no room for the additions, as unmarshalled
			b.StartTimer()
			_ = p.ConsumeTraces(context.Background(), work)
		}
		perSpan(b)
		require.NoError(b, p.Shutdown(context.Background()))
	})
}

// readVLLMAttributes is the floor: visit every span and read the attributes the derivation core reads.
func readVLLMAttributes(td ptrace.Traces) float64 {
	var total float64
	rss := td.ResourceSpans()
	for i := 0; i < rss.Len(); i++ {
		sss := rss.At(i).ScopeSpans()
		for j := 0; j < sss.Len(); j++ {
			spans := sss.At(j).Spans()
			for k := 0; k < spans.Len(); k++ {
				spans.At(k).Attributes().Range(func(_ string, v pcommon.Value) bool {
					if v.Type() == pcommon.ValueTypeDouble {
						total += v.Double()
					}
					return true
				})
			}
		}
	}
	return total
}
