package vllmconnector // import "github.com/otelcol-vllm/otelcol-vllm/connector/vllmconnector"

import (
	"math"
	"math/bits"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/otelcol-vllm/otelcol-vllm/connector/vllmconnector/internal/histogram"
	"github.com/otelcol-vllm/otelcol-vllm/internal/vllmrequest"
)

// resourceState holds the series of one resource (one set of allow-listed resource attributes).
type resourceState struct {
	attrs  pcommon.Map
	series map[string]*series
}

// series is one data point attribute set (provider, operation, model, dimensions) of one resource, with every
// value the connector aggregates for it.
type series struct {
	attrs    pcommon.Map
	start    pcommon.Timestamp // when the series was first seen
	lastSeen time.Time
	updated  bool // recorded since the last flush

	histograms [numHistograms]histogram.Histogram // created on first value, so V1 series hold no V0-only ones
	requests   count
	tokens     [3]count // input, output, input read from the prefix cache
	hasTokens  [3]bool
	// slo counts requests per objective as [met, violated]; index NumObjectives is "all".
	slo [vllmrequest.NumObjectives + 1][2]count
}

// count accumulates adjusted counts (a sampled span stands for 1/probability requests). Fractional counts are
// added with Neumaier's compensated summation, so that millions of them do not drift, and rounded only when
// written: 300 spans at 75% are 400 requests. A count saturates at histogram.MaxCount instead of wrapping.
type count struct{ sum, compensation float64 }

// add adds w; it returns false when the count was saturated instead (it stays at histogram.MaxCount).
func (c *count) add(w float64) bool {
	t := c.sum + w
	if t > histogram.MaxCount {
		c.sum, c.compensation = histogram.MaxCount, 0
		return false
	}
	if math.Abs(c.sum) >= math.Abs(w) {
		c.compensation += (c.sum - t) + w
	} else {
		c.compensation += (w - t) + c.sum
	}
	c.sum = t
	return true
}

// value is the count rounded to the nearest integer, as OTLP's integer sums need it, at most histogram.MaxCount.
func (c *count) value() int64 {
	return int64(min(math.Round(c.sum+c.compensation), histogram.MaxCount))
}

const (
	sloMet      = 0
	sloViolated = 1
	sloAll      = vllmrequest.NumObjectives
)

// recorder adds records to series. It is owned by the connector and used under its lock.
type recorder struct {
	bounds       [numHistograms]*histogram.Bounds
	exponential  bool
	maxSize      int32
	maxExemplars int
	slo          vllmrequest.SLOConfig
	sloEnabled   bool
	// zeroTPOT records TPOT 0 for requests of at most one output token (histograms.single_token_tpot: zero)
	zeroTPOT bool
	// saturated counts the values not added since the connector last read it: their counter or histogram had
	// reached histogram.MaxCount
	saturated int64
}

func (r *recorder) newHistogram(id histogramID) histogram.Histogram {
	if r.exponential {
		return histogram.NewExponential(r.maxSize, r.maxExemplars)
	}
	return histogram.NewExplicit(r.bounds[id], r.maxExemplars)
}

// latencyHistograms is the histogram that observes each latency: each latency has one.
var latencyHistograms = func() (out [vllmrequest.NumLatencies]histogramID) {
	seen := 0
	for id, d := range histogramDefs {
		if d.hasLatency {
			out[d.latency] = histogramID(id)
			seen++
		}
	}
	if seen != int(vllmrequest.NumLatencies) {
		panic("a latency without its histogram")
	}
	return out
}()

// tpot is the TPOT a record gives its histogram, if any.
func (r *recorder) tpot(rec *vllmrequest.Record) (float64, bool) {
	tpot, ok := rec.TimePerOutputToken()
	if !ok && r.zeroTPOT {
		// vLLM observes 0 for every request of at most one output token, pooling requests included
		if n, ok := rec.Completion(); rec.NonGenerative || ok && n <= 1 {
			return 0, true
		}
	}
	return tpot, ok
}

// record adds one request to s, standing for weight requests (its adjusted count). A value that a saturated
// counter or histogram could not take is counted in r.saturated.
func (r *recorder) record(s *series, rec *vllmrequest.Record, span ptrace.Span, weight float64) {
	// explicit histograms without exemplars (the defaults) are recorded with one direct call per value
	for set := rec.LatencySet(); set != 0; set &= set - 1 {
		l := vllmrequest.Latency(bits.TrailingZeros16(set))
		v, _ := rec.Latency(l)
		id := latencyHistograms[l]
		if e := r.explicit(s, id); e != nil {
			r.recorded(e.Record(v, weight))
		} else {
			r.observe(s, id, v, weight, span)
		}
	}
	if v, ok := r.tpot(rec); ok {
		if e := r.explicit(s, histTPOT); e != nil {
			r.recorded(e.Record(v, weight))
		} else {
			r.observe(s, histTPOT, v, weight, span)
		}
	}
	if v, ok := rec.DecodeThroughput(); ok {
		if e := r.explicit(s, histDecodeThroughput); e != nil {
			r.recorded(e.Record(v, weight))
		} else {
			r.observe(s, histDecodeThroughput, v, weight, span)
		}
	}
	if n, ok := rec.Prompt(); ok {
		if e := r.explicit(s, histPromptTokens); e != nil {
			r.recorded(e.Record(float64(n), weight))
		} else {
			r.observe(s, histPromptTokens, float64(n), weight, span)
		}
	}
	if n, ok := rec.Completion(); ok {
		if e := r.explicit(s, histCompletionTokens); e != nil {
			r.recorded(e.Record(float64(n), weight))
		} else {
			r.observe(s, histCompletionTokens, float64(n), weight, span)
		}
	}
	r.add(&s.requests, weight)
	if n, ok := rec.Prompt(); ok {
		r.add(&s.tokens[0], float64(n)*weight)
		s.hasTokens[0] = true
	}
	if n, ok := rec.Completion(); ok {
		r.add(&s.tokens[1], float64(n)*weight)
		s.hasTokens[1] = true
	}
	if n, ok := rec.CachedPrompt(); ok {
		s.tokens[2].add(float64(n) * weight)
		s.hasTokens[2] = true
	}
	if r.sloEnabled {
		verdict := r.slo.EvaluateSLO(rec)
		for o, v := range verdict.Verdicts {
			switch v {
			case vllmrequest.Met:
				r.add(&s.slo[o][sloMet], weight)
			case vllmrequest.Violated:
				r.add(&s.slo[o][sloViolated], weight)
			}
		}
		if verdict.AllMet {
			r.add(&s.slo[sloAll][sloMet], weight)
		} else {
			r.add(&s.slo[sloAll][sloViolated], weight)
		}
	}
	s.updated = true // the connector sets lastSeen where it resolves the span's series
}

// explicit is histogram id of s when it exists, is explicit and keeps no exemplars: then a value is recorded
// with a direct call of its Record, not through observe and the interface.
func (r *recorder) explicit(s *series, id histogramID) *histogram.Explicit {
	if r.maxExemplars > 0 {
		return nil
	}
	e, _ := s.histograms[id].(*histogram.Explicit)
	return e
}

// recorded counts a value that a saturated histogram did not take.
func (r *recorder) recorded(ok bool) {
	if !ok {
		r.saturated++
	}
}

// observe records v into histogram id of s, creating the histogram at its first value, and offers the span as
// its exemplar.
func (r *recorder) observe(s *series, id histogramID, v, weight float64, span ptrace.Span) {
	h := s.histograms[id]
	if h == nil {
		h = r.newHistogram(id)
		s.histograms[id] = h
	}
	if !h.Record(v, weight) {
		r.saturated++
		return
	}
	if r.maxExemplars > 0 {
		h.Exemplars().Offer(v, span.EndTimestamp(), span.TraceID(), span.SpanID())
	}
}

// add adds w to c, counting a saturated count.
func (r *recorder) add(c *count, w float64) {
	if !c.add(w) {
		r.saturated++
	}
}

// flushedDelta zeroes the values of s once a delta flush has sent them.
func (s *series) flushedDelta() {
	for _, h := range s.histograms {
		if h != nil {
			h.Reset()
		}
	}
	s.requests = count{}
	s.tokens = [3]count{}
	s.slo = [vllmrequest.NumObjectives + 1][2]count{}
	s.updated = false
}

// flushedCumulative keeps the values of s but forgets its exemplars once a cumulative flush has sent them:
// each exemplar is sent once.
func (s *series) flushedCumulative() {
	for _, h := range s.histograms {
		if h != nil {
			h.Exemplars().Reset()
		}
	}
	s.updated = false
}
