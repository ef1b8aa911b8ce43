package vllmconnector // import "github.com/otelcol-vllm/otelcol-vllm/connector/vllmconnector"

import (
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/otelcol-vllm/otelcol-vllm/connector/vllmconnector/internal/metadata"
)

// requestBuilder places series into requests of at most maxBytes (their protobuf size). A series is kept in one
// request when it fits in one; a series larger than maxBytes alone (32 dimensions of 4 KiB each are 128 KiB per
// data point, several MiB per series) is split by data point, so that no request exceeds maxBytes by more than
// one data point, itself bounded by max_attribute_length.
type requestBuilder struct {
	maxBytes int
	sizer    pmetric.ProtoMarshaler
	done     []pmetric.Metrics

	current      pmetric.Metrics
	currentBytes int
	// the resource being written, and its metrics in the current request (nil until its first series lands)
	resourceAttrs pcommon.Map
	resourceBytes int
	set           *metricSet
}

func newRequestBuilder(maxBytes int) *requestBuilder {
	return &requestBuilder{maxBytes: maxBytes, current: pmetric.NewMetrics()}
}

// startResource begins the series of another resource.
func (b *requestBuilder) startResource(attrs pcommon.Map) {
	b.resourceAttrs = attrs
	b.set = nil
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	attrs.CopyTo(rm.Resource().Attributes())
	rm.ScopeMetrics().AppendEmpty().Scope().SetName(metadata.ScopeName)
	b.resourceBytes = b.sizer.MetricsSize(md)
}

// addSeries moves one series' metrics (written into scratch, without resource attributes) into the requests:
// whole when it fits in one request, else one data point at a time.
func (b *requestBuilder) addSeries(scratch pmetric.Metrics, metrics pmetric.MetricSlice) {
	size := b.sizer.MetricsSize(scratch)
	if size+b.resourceBytes <= b.maxBytes {
		b.add(size, metrics)
		return
	}
	for i := 0; i < metrics.Len(); i++ {
		m := metrics.At(i)
		for p := 0; p < dataPointCount(m); p++ {
			one := pmetric.NewMetrics()
			dst := one.ResourceMetrics().AppendEmpty().ScopeMetrics().AppendEmpty().Metrics()
			copyDataPoint(m, p, dst.AppendEmpty())
			b.add(b.sizer.MetricsSize(one), dst)
		}
	}
}

func dataPointCount(m pmetric.Metric) int {
	switch m.Type() {
	case pmetric.MetricTypeHistogram:
		return m.Histogram().DataPoints().Len()
	case pmetric.MetricTypeExponentialHistogram:
		return m.ExponentialHistogram().DataPoints().Len()
	case pmetric.MetricTypeSum:
		return m.Sum().DataPoints().Len()
	}
	return 0
}

// copyDataPoint writes metric m with only its data point p into dst.
func copyDataPoint(m pmetric.Metric, p int, dst pmetric.Metric) {
	dst.SetName(m.Name())
	dst.SetUnit(m.Unit())
	dst.SetDescription(m.Description())
	switch m.Type() {
	case pmetric.MetricTypeHistogram:
		h := dst.SetEmptyHistogram()
		h.SetAggregationTemporality(m.Histogram().AggregationTemporality())
		m.Histogram().DataPoints().At(p).CopyTo(h.DataPoints().AppendEmpty())
	case pmetric.MetricTypeExponentialHistogram:
		h := dst.SetEmptyExponentialHistogram()
		h.SetAggregationTemporality(m.ExponentialHistogram().AggregationTemporality())
		m.ExponentialHistogram().DataPoints().At(p).CopyTo(h.DataPoints().AppendEmpty())
	case pmetric.MetricTypeSum:
		sum := dst.SetEmptySum()
		sum.SetIsMonotonic(m.Sum().IsMonotonic())
		sum.SetAggregationTemporality(m.Sum().AggregationTemporality())
		m.Sum().DataPoints().At(p).CopyTo(sum.DataPoints().AppendEmpty())
	}
}

// add moves metrics of the given size (protobuf, without resource attributes) into the current request, first
// starting a new request when they would make the current one exceed maxBytes.
func (b *requestBuilder) add(size int, metrics pmetric.MetricSlice) {
	if b.set == nil {
		size += b.resourceBytes
	}
	if b.currentBytes > 0 && b.currentBytes+size > b.maxBytes {
		if b.set != nil {
			size += b.resourceBytes // the new request needs the resource again
		}
		b.startRequest()
	}
	if b.set == nil {
		rm := b.current.ResourceMetrics().AppendEmpty()
		b.resourceAttrs.CopyTo(rm.Resource().Attributes())
		sm := rm.ScopeMetrics().AppendEmpty()
		sm.Scope().SetName(metadata.ScopeName)
		b.set = &metricSet{scope: sm.Metrics(), byName: map[string]pmetric.Metric{}}
	}
	b.set.adopt(metrics)
	b.currentBytes += size
}

func (b *requestBuilder) startRequest() {
	b.done = append(b.done, b.current)
	b.current, b.currentBytes = pmetric.NewMetrics(), 0
	b.set = nil
}

// finish returns the requests built, none empty.
func (b *requestBuilder) finish() []pmetric.Metrics {
	if b.current.DataPointCount() > 0 {
		b.done = append(b.done, b.current)
	}
	b.current = pmetric.NewMetrics()
	return b.done
}
