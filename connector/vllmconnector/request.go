package vllmconnector // import "github.com/otelcol-vllm/otelcol-vllm/connector/vllmconnector"

import (
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/otelcol-vllm/otelcol-vllm/connector/vllmconnector/internal/metadata"
)

// requestBuilder places series into requests of at most maxBytes (their protobuf size), a series never split
// across two. One series alone larger than maxBytes gets a request of its own; attribute values are capped by
// max_attribute_length, so a series is at most tens of KiB.
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

// add moves one series' metrics (written into scratch, without resource attributes) into the current request,
// first starting a new request when the series would make the current one exceed maxBytes.
func (b *requestBuilder) add(scratch pmetric.Metrics, metrics pmetric.MetricSlice) {
	size := b.sizer.MetricsSize(scratch)
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
