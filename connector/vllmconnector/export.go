package vllmconnector // import "github.com/otelcol-vllm/otelcol-vllm/connector/vllmconnector"

import (
	"context"
	"sort"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/otelcol-vllm/otelcol-vllm/connector/vllmconnector/internal/histogram"
	"github.com/otelcol-vllm/otelcol-vllm/internal/vllmrequest"
)

// buildMetrics expires idle series, writes every live series into requests of at most max_request_bytes and,
// for delta temporality, resets them. It runs under the connector's lock. Once ctx is done (a shutdown's
// deadline) it writes no more series: unbuilt is the number of data points they would have had.
func (c *vllmConnector) buildMetrics(ctx context.Context, now time.Time) (requests []pmetric.Metrics, unbuilt int) {
	c.expire(now)
	c.lastResource, c.lastSeries = nil, nil // the cached series may have expired
	ts := pcommon.NewTimestampFromTime(now)
	b := newRequestBuilder(c.cfg.MaxRequestBytes)
	keys := make([]string, 0, len(c.resources))
	for k := range c.resources {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		unbuilt += c.exportResource(ctx, b, c.resources[k], ts)
	}
	if c.overflow != nil {
		unbuilt += c.exportResource(ctx, b, c.overflow, ts)
	}
	c.lastFlush = ts
	return b.finish(), unbuilt
}

// expire forgets series idle for longer than metrics_expiration, and resources left without series.
func (c *vllmConnector) expire(now time.Time) {
	cutoff := now.Add(-c.cfg.MetricsExpiration)
	expireIn := func(res *resourceState) {
		for k, s := range res.series {
			// a series recorded since the last flush is sent once more before it may go
			if !s.updated && s.lastSeen.Before(cutoff) {
				delete(res.series, k)
				if res != c.overflow {
					c.seriesCount--
				}
			}
		}
	}
	for k, res := range c.resources {
		expireIn(res)
		if len(res.series) == 0 {
			delete(c.resources, k)
		}
	}
	if c.overflow != nil {
		expireIn(c.overflow)
		if len(c.overflow.series) == 0 {
			c.overflow = nil
		}
	}
}

// metricSet creates each metric of one resource the first time a data point needs it.
type metricSet struct {
	scope       pmetric.MetricSlice
	temporality pmetric.AggregationTemporality
	exponential bool
	byName      map[string]pmetric.Metric
}

func newMetricSet(scope pmetric.MetricSlice, temporality pmetric.AggregationTemporality, exponential bool) *metricSet {
	return &metricSet{scope: scope, temporality: temporality, exponential: exponential, byName: map[string]pmetric.Metric{}}
}

func (m *metricSet) histogram(d *histogramDef) pmetric.Metric {
	if metric, ok := m.byName[d.name]; ok {
		return metric
	}
	metric := m.scope.AppendEmpty()
	metric.SetName(d.name)
	metric.SetUnit(d.unit)
	metric.SetDescription(d.description)
	if m.exponential {
		metric.SetEmptyExponentialHistogram().SetAggregationTemporality(m.temporality)
	} else {
		metric.SetEmptyHistogram().SetAggregationTemporality(m.temporality)
	}
	m.byName[d.name] = metric
	return metric
}

func (m *metricSet) sum(name, unit, description string) pmetric.NumberDataPointSlice {
	if metric, ok := m.byName[name]; ok {
		return metric.Sum().DataPoints()
	}
	metric := m.scope.AppendEmpty()
	metric.SetName(name)
	metric.SetUnit(unit)
	metric.SetDescription(description)
	sum := metric.SetEmptySum()
	sum.SetIsMonotonic(true)
	sum.SetAggregationTemporality(m.temporality)
	m.byName[name] = metric
	return sum.DataPoints()
}

// adopt moves every metric of from into m, appending the data points of a metric m has already.
func (m *metricSet) adopt(from pmetric.MetricSlice) {
	for i := 0; i < from.Len(); i++ {
		src := from.At(i)
		dst, ok := m.byName[src.Name()]
		if !ok {
			dst = m.scope.AppendEmpty()
			src.MoveTo(dst)
			m.byName[dst.Name()] = dst
			continue
		}
		switch src.Type() {
		case pmetric.MetricTypeHistogram:
			src.Histogram().DataPoints().MoveAndAppendTo(dst.Histogram().DataPoints())
		case pmetric.MetricTypeExponentialHistogram:
			src.ExponentialHistogram().DataPoints().MoveAndAppendTo(dst.ExponentialHistogram().DataPoints())
		case pmetric.MetricTypeSum:
			src.Sum().DataPoints().MoveAndAppendTo(dst.Sum().DataPoints())
		}
	}
}

// exportResource writes the series of res into b; once ctx is done it writes none and returns the number of
// data points not written.
func (c *vllmConnector) exportResource(ctx context.Context, b *requestBuilder, res *resourceState, ts pcommon.Timestamp) (unbuilt int) {
	keys := make([]string, 0, len(res.series))
	for k, s := range res.series {
		if !c.delta || s.updated {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return 0
	}
	sort.Strings(keys)
	temporality := pmetric.AggregationTemporalityCumulative
	if c.delta {
		temporality = pmetric.AggregationTemporalityDelta
	}
	b.startResource(res.attrs)
	for _, k := range keys {
		s := res.series[k]
		if ctx.Err() != nil {
			unbuilt += c.pointCount(s)
			continue
		}
		start := s.start
		if c.delta && c.lastFlush > start {
			start = c.lastFlush // a delta point covers the interval since the previous flush
		}
		// Each series is written on its own first, so that its size is known before it is placed.
		scratch := pmetric.NewMetrics()
		metrics := scratch.ResourceMetrics().AppendEmpty().ScopeMetrics().AppendEmpty().Metrics()
		c.exportSeries(newMetricSet(metrics, temporality, c.recorder.exponential), s, start, ts)
		b.addSeries(scratch, metrics)
		if c.delta {
			s.flushedDelta()
		} else {
			s.flushedCumulative()
		}
	}
	return unbuilt
}

// pointCount is the number of data points exportSeries writes for s.
func (c *vllmConnector) pointCount(s *series) int {
	n := 1 // vllm.requests
	for _, h := range s.histograms {
		if h != nil && !h.Empty() {
			n++
		}
	}
	for _, has := range s.hasTokens {
		if has {
			n++
		}
	}
	if c.recorder.sloEnabled {
		objectives := 1 // all
		for _, o := range vllmrequest.Objectives() {
			if _, ok := c.cfg.Request.SLO.Threshold(o); ok {
				objectives++
			}
		}
		n += 2 * objectives // met and violated
	}
	return n
}

func (c *vllmConnector) exportSeries(set *metricSet, s *series, start, ts pcommon.Timestamp) {
	for id, h := range s.histograms {
		if h == nil || h.Empty() {
			continue
		}
		d := &histogramDefs[id]
		metric := set.histogram(d)
		var attrs pcommon.Map
		switch h := h.(type) {
		case *histogram.Explicit:
			dp := metric.Histogram().DataPoints().AppendEmpty()
			dp.SetStartTimestamp(start)
			dp.SetTimestamp(ts)
			h.CopyTo(dp)
			attrs = dp.Attributes()
		case *histogram.Exponential:
			dp := metric.ExponentialHistogram().DataPoints().AppendEmpty()
			dp.SetStartTimestamp(start)
			dp.SetTimestamp(ts)
			h.CopyTo(dp)
			attrs = dp.Attributes()
		}
		s.attrs.CopyTo(attrs)
		if d.tokenType != "" {
			attrs.PutStr(attrTokenType, d.tokenType)
		}
	}

	point := func(dps pmetric.NumberDataPointSlice, v *count) pmetric.NumberDataPoint {
		dp := dps.AppendEmpty()
		dp.SetStartTimestamp(start)
		dp.SetTimestamp(ts)
		dp.SetIntValue(v.value())
		s.attrs.CopyTo(dp.Attributes())
		return dp
	}
	point(set.sum(metricRequests, "{request}", "vLLM requests finished (one per llm_request span, times its adjusted count when sampled)."), &s.requests)
	for i, tokenType := range [2]string{tokenTypeInput, tokenTypeOutput} {
		if s.hasTokens[i] {
			dp := point(set.sum(metricTokens, "{token}", "Tokens processed by vLLM, by gen_ai.token.type."), &s.tokens[i])
			dp.Attributes().PutStr(attrTokenType, tokenType)
		}
	}
	if s.hasTokens[2] {
		point(set.sum(metricCachedTokens, "{token}", "Input tokens read from vLLM's prefix cache (gen_ai.usage.cache_read.input_tokens); part of vllm.tokens{gen_ai.token.type=input}."), &s.tokens[2])
	}
	if !c.recorder.sloEnabled {
		return
	}
	sloPoints := set.sum(metricSLORequests, "{request}", "vLLM requests by SLO objective and verdict; objective \"all\" counts goodput.")
	sloPoint := func(objective string, counts *[2]count) {
		for verdict, met := range [2]bool{true, false} {
			dp := point(sloPoints, &counts[verdict])
			dp.Attributes().PutStr(attrSLOObjective, objective)
			dp.Attributes().PutBool(attrSLOMet, met)
		}
	}
	for _, o := range vllmrequest.Objectives() {
		if _, ok := c.cfg.Request.SLO.Threshold(o); ok {
			sloPoint(o.String(), &s.slo[o])
		}
	}
	sloPoint(vllmrequest.ObjectiveAll, &s.slo[sloAll])
}
