package vllmstatusexporter

import (
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// ttftBounds are vLLM's TTFT bounds (the connector's default preset), up to 20 s.
var ttftBounds = []float64{0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20}

func testConfig() *Config {
	return createDefaultConfig().(*Config)
}

// series is one model's cumulative input, as the vllm connector emits it.
type series struct {
	model, op string
	start     time.Time
	requests  float64
	errors    map[string]float64
	tokensIn  float64
	tokensOut float64
	sloAll    [2]float64 // met, total
	ttft      []float64  // observations
	exemplars []exemplarIn
}

type exemplarIn struct {
	seconds float64
	trace   byte
}

func (s *series) metrics(now time.Time) pmetric.Metrics {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr("service.name", "vllm")
	ms := rm.ScopeMetrics().AppendEmpty().Metrics()
	attrs := func(m pcommon.Map) {
		m.PutStr("gen_ai.request.model", s.model)
		m.PutStr("gen_ai.operation.name", s.op)
	}
	sum := func(name string) pmetric.NumberDataPointSlice {
		m := ms.AppendEmpty()
		m.SetName(name)
		m.SetEmptySum().SetIsMonotonic(true)
		m.Sum().SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
		return m.Sum().DataPoints()
	}
	point := func(dps pmetric.NumberDataPointSlice, v float64) pmetric.NumberDataPoint {
		dp := dps.AppendEmpty()
		dp.SetStartTimestamp(pcommon.NewTimestampFromTime(s.start))
		dp.SetTimestamp(pcommon.NewTimestampFromTime(now))
		dp.SetIntValue(int64(v))
		attrs(dp.Attributes())
		return dp
	}
	reqs := sum(metricRequests)
	ok := s.requests
	for et, n := range s.errors {
		point(reqs, n).Attributes().PutStr("error.type", et)
		ok -= n
	}
	point(reqs, ok)
	toks := sum(metricTokens)
	point(toks, s.tokensIn).Attributes().PutStr("gen_ai.token.type", "input")
	point(toks, s.tokensOut).Attributes().PutStr("gen_ai.token.type", "output")
	slo := sum(metricSLO)
	met := point(slo, s.sloAll[0])
	met.Attributes().PutStr("vllm.slo.objective", "all")
	met.Attributes().PutBool("vllm.slo.met", true)
	missed := point(slo, s.sloAll[1]-s.sloAll[0])
	missed.Attributes().PutStr("vllm.slo.objective", "all")
	missed.Attributes().PutBool("vllm.slo.met", false)

	for _, name := range []string{metricTTFT, metricE2E} {
		m := ms.AppendEmpty()
		m.SetName(name)
		h := m.SetEmptyHistogram()
		h.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
		dp := h.DataPoints().AppendEmpty()
		dp.SetStartTimestamp(pcommon.NewTimestampFromTime(s.start))
		dp.SetTimestamp(pcommon.NewTimestampFromTime(now))
		attrs(dp.Attributes())
		dp.ExplicitBounds().FromRaw(ttftBounds)
		counts := make([]uint64, len(ttftBounds)+1)
		total := 0.0
		for _, v := range s.ttft {
			i := 0
			for i < len(ttftBounds) && v > ttftBounds[i] {
				i++
			}
			counts[i]++
			total += v
		}
		dp.BucketCounts().FromRaw(counts)
		dp.SetCount(uint64(len(s.ttft)))
		dp.SetSum(total)
		if name == metricE2E {
			for _, e := range s.exemplars {
				ex := dp.Exemplars().AppendEmpty()
				ex.SetDoubleValue(e.seconds)
				ex.SetTraceID(pcommon.TraceID{e.trace, 1})
				ex.SetSpanID(pcommon.SpanID{e.trace, 2})
				ex.SetTimestamp(pcommon.NewTimestampFromTime(now))
			}
		}
	}
	return md
}

// gaugeMetrics is one gauge point of a metric, with attributes.
func gaugeMetrics(name string, v float64, kv ...any) pmetric.Metrics {
	md := pmetric.NewMetrics()
	m := md.ResourceMetrics().AppendEmpty().ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
	m.SetName(name)
	dp := m.SetEmptyGauge().DataPoints().AppendEmpty()
	dp.SetDoubleValue(v)
	for i := 0; i+1 < len(kv); i += 2 {
		switch val := kv[i+1].(type) {
		case string:
			dp.Attributes().PutStr(kv[i].(string), val)
		case int:
			dp.Attributes().PutInt(kv[i].(string), int64(val))
		}
	}
	return md
}

// counterMetrics is one cumulative counter point (as the prometheus receiver writes vLLM's counters).
func counterMetrics(name string, v float64, kv ...string) pmetric.Metrics {
	md := pmetric.NewMetrics()
	m := md.ResourceMetrics().AppendEmpty().ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
	m.SetName(name)
	m.SetEmptySum().SetIsMonotonic(true)
	m.Sum().SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	dp := m.Sum().DataPoints().AppendEmpty()
	dp.SetDoubleValue(v)
	for i := 0; i+1 < len(kv); i += 2 {
		dp.Attributes().PutStr(kv[i], kv[i+1])
	}
	return md
}
