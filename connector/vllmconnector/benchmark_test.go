package vllmconnector

import (
	"context"
	"runtime"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/otelcol-vllm/otelcol-vllm/internal/vllmrequest/vllmrequesttest"
)

func benchmarkConnector(b *testing.B, cfg *Config, tracestate string) {
	h := newHarness(b, cfg)
	batch := vllmrequesttest.V1Batch(1000, 4)
	if tracestate != "" {
		rss := batch.ResourceSpans()
		for i := 0; i < rss.Len(); i++ {
			spans := rss.At(i).ScopeSpans().At(0).Spans()
			for j := 0; j < spans.Len(); j++ {
				spans.At(j).TraceState().FromRaw(tracestate)
			}
		}
	}
	require.NoError(b, h.c.ConsumeTraces(context.Background(), batch)) // create the series: steady state below
	// Each round gets new span ids, outside the timer: the same spans again would be a retry's duplicates,
	// which the connector skips.
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		vllmrequesttest.UniqueSpanIDs(batch)
		b.StartTimer()
		_ = h.c.ConsumeTraces(context.Background(), batch)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*1000), "ns/span")
	vllmrequesttest.UniqueSpanIDs(batch)
	b.ReportMetric(float64(testing.AllocsPerRun(1, func() {
		vllmrequesttest.UniqueSpanIDs(batch)
		_ = h.c.ConsumeTraces(context.Background(), batch)
	}))/1000, "allocs/span")
}

// BenchmarkConnector1000V1Spans measures the steady-state cost per span of aggregating a 1,000-span batch.
func BenchmarkConnector1000V1Spans(b *testing.B) {
	b.Run("default", func(b *testing.B) { benchmarkConnector(b, createDefaultConfig().(*Config), "") })
	b.Run("no_duplicate_window", func(b *testing.B) {
		cfg := createDefaultConfig().(*Config)
		cfg.DuplicateWindow = 0
		benchmarkConnector(b, cfg, "")
	})
	b.Run("slo+exemplars", func(b *testing.B) {
		cfg := seedSLOConfig()
		cfg.Exemplars.Enabled = true
		benchmarkConnector(b, cfg, "")
	})
	// every span weighted by the OTEP 235 threshold in its tracestate (12.5%)
	b.Run("sampled", func(b *testing.B) { benchmarkConnector(b, createDefaultConfig().(*Config), "ot=th:e") })
	b.Run("exponential", func(b *testing.B) {
		cfg := seedSLOConfig()
		cfg.Histograms.Type = HistogramExponential
		benchmarkConnector(b, cfg, "")
	})
}

// BenchmarkFlush measures building the metrics of 1,000 series.
func BenchmarkFlush(b *testing.B) {
	cfg := seedSLOConfig()
	cfg.Dimensions = []Dimension{{Name: "series"}}
	h := newHarness(b, cfg)
	batch := vllmrequesttest.V1Batch(1000, 4)
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
		_, _ = h.c.buildMetrics(context.Background(), h.clock.Now())
		h.c.mu.Unlock()
	}
}

// BenchmarkMemoryPerSeries reports the heap held per series when cardinality_limit series exist, which is
// what the README's memory bound is computed from.
func BenchmarkMemoryPerSeries(b *testing.B) {
	for _, tc := range []struct {
		name string
		cfg  func(*Config)
	}{
		{"explicit", func(*Config) {}},
		{"explicit+exemplars", func(c *Config) { c.Exemplars.Enabled = true }},
		{"exponential", func(c *Config) { c.Histograms.Type = HistogramExponential }},
	} {
		b.Run(tc.name, func(b *testing.B) {
			const series = 5000
			cfg := seedSLOConfig()
			cfg.Dimensions = []Dimension{{Name: "series"}}
			tc.cfg(cfg)
			batch := vllmrequesttest.V1Batch(series, 1)
			spans := batch.ResourceSpans().At(0).ScopeSpans().At(0).Spans()
			for j := 0; j < spans.Len(); j++ {
				spans.At(j).Attributes().PutInt("series", int64(j))
			}
			var perSeries float64
			for b.Loop() {
				var before, after runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&before)
				h := newHarness(b, cfg)
				require.NoError(b, h.c.ConsumeTraces(context.Background(), batch))
				runtime.GC()
				runtime.ReadMemStats(&after)
				perSeries = float64(after.HeapAlloc-before.HeapAlloc) / series
				runtime.KeepAlive(h)
			}
			b.ReportMetric(perSeries, "B/series")
		})
	}
}
