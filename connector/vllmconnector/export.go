package vllmconnector // import "github.com/otelcol-vllm/otelcol-vllm/connector/vllmconnector"

import (
	"sort"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/otelcol-vllm/otelcol-vllm/connector/vllmconnector/internal/histogram"
	"github.com/otelcol-vllm/otelcol-vllm/connector/vllmconnector/internal/metadata"
	"github.com/otelcol-vllm/otelcol-vllm/internal/vllmrequest"
)

// buildMetrics expires idle series, writes every live series into pdata and, for delta temporality, resets
// them. It runs under the connector's lock.
func (c *vllmConnector) buildMetrics(now time.Time) pmetric.Metrics {
	c.expire(now)
	c.lastResource, c.lastSeries = nil, nil // the cached series may have expired
	md := pmetric.NewMetrics()
	ts := pcommon.NewTimestampFromTime(now)
	keys := make([]string, 0, len(c.resources))
	for k := range c.resources {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		c.exportResource(md, c.resources[k], ts)
	}
	if c.overflow != nil {
		c.exportResource(md, c.overflow, ts)
	}
	c.lastFlush = ts
	return md
}

// expire forgets series idle for longer than metrics_expiration, and resources left without series.
func (c *vllmConnector) expire(now time.Time) {
	cutoff := now.Add(-c.cfg.MetricsExpiration)
	expireIn := func(res *resourceState) {
		for k, s := range res.series {
			if s.lastSeen.Before(cutoff) {
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
	histograms  map[string]pmetric.Metric
	sums        map[string]pmetric.Metric
}

func (m *metricSet) histogram(d *histogramDef) pmetric.Metric {
	if metric, ok := m.histograms[d.name]; ok {
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
	m.histograms[d.name] = metric
	return metric
}

func (m *metricSet) sum(name, unit, description string) pmetric.NumberDataPointSlice {
	if metric, ok := m.sums[name]; ok {
		return metric.Sum().DataPoints()
	}
	metric := m.scope.AppendEmpty()
	metric.SetName(name)
	metric.SetUnit(unit)
	metric.SetDescription(description)
	sum := metric.SetEmptySum()
	sum.SetIsMonotonic(true)
	sum.SetAggregationTemporality(m.temporality)
	m.sums[name] = metric
	return sum.DataPoints()
}

func (c *vllmConnector) exportResource(md pmetric.Metrics, res *resourceState, ts pcommon.Timestamp) {
	keys := make([]string, 0, len(res.series))
	for k, s := range res.series {
		if !c.delta || s.updated {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return
	}
	sort.Strings(keys)
	rm := md.ResourceMetrics().AppendEmpty()
	res.attrs.CopyTo(rm.Resource().Attributes())
	sm := rm.ScopeMetrics().AppendEmpty()
	sm.Scope().SetName(metadata.ScopeName)
	temporality := pmetric.AggregationTemporalityCumulative
	if c.delta {
		temporality = pmetric.AggregationTemporalityDelta
	}
	set := &metricSet{
		scope: sm.Metrics(), temporality: temporality, exponential: c.recorder.exponential,
		histograms: map[string]pmetric.Metric{}, sums: map[string]pmetric.Metric{},
	}
	for _, k := range keys {
		s := res.series[k]
		start := s.start
		if c.delta && c.lastFlush > start {
			start = c.lastFlush // a delta point covers the interval since the previous flush
		}
		c.exportSeries(set, s, start, ts)
		if c.delta {
			s.flushedDelta()
		} else {
			s.flushedCumulative()
		}
	}
}

func (c *vllmConnector) exportSeries(set *metricSet, s *series, start, ts pcommon.Timestamp) {
	for id, h := range s.histograms {
		if h == nil || h.Count() == 0 {
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

	point := func(dps pmetric.NumberDataPointSlice, v uint64) pmetric.NumberDataPoint {
		dp := dps.AppendEmpty()
		dp.SetStartTimestamp(start)
		dp.SetTimestamp(ts)
		dp.SetIntValue(int64(v))
		s.attrs.CopyTo(dp.Attributes())
		return dp
	}
	point(set.sum(metricRequests, "{request}", "vLLM requests finished (one per llm_request span)."), s.requests)
	for i, tokenType := range [2]string{tokenTypeInput, tokenTypeOutput} {
		if s.hasTokens[i] {
			dp := point(set.sum(metricTokens, "{token}", "Tokens processed by vLLM, by gen_ai.token.type."), s.tokens[i])
			dp.Attributes().PutStr(attrTokenType, tokenType)
		}
	}
	if !c.recorder.sloEnabled {
		return
	}
	sloPoints := set.sum(metricSLORequests, "{request}", "vLLM requests by SLO objective and verdict; objective \"all\" counts goodput.")
	sloPoint := func(objective string, counts [2]uint64) {
		for verdict, met := range [2]bool{true, false} {
			dp := point(sloPoints, counts[verdict])
			dp.Attributes().PutStr(attrSLOObjective, objective)
			dp.Attributes().PutBool(attrSLOMet, met)
		}
	}
	for _, o := range vllmrequest.Objectives() {
		if _, ok := c.cfg.Request.SLO.Threshold(o); ok {
			sloPoint(o.String(), s.slo[o])
		}
	}
	sloPoint(vllmrequest.ObjectiveAll, s.slo[sloAll])
}
