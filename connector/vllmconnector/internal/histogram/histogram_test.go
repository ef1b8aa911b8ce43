package histogram

import (
	"math"
	"sort"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
)

func TestExplicitBucketsUseLessOrEqual(t *testing.T) {
	bounds := []float64{0.1, 0.2, 0.5}
	tests := []struct {
		values []float64
		counts []uint64
	}{
		{[]float64{0.1}, []uint64{1, 0, 0, 0}},
		{[]float64{0.10000001}, []uint64{0, 1, 0, 0}},
		{[]float64{0, 0.2, 0.2, 0.5, 0.51, 100}, []uint64{1, 2, 1, 2}},
		{nil, []uint64{0, 0, 0, 0}},
	}
	for _, tt := range tests {
		h := NewExplicit(NewBounds(bounds), 0)
		for _, v := range tt.values {
			h.Record(v, 1)
		}
		dp := pmetric.NewHistogramDataPoint()
		h.CopyTo(dp)
		assert.Equal(t, tt.counts, dp.BucketCounts().AsRaw(), "%v", tt.values)
		assert.Equal(t, bounds, dp.ExplicitBounds().AsRaw())
		assert.Equal(t, uint64(len(tt.values)), dp.Count())
		var sum float64
		for _, v := range tt.values {
			sum += v
		}
		assert.InDelta(t, sum, dp.Sum(), 1e-12)
	}
}

func TestExplicitMinMaxAndReset(t *testing.T) {
	h := NewExplicit(NewBounds([]float64{1}), 2)
	for _, v := range []float64{3, 0.5, 2} {
		h.Record(v, 1)
		h.Exemplars().Offer(v, 1, pcommon.TraceID{1}, pcommon.SpanID{byte(v * 10)})
	}
	dp := pmetric.NewHistogramDataPoint()
	h.CopyTo(dp)
	assert.Equal(t, 0.5, dp.Min())
	assert.Equal(t, 3.0, dp.Max())
	assert.Equal(t, 2, dp.Exemplars().Len())
	h.Reset()
	assert.True(t, h.Empty())
	assert.Equal(t, 0, h.Exemplars().Len())
	h.Record(7, 1)
	dp = pmetric.NewHistogramDataPoint()
	h.CopyTo(dp)
	assert.Equal(t, 7.0, dp.Min(), "min restarts after reset")
	assert.Equal(t, []uint64{0, 1}, dp.BucketCounts().AsRaw())
}

func TestExemplarsKeepLargest(t *testing.T) {
	x := newExemplars(3)
	for i, v := range []float64{5, 1, 9, 3, 7, 2} {
		x.Offer(v, pcommon.Timestamp(i), pcommon.TraceID{byte(i)}, pcommon.SpanID{byte(i)})
	}
	dst := pmetric.NewExemplarSlice()
	x.CopyTo(dst)
	var got []float64
	for i := 0; i < dst.Len(); i++ {
		got = append(got, dst.At(i).DoubleValue())
		assert.Equal(t, pcommon.SpanID{byte(dst.At(i).Timestamp())}, dst.At(i).SpanID(), "ids travel with their value")
	}
	assert.ElementsMatch(t, []float64{5, 9, 7}, got)

	disabled := newExemplars(0)
	disabled.Offer(1, 0, pcommon.TraceID{}, pcommon.SpanID{})
	assert.Equal(t, 0, disabled.Len())
}

func TestExponentialStaysWithinMaxSize(t *testing.T) {
	e := NewExponential(8, 0)
	for _, v := range []float64{0, 0.001, 0.01, 0.1, 1, 10, 100, 1000} {
		e.Record(v, 1)
	}
	dp := pmetric.NewExponentialHistogramDataPoint()
	e.CopyTo(dp)
	assert.Equal(t, uint64(8), dp.Count())
	assert.Equal(t, uint64(1), dp.ZeroCount())
	assert.LessOrEqual(t, dp.Positive().BucketCounts().Len(), 8)
	var n uint64
	for _, c := range dp.Positive().BucketCounts().AsRaw() {
		n += c
	}
	assert.Equal(t, uint64(7), n)
	assert.InDelta(t, 1111.111, dp.Sum(), 1e-9)
	assert.Equal(t, 1000.0, dp.Max())
	e.Reset()
	assert.True(t, e.Empty())
}

func TestBucketIndexMatchesSearchFloat64s(t *testing.T) {
	bounds := []float64{0.001, 0.005, 0.01, 0.25, 0.5, 1, 2.5, 80}
	for _, v := range []float64{0, 0.001, 0.0010001, 0.004, 0.25, 0.3, 1, 79.9, 80, 80.1, 1e9} {
		assert.Equal(t, sort.SearchFloat64s(bounds, v), bucketIndex(bounds, v), "%v", v)
	}
	assert.Equal(t, 0, bucketIndex(nil, 1))
}

// TestBoundsIndexMatchesSearchFloat64s: the indexed search finds the bucket sort.SearchFloat64s finds, at every
// bound, just beside it and between, for indexed bounds and for those searched in binary.
func TestBoundsIndexMatchesSearchFloat64s(t *testing.T) {
	for _, bounds := range [][]float64{
		nil,
		{1},
		{0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0},
		{1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000, 100000, 200000, 500000, 1000000},
		{1, 1.0000001, 1.0000002, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6, 1.7, 1.8, 1.9, 2}, // many bounds in one cell
		{1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864},
		{-5, -1, 0, 0.5, 3}, // not all positive: binary search
		{1e-300, 1, 1e300},  // too many cells: binary search
		{math.SmallestNonzeroFloat64, 1},
	} {
		b := NewBounds(bounds)
		values := []float64{0, -1, math.Inf(1), math.Inf(-1), math.MaxFloat64, math.SmallestNonzeroFloat64}
		for _, x := range bounds {
			values = append(values, x, math.Nextafter(x, math.Inf(1)), math.Nextafter(x, math.Inf(-1)), x*1.1, x*0.9, x/2, x*2)
		}
		for i := 1; i < len(bounds); i++ {
			values = append(values, (bounds[i-1]+bounds[i])/2)
		}
		for _, v := range values {
			require.Equal(t, sort.SearchFloat64s(bounds, v), b.index(v), "bounds %v, value %v", bounds, v)
		}
		require.Equal(t, bucketIndex(bounds, math.NaN()), b.index(math.NaN()))
	}
	assert.NotEmpty(t, NewBounds([]float64{0.3, 0.5, 7680}).start, "vLLM's bounds are indexed")
}

func TestExplicitWeights(t *testing.T) {
	bounds := []float64{1, 2, 5}
	tests := []struct {
		name   string
		values []float64
		weight float64
		counts []uint64
		sum    float64
	}{
		{"th:8, adjusted count 2", []float64{0.5, 1.5, 3}, 2, []uint64{2, 2, 2, 0}, 10},
		{"th:e, adjusted count 8", []float64{10}, 8, []uint64{0, 0, 0, 8}, 80},
		// 300 values of weight 4/3 are 400 requests: rounding happens once, on the cumulative weight
		{"th:4, adjusted count 4/3", repeat(1.5, 300), 4.0 / 3, []uint64{0, 400, 0, 0}, 600},
		// one value of 4/3 in each of three buckets: 1.33, 2.67, 4 cumulative → 1, 2, 1; the count is 4, not 3
		{"fractional spread", []float64{0.5, 1.5, 3}, 4.0 / 3, []uint64{1, 2, 1, 0}, 4.0 / 3 * 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := NewExplicit(NewBounds(bounds), 0)
			for _, v := range tt.values {
				h.Record(v, tt.weight)
			}
			dp := pmetric.NewHistogramDataPoint()
			h.CopyTo(dp)
			assert.Equal(t, tt.counts, dp.BucketCounts().AsRaw())
			var total uint64
			for _, c := range tt.counts {
				total += c
			}
			assert.Equal(t, total, dp.Count(), "buckets add up to the count")
			assert.InDelta(t, tt.sum, dp.Sum(), 1e-9, "sum = Σ value × adjusted count")
			assert.Equal(t, minOf(tt.values), dp.Min(), "min and max are observed values")
			assert.Equal(t, maxOf(tt.values), dp.Max())
		})
	}
}

func TestExponentialWeights(t *testing.T) {
	e := NewExponential(160, 0)
	for range 300 {
		e.Record(1.5, 4.0/3)
	}
	e.Record(0, 8)
	dp := pmetric.NewExponentialHistogramDataPoint()
	e.CopyTo(dp)
	assert.Equal(t, uint64(408), dp.Count(), "the fractional weights' remainders are carried, not lost")
	assert.Equal(t, uint64(8), dp.ZeroCount())
	assert.InDelta(t, 600, dp.Sum(), 1e-9)
	assert.Equal(t, 1.5, dp.Max())
}

func repeat(v float64, n int) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = v
	}
	return out
}

func minOf(vs []float64) float64 {
	m := vs[0]
	for _, v := range vs {
		m = min(m, v)
	}
	return m
}

func maxOf(vs []float64) float64 {
	m := vs[0]
	for _, v := range vs {
		m = max(m, v)
	}
	return m
}
