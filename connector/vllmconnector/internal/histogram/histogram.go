// Package histogram holds the two histogram aggregations of the vllm connector — explicit buckets and base-2
// exponential buckets — and the exemplars kept beside them, behind one interface with one job: record values
// and write them into a pdata data point.
package histogram // import "github.com/otelcol-vllm/otelcol-vllm/connector/vllmconnector/internal/histogram"

import (
	"math"
	"slices"

	"github.com/lightstep/go-expohisto/structure"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
)

// Histogram is what the connector records into; Explicit and Exponential implement it. Every value carries a
// weight: the adjusted count of its span (1 unsampled, 1/probability when sampled).
type Histogram interface {
	// Record adds v with the given weight. It returns false, recording nothing, when the histogram's count would
	// exceed MaxCount: the histogram saturates instead of wrapping.
	Record(v, weight float64) bool
	// Empty is true when nothing was recorded since the last Reset.
	Empty() bool
	Reset()
	Exemplars() *Exemplars
}

// MaxCount is the largest count a data point carries: the largest float64 below 2^63, which converts exactly to
// an int64 (OTLP sums) and a uint64 (histogram counts). Whatever the weights, no count goes beyond it.
const MaxCount = float64(1<<63 - 1024)

var (
	_ Histogram = (*Explicit)(nil)
	_ Histogram = (*Exponential)(nil)
)

// Explicit is a histogram with fixed upper bounds. Bounds are shared between all histograms of a metric.
// Bucket weights are kept as floats and rounded only when written (see CopyTo).
type Explicit struct {
	bounds    *Bounds
	weights   []float64 // len(bounds)+1; the last is the +Inf bucket
	total     float64   // the sum of weights, at most MaxCount
	values    int       // values recorded, whatever their weight
	sum       float64
	min, max  float64
	exemplars Exemplars
}

// NewExplicit returns an empty histogram over bounds, keeping up to maxExemplars exemplars.
func NewExplicit(bounds *Bounds, maxExemplars int) *Explicit {
	return &Explicit{bounds: bounds, weights: make([]float64, len(bounds.bounds)+1), exemplars: newExemplars(maxExemplars)}
}

// Bounds are the upper bounds of an explicit histogram's buckets, with an index that finds the bucket of a value
// in one table read and, mostly, one or two comparisons instead of a binary search (whose branches a processor
// cannot predict: five mispredictions per value over 20 bounds).
//
// The index divides the positive numbers from the first bound to the last into quarter-octaves: the cell of a
// positive value is its float64 exponent and the first two bits of its mantissa (its bits >> 50, monotonic in
// the value). start[c] is the first bound at or above the smallest value of cell c, so the bucket of a value in
// cell c is found by scanning up from start[c] past the bounds below it: at most the bounds within one
// quarter-octave. Bounds not all positive, or spread over more than maxCells cells, are searched in binary.
type Bounds struct {
	bounds []float64
	start  []uint16
	base   uint64 // the cell of bounds[0]
	// steps is the most bounds in one cell: from start[c], that many conditional increments find the bucket
	// without a branch to mispredict. padded is bounds followed by steps × +Inf, so that they read no further.
	steps  int
	padded []float64
}

const (
	cellShift = 50
	maxCells  = 4096 // 1,024 octaves
)

// NewBounds indexes bounds (finite, strictly increasing, at most 65,535), which it keeps: they must not be
// modified afterwards.
func NewBounds(bounds []float64) *Bounds {
	b := &Bounds{bounds: bounds}
	if len(bounds) == 0 || bounds[0] <= 0 || len(bounds) > math.MaxUint16 {
		return b
	}
	first, last := cell(bounds[0]), cell(bounds[len(bounds)-1])
	if last-first >= maxCells {
		return b
	}
	b.base = first
	b.start = make([]uint16, last-first+1)
	i := 0
	for c := range b.start {
		lowest := math.Float64frombits((first + uint64(c)) << cellShift)
		for i < len(bounds) && bounds[i] < lowest {
			i++
		}
		b.start[c] = uint16(i)
		if c > 0 {
			b.steps = max(b.steps, i-int(b.start[c-1]))
		}
	}
	b.steps = max(b.steps, len(bounds)-int(b.start[len(b.start)-1]))
	b.padded = append(slices.Clip(bounds), slices.Repeat([]float64{math.Inf(1)}, b.steps)...)
	return b
}

// cell is the quarter-octave of a positive value.
func cell(v float64) uint64 { return math.Float64bits(v) >> cellShift }

// Len is the number of bounds.
func (b *Bounds) Len() int { return len(b.bounds) }

// index is the index of the first bound ≥ v, len(bounds) for +Inf: sort.SearchFloat64s(bounds, v). A value
// in the cells of the bounds needs no other test: below the first bound (in its cell) it stays at 0, above the
// last (in its cell) it runs into the +Inf padding. Every other value (0, negative, NaN, outside the bounds'
// cells) has a cell outside the index: the sign bit and the exponents of NaN and ±Inf put them above the last
// cell of a finite bound.
func (b *Bounds) index(v float64) int {
	if c := cell(v) - b.base; c < uint64(len(b.start)) {
		i, padded := int(b.start[c]), b.padded
		for range b.steps {
			i += b2i(padded[i] < v) // a flag set, not a branch
		}
		return i
	}
	return b.indexOutside(v)
}

// indexOutside is index for a value outside the indexed cells, or for bounds without an index.
func (b *Bounds) indexOutside(v float64) int {
	bounds := b.bounds
	if len(b.start) == 0 {
		return bucketIndex(bounds, v)
	}
	if v <= bounds[0] {
		return 0
	}
	if v > bounds[len(bounds)-1] {
		return len(bounds)
	}
	return bucketIndex(bounds, v) // NaN
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Record adds one value of the given weight. A value equal to a bound falls into that bound's bucket (le
// semantics). Min and max are the observed values, whatever the weights.
func (h *Explicit) Record(v, weight float64) bool {
	total := h.total + weight
	if total > MaxCount {
		return false
	}
	h.total = total
	// index, written out here: a call per value costs about as much as the search
	b := h.bounds
	var i int
	if c := cell(v) - b.base; c < uint64(len(b.start)) {
		i = int(b.start[c])
		i += b2i(b.padded[i] < v) // steps is at least 1
		for range b.steps - 1 {
			i += b2i(b.padded[i] < v)
		}
	} else {
		i = b.indexOutside(v)
	}
	h.weights[i] += weight
	if h.values == 0 {
		h.min, h.max = v, v
	} else {
		if v < h.min {
			h.min = v
		}
		if v > h.max {
			h.max = v
		}
	}
	h.values++
	h.sum += v * weight
	return true
}

// bucketIndex is the index of the first bound ≥ v, len(bounds) for +Inf. It is sort.SearchFloat64s without the
// closure call per step, for the bounds Bounds does not index.
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

// Empty is true when no value was recorded since the last Reset.
func (h *Explicit) Empty() bool { return h.values == 0 }

// Exemplars are the exemplars kept for the current flush interval.
func (h *Explicit) Exemplars() *Exemplars { return &h.exemplars }

// Reset forgets every value (delta temporality).
func (h *Explicit) Reset() {
	clear(h.weights)
	h.values, h.total, h.sum, h.min, h.max = 0, 0, 0, 0, 0
	h.exemplars.Reset()
}

// CopyTo writes the histogram into dp. Fractional weights become the integer bucket counts OTLP needs by
// rounding the cumulative weights: bucket i is round(W_i) − round(W_i−1), W_i the weight up to bucket i. Every
// count is then within 1 of the exact weight, the buckets add up exactly to the point's count, round(W), and no
// rounding error accumulates across buckets or flushes (cumulative points are rounded afresh from the exact
// weights each time).
func (h *Explicit) CopyTo(dp pmetric.HistogramDataPoint) {
	counts := dp.BucketCounts()
	counts.EnsureCapacity(len(h.weights))
	var cumulative float64
	var emitted uint64
	for _, w := range h.weights {
		cumulative += w
		upTo := roundCount(cumulative)
		if upTo < emitted { // float error on a zero-weight bucket cannot make a count negative
			upTo = emitted
		}
		counts.Append(upTo - emitted)
		emitted = upTo
	}
	dp.SetCount(emitted)
	dp.SetSum(h.sum)
	dp.SetMin(h.min)
	dp.SetMax(h.max)
	dp.ExplicitBounds().FromRaw(h.bounds.bounds)
	h.exemplars.CopyTo(dp.Exemplars())
}

// roundCount rounds an accumulated weight to the nearest count.
func roundCount(w float64) uint64 {
	if w <= 0 {
		return 0
	}
	return uint64(min(math.Round(w), MaxCount))
}

// Exponential is a base-2 exponential histogram whose scale drops as needed to stay within max_size buckets.
// Its buckets hold integer counts: a fractional weight's remainder is carried to the next value recorded, so
// the total count stays within 1 of the exact weight and no value is ever recorded with a count of 0.
type Exponential struct {
	h         structure.Histogram[float64]
	carry     float64 // weight not yet credited to a bucket
	sum       float64
	exemplars Exemplars
}

// NewExponential returns an empty histogram of at most maxSize buckets, keeping up to maxExemplars exemplars.
func NewExponential(maxSize int32, maxExemplars int) *Exponential {
	e := &Exponential{exemplars: newExemplars(maxExemplars)}
	e.h.Init(structure.NewConfig(structure.WithMaxSize(maxSize)))
	return e
}

// Record adds one value of the given weight (values are never negative here; zero goes to the zero bucket).
func (e *Exponential) Record(v, weight float64) bool {
	carry := e.carry + weight
	incr := math.Floor(carry + 0.5)
	if incr < 1 {
		incr = 1 // a weight is at least 1, so this only absorbs float error
	}
	if float64(e.h.Count())+incr > MaxCount {
		return false
	}
	e.carry = carry - incr
	e.h.UpdateByIncr(v, uint64(incr))
	e.sum += v * weight
	return true
}

// Empty is true when no value was recorded since the last Reset.
func (e *Exponential) Empty() bool { return e.h.Count() == 0 }

// Exemplars are the exemplars kept for the current flush interval.
func (e *Exponential) Exemplars() *Exemplars { return &e.exemplars }

// Reset forgets every value (delta temporality).
func (e *Exponential) Reset() {
	e.h.Clear()
	e.carry, e.sum = 0, 0
	e.exemplars.Reset()
}

// CopyTo writes the histogram into dp.
func (e *Exponential) CopyTo(dp pmetric.ExponentialHistogramDataPoint) {
	dp.SetCount(e.h.Count())
	dp.SetSum(e.sum)
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
