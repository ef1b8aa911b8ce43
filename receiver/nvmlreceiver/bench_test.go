//go:build cgo

package nvmlreceiver

import (
	"context"
	"testing"
)

// BenchmarkScrape8GPUs measures one scrape of a mocked DGX H100 (8 GPUs, every telemetry call answered).
// Allocations include the mock's own bookkeeping (it records every call) and its fresh sample slices.
func BenchmarkScrape8GPUs(b *testing.B) {
	for _, bc := range []struct {
		name   string
		config func(*Config)
	}{
		{"default_metrics", nil},
		{"all_metrics", enableAllMetrics},
	} {
		b.Run(bc.name, func(b *testing.B) {
			f := newFakeNVML(b, 8)
			s := newTestScraper(b, f, f.procRoot, bc.config)
			s.mustStart(b)
			ctx := context.Background()
			points := 0
			b.ReportAllocs()
			for b.Loop() {
				md, err := s.scrape(ctx)
				if err != nil {
					b.Fatal(err)
				}
				points = md.DataPointCount()
			}
			b.ReportMetric(float64(points), "points/scrape")
		})
	}
}
