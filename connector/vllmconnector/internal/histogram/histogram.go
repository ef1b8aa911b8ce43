// Package histogram holds the two histogram aggregations of the vllm connector — explicit buckets and base-2
// exponential buckets — and the exemplars kept beside them, behind one interface with one job: record values
// and write them into a pdata data point.
package histogram // import "github.com/otelcol-vllm/otelcol-vllm/connector/vllmconnector/internal/histogram"

import (
	"github.com/lightstep/go-expohisto/structure"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
)

// Histogram is what the connector records into; Explicit and Exponential implement it.
type Histogram interface {
	Record(v float64)
	Count() uint64
	Reset()
	Exemplars() *Exemplars
}

var (
	_ Histogram = (*Explicit)(nil)
	_ Histogram = (*Exponential)(nil)
)

// Explicit is a histogram with fixed upper bounds. Bounds are shared between all histograms of a metric and
// must not be modified.
type Explicit struct {
	bounds    []float64
	counts    []uint64 // len(bounds)+1; the last is the +Inf bucket
	count     uint64
	sum       float64
	min, max  float64
	exemplars Exemplars
}

// NewExplicit returns an empty histogram over bounds, keeping up to maxExemplars exemplars.
func NewExplicit(bounds []float64, maxExemplars int) *Explicit {
	return &Explicit{bounds: bounds, counts: make([]uint64, len(bounds)+1), exemplars: newExemplars(maxExemplars)}
}

// Record adds one value. A value equal to a bound falls into that bound's bucket (le semantics).
func (h *Explicit) Record(v float64) {
	h.counts[bucketIndex(h.bounds, v)]++
	if h.count == 0 || v < h.min {
		h.min = v
	}
	if h.count == 0 || v > h.max {
		h.max = v
	}
	h.count++
	h.sum += v
}

// bucketIndex is the index of the first bound ≥ v, len(bounds) for +Inf. It is sort.SearchFloat64s without the
// closure call per step, which is most of a record's cost on the hot path.
func bucketIndex(bounds []float64, v float64) int {
	lo, hi := 0, len(bounds)
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if bounds[mid] < v {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo
}

// Count is the number of values recorded since the last Reset.
func (h *Explicit) Count() uint64 { return h.count }

// Exemplars are the exemplars kept for the current flush interval.
func (h *Explicit) Exemplars() *Exemplars { return &h.exemplars }

// Reset forgets every value (delta temporality).
func (h *Explicit) Reset() {
	clear(h.counts)
	h.count, h.sum, h.min, h.max = 0, 0, 0, 0
	h.exemplars.Reset()
}

// CopyTo writes the histogram into dp.
func (h *Explicit) CopyTo(dp pmetric.HistogramDataPoint) {
	dp.SetCount(h.count)
	dp.SetSum(h.sum)
	dp.SetMin(h.min)
	dp.SetMax(h.max)
	dp.ExplicitBounds().FromRaw(h.bounds)
	dp.BucketCounts().FromRaw(h.counts)
	h.exemplars.CopyTo(dp.Exemplars())
}

// Exponential is a base-2 exponential histogram whose scale drops as needed to stay within max_size buckets.
type Exponential struct {
	h         structure.Histogram[float64]
	exemplars Exemplars
}

// NewExponential returns an empty histogram of at most maxSize buckets, keeping up to maxExemplars exemplars.
func NewExponential(maxSize int32, maxExemplars int) *Exponential {
	e := &Exponential{exemplars: newExemplars(maxExemplars)}
	e.h.Init(structure.NewConfig(structure.WithMaxSize(maxSize)))
	return e
}

// Record adds one value (values are never negative here; zero goes to the zero bucket).
func (e *Exponential) Record(v float64) { e.h.Update(v) }

// Count is the number of values recorded since the last Reset.
func (e *Exponential) Count() uint64 { return e.h.Count() }

// Exemplars are the exemplars kept for the current flush interval.
func (e *Exponential) Exemplars() *Exemplars { return &e.exemplars }

// Reset forgets every value (delta temporality).
func (e *Exponential) Reset() {
	e.h.Clear()
	e.exemplars.Reset()
}

// CopyTo writes the histogram into dp.
func (e *Exponential) CopyTo(dp pmetric.ExponentialHistogramDataPoint) {
	dp.SetCount(e.h.Count())
	dp.SetSum(e.h.Sum())
	dp.SetMin(e.h.Min())
	dp.SetMax(e.h.Max())
	dp.SetScale(e.h.Scale())
	dp.SetZeroCount(e.h.ZeroCount())
	pos := e.h.Positive()
	dp.Positive().SetOffset(pos.Offset())
	counts := dp.Positive().BucketCounts()
	counts.EnsureCapacity(int(pos.Len()))
	for i := uint32(0); i < pos.Len(); i++ {
		counts.Append(pos.At(i))
	}
	e.exemplars.CopyTo(dp.Exemplars())
}

// Exemplars keeps, per flush interval, the exemplars of the largest values seen — for latencies, the slowest
// requests, which are the traces worth opening.
type Exemplars struct {
	items []exemplar
	max   int
}

type exemplar struct {
	value   float64
	time    pcommon.Timestamp
	traceID pcommon.TraceID
	spanID  pcommon.SpanID
}

func newExemplars(maxItems int) Exemplars {
	if maxItems <= 0 {
		return Exemplars{}
	}
	return Exemplars{items: make([]exemplar, 0, maxItems), max: maxItems}
}

// Offer keeps the exemplar if fewer than max are kept or if it is larger than the smallest one kept.
func (x *Exemplars) Offer(value float64, ts pcommon.Timestamp, traceID pcommon.TraceID, spanID pcommon.SpanID) {
	if x.max == 0 {
		return
	}
	e := exemplar{value: value, time: ts, traceID: traceID, spanID: spanID}
	if len(x.items) < x.max {
		x.items = append(x.items, e)
		return
	}
	smallest := 0
	for i := 1; i < len(x.items); i++ {
		if x.items[i].value < x.items[smallest].value {
			smallest = i
		}
	}
	if value > x.items[smallest].value {
		x.items[smallest] = e
	}
}

// Len is the number of exemplars kept.
func (x *Exemplars) Len() int { return len(x.items) }

// Reset forgets the exemplars; they are kept for one flush interval only.
func (x *Exemplars) Reset() { x.items = x.items[:0] }

// CopyTo appends the exemplars to dst, in the order they were kept.
func (x *Exemplars) CopyTo(dst pmetric.ExemplarSlice) {
	dst.EnsureCapacity(len(x.items))
	for _, e := range x.items {
		ex := dst.AppendEmpty()
		ex.SetDoubleValue(e.value)
		ex.SetTimestamp(e.time)
		ex.SetTraceID(e.traceID)
		ex.SetSpanID(e.spanID)
	}
}
