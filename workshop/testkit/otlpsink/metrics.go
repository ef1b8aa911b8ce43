package otlpsink

import (
	"encoding/json"
	"sort"
	"strings"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/otelcol-vllm/otelcol-vllm/internal/vllmrequest/vllmrequesttest"
)

// series is the highest point received of one metric's series.
type series struct {
	metric   string
	resource map[string]any
	attrs    map[string]any
	value    float64 // a sum's value, a histogram's count
	sum      float64 // a histogram's sum
	// a histogram's explicit bounds and bucket counts
	bounds  []float64
	buckets []uint64
}

// attr is the series' attribute key: the point's, else its resource's.
func (p *series) attr(key string) (any, bool) {
	if v, ok := p.attrs[key]; ok {
		return v, true
	}
	v, ok := p.resource[key]
	return v, ok
}

func (p *series) matches(metric string, match map[string]any) bool {
	if p.metric != metric {
		return false
	}
	for k, want := range match {
		if got, ok := p.attr(k); !ok || got != want {
			return false
		}
	}
	return true
}

// record keeps the highest point of every sum and histogram series in md (cumulative: the total so far, even
// when an exporter's queue resends an older point after a restart).
func (s *Sink) record(md pmetric.Metrics) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.series == nil {
		s.series = map[string]*series{}
	}
	for _, rm := range md.ResourceMetrics().All() {
		resource := rm.Resource().Attributes().AsRaw()
		resourceKey := attributesKey(resource)
		for _, sm := range rm.ScopeMetrics().All() {
			for _, m := range sm.Metrics().All() {
				put := func(attrs pcommon.Map, value float64) *series {
					raw := attrs.AsRaw()
					key := resourceKey + m.Name() + attributesKey(raw)
					if old := s.series[key]; old != nil && old.value > value {
						return nil
					}
					p := &series{metric: m.Name(), resource: resource, attrs: raw, value: value}
					s.series[key] = p
					return p
				}
				switch m.Type() {
				case pmetric.MetricTypeSum:
					for _, dp := range m.Sum().DataPoints().All() {
						value := dp.DoubleValue()
						if dp.ValueType() == pmetric.NumberDataPointValueTypeInt {
							value = float64(dp.IntValue())
						}
						put(dp.Attributes(), value)
					}
				case pmetric.MetricTypeHistogram:
					for _, dp := range m.Histogram().DataPoints().All() {
						if p := put(dp.Attributes(), float64(dp.Count())); p != nil {
							p.sum, p.bounds, p.buckets = dp.Sum(), dp.ExplicitBounds().AsRaw(), dp.BucketCounts().AsRaw()
						}
					}
				}
			}
		}
	}
}

// attributesKey writes attributes in a canonical order: {k="v",...}.
func attributesKey(raw map[string]any) string {
	keys := make([]string, 0, len(raw))
	for key, v := range raw {
		keys = append(keys, key+"="+toString(v))
	}
	sort.Strings(keys)
	return "{" + strings.Join(keys, ",") + "}"
}

// toString writes an attribute value for a series key; strings, nearly all of them, without encoding/json,
// which costs most of a large request's handling under the race detector.
func toString(v any) string {
	if s, ok := v.(string); ok {
		return `"` + s + `"`
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// Total adds the values (a histogram's count) and histogram sums of a metric's series whose attributes include
// match (a point's attribute, else its resource's), and says how many series there were.
func (s *Sink) Total(metric string, match map[string]any) (value, sum float64, seriesCount int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.series {
		if p.matches(metric, match) {
			value += p.value
			sum += p.sum
			seriesCount++
		}
	}
	return value, sum, seriesCount
}

// Missing lists the values of attribute that no series of metric has.
func (s *Sink) Missing(metric, attribute string, values []string) (out []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	seen := map[string]bool{}
	for _, p := range s.series {
		if v, ok := p.attr(attribute); ok && p.metric == metric {
			if v, ok := v.(string); ok {
				seen[v] = true
			}
		}
	}
	for _, v := range values {
		if !seen[v] {
			out = append(out, v)
		}
	}
	return out
}

// Histogram merges a histogram's series whose attributes include match: their count, sum and cumulative count
// at each bound every series has (an SLO threshold one series inserted is left out).
func (s *Sink) Histogram(metric string, match map[string]any) vllmrequesttest.Histogram {
	s.mu.Lock()
	defer s.mu.Unlock()
	var h vllmrequesttest.Histogram
	var perSeries []map[float64]uint64
	for _, p := range s.series {
		if p.bounds == nil && p.buckets == nil || !p.matches(metric, match) {
			continue
		}
		h.Count += uint64(p.value)
		h.Sum += p.sum
		perSeries = append(perSeries, vllmrequesttest.Cumulative(p.bounds, p.buckets))
	}
	h.Cumulative = vllmrequesttest.MergeShared(perSeries)
	return h
}
