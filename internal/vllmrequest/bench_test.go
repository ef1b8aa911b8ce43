package vllmrequest

import (
	"testing"

	"github.com/otelcol-vllm/otelcol-vllm/internal/vllmrequest/vllmrequesttest"
)

// BenchmarkDerive derives the records of 1,000 realistic V1 spans.
func BenchmarkDerive(b *testing.B) {
	td := vllmrequesttest.V1Batch(1000, 4)
	d := NewDeriver(NewDefaultConfig())
	var rec Record
	b.ReportAllocs()
	for b.Loop() {
		rss := td.ResourceSpans()
		for i := 0; i < rss.Len(); i++ {
			res := NewResource(rss.At(i).Resource().Attributes())
			spans := rss.At(i).ScopeSpans().At(0).Spans()
			for k := 0; k < spans.Len(); k++ {
				d.Derive(spans.At(k), &res, &rec)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*1000), "ns/span")
}
