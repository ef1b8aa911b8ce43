package vllmconnector

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// realisticV1Batch builds n V1 request spans over 4 models, with varied latencies, from the newest-scope fixture.
func realisticV1Batch(tb testing.TB, n int) ptrace.Traces {
	tmplTraces := readFixture(tb, "v1_newest_scope")
	tmplRS := tmplTraces.ResourceSpans().At(0)
	tmpl := tmplRS.ScopeSpans().At(0).Spans().At(0)
	td := ptrace.NewTraces()
	const models = 4
	for m := 0; m < models; m++ {
		rs := td.ResourceSpans().AppendEmpty()
		tmplRS.Resource().CopyTo(rs.Resource())
		rs.Resource().Attributes().PutStr("gen_ai.request.model", fmt.Sprintf("model-%d", m))
		ss := rs.ScopeSpans().AppendEmpty()
		tmplRS.ScopeSpans().At(0).Scope().CopyTo(ss.Scope())
		for i := m; i < n; i += models {
			s := ss.Spans().AppendEmpty()
			tmpl.CopyTo(s)
			s.SetSpanID(pcommon.SpanID{byte(i), byte(i >> 8), 1})
			a := s.Attributes()
			f := float64(i%100) / 100
			queue, prefill, decode := 0.01+f/10, 0.04+f/5, 0.5+3*f
			a.PutDouble("gen_ai.latency.time_in_queue", queue)
			a.PutDouble("gen_ai.latency.time_in_model_prefill", prefill)
			a.PutDouble("gen_ai.latency.time_in_model_decode", decode)
			a.PutDouble("gen_ai.latency.time_in_model_inference", prefill+decode)
			a.PutDouble("gen_ai.latency.time_to_first_token", queue+prefill+0.002)
			a.PutDouble("gen_ai.latency.e2e", queue+prefill+decode+0.004)
			a.PutInt("gen_ai.usage.completion_tokens", int64(1+i%512))
			if i%3 == 0 {
				a.PutStr("gen_ai.request.id", fmt.Sprintf("cmpl-%d", i))
			}
		}
	}
	return td
}

func benchmarkConnector(b *testing.B, cfg *Config) {
	h := newHarness(b, cfg)
	batch := realisticV1Batch(b, 1000)
	require.NoError(b, h.c.ConsumeTraces(context.Background(), batch)) // create the series: steady state below
	b.ReportAllocs()
	for b.Loop() {
		_ = h.c.ConsumeTraces(context.Background(), batch)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*1000), "ns/span")
	b.ReportMetric(float64(testing.AllocsPerRun(1, func() { _ = h.c.ConsumeTraces(context.Background(), batch) }))/1000, "allocs/span")
}

// BenchmarkConnector1000V1Spans measures the steady-state cost per span of aggregating a 1,000-span batch.
func BenchmarkConnector1000V1Spans(b *testing.B) {
	b.Run("default", func(b *testing.B) { benchmarkConnector(b, createDefaultConfig().(*Config)) })
	b.Run("slo+exemplars", func(b *testing.B) {
		cfg := seedSLOConfig()
		cfg.Exemplars.Enabled = true
		benchmarkConnector(b, cfg)
	})
	b.Run("exponential", func(b *testing.B) {
		cfg := seedSLOConfig()
		cfg.Histograms.Type = HistogramExponential
		benchmarkConnector(b, cfg)
	})
}

// BenchmarkFlush measures building the metrics of 1,000 series.
func BenchmarkFlush(b *testing.B) {
	cfg := seedSLOConfig()
	cfg.Dimensions = []Dimension{{Name: "series"}}
	h := newHarness(b, cfg)
	batch := realisticV1Batch(b, 1000)
	rss := batch.ResourceSpans()
	for i := 0; i < rss.Len(); i++ {
		spans := rss.At(i).ScopeSpans().At(0).Spans()
		for j := 0; j < spans.Len(); j++ {
			spans.At(j).Attributes().PutInt("series", int64(i*1000+j))
		}
	}
	require.NoError(b, h.c.ConsumeTraces(context.Background(), batch))
	b.ReportAllocs()
	for b.Loop() {
		h.c.mu.Lock()
		_ = h.c.buildMetrics(h.clock.Now())
		h.c.mu.Unlock()
	}
}
