package vllmconnector

import (
	"context"
	"testing"

	"github.com/jonboulle/clockwork"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/metric/metricdata/metricdatatest"

	"github.com/otelcol-vllm/otelcol-vllm/connector/vllmconnector/internal/metadatatest"
	"github.com/otelcol-vllm/otelcol-vllm/internal/vllmrequest/vllmrequesttest"
)

// TestRetriedSpansCountOnce: an OTLP client that timed out on a request the collector had processed sends the
// same spans again. Each request counts once; the copies are counted in telemetry. Without the window
// (duplicate_window: 0) they count twice, as before.
func TestRetriedSpansCountOnce(t *testing.T) {
	for _, tc := range []struct {
		window           int
		requests, copies int64
	}{{65536, 100, 100 + 1}, {0, 2*100 + 1, 0}} {
		tel := componenttest.NewTelemetry()
		t.Cleanup(func() { require.NoError(t, tel.Shutdown(context.Background())) })
		cfg := seedSLOConfig()
		cfg.DuplicateWindow = tc.window
		sink := new(consumertest.MetricsSink)
		c, err := newConnector(metadatatest.NewSettings(tel), cfg, sink, clockwork.NewFakeClockAt(t0))
		require.NoError(t, err)
		batch := vllmrequesttest.V1Batch(100, 4)
		retry := ptrace.NewTraces()
		batch.CopyTo(retry)
		// one span twice within one request, too
		spans := batch.ResourceSpans().At(0).ScopeSpans().At(0).Spans()
		spans.At(0).CopyTo(spans.AppendEmpty())
		require.NoError(t, c.ConsumeTraces(context.Background(), batch))
		require.NoError(t, c.ConsumeTraces(context.Background(), retry))
		require.NoError(t, c.Shutdown(context.Background()))
		assert.Equal(t, tc.requests, vllmrequesttest.SumTotal(sink.AllMetrics(), metricRequests), "window %d", tc.window)
		if tc.copies > 0 {
			metadatatest.AssertEqualConnectorVllmSpansDuplicate(t, tel, []metricdata.DataPoint[int64]{{Value: tc.copies}}, metricdatatest.IgnoreTimestamp())
		} else {
			_, err := tel.GetMetric("otelcol_connector_vllm_spans_duplicate")
			assert.Error(t, err, "nothing counted as a copy")
		}
	}
}

// TestDuplicateWindowIsBounded: the window remembers at least duplicate_window and at most twice as many of the
// most recent request spans; older ones are forgotten and count again. A span id is a duplicate only within
// its trace, and a span without a span id never is.
func TestDuplicateWindowIsBounded(t *testing.T) {
	d := newDuplicates(4)
	id := func(trace, span byte) (pcommon.TraceID, pcommon.SpanID) {
		return pcommon.TraceID{trace}, pcommon.SpanID{span}
	}
	seen := func(trace, span byte) bool { return d.seen(id(trace, span)) }
	assert.False(t, seen(1, 1))
	assert.True(t, seen(1, 1))
	assert.False(t, seen(2, 1), "the same span id in another trace is another span")
	for s := byte(10); s < 13; s++ {
		assert.False(t, seen(1, s))
	}
	assert.True(t, seen(1, 1), "within the window: 4 spans since")
	for s := byte(20); s < 28; s++ { // 8 more: two generations later, span 1 is gone
		assert.False(t, seen(1, s))
	}
	assert.False(t, seen(1, 1), "forgotten beyond twice the window")
	assert.False(t, d.seen(pcommon.TraceID{1}, pcommon.SpanID{}))
	assert.False(t, d.seen(pcommon.TraceID{1}, pcommon.SpanID{}), "no span id: never a duplicate")
	assert.Len(t, d.slots, 2*8, "a fixed table: two generations of 8 slots, each at most half full")
	assert.Nil(t, newDuplicates(0))
}

// BenchmarkDuplicates measures what remembering one request span costs the hot path, at the default window.
func BenchmarkDuplicates(b *testing.B) {
	d := newDuplicates(createDefaultConfig().(*Config).DuplicateWindow)
	var n uint64
	b.ReportAllocs()
	for b.Loop() {
		n++
		_ = d.seen(pcommon.TraceID{byte(n), byte(n >> 8), byte(n >> 16), 9: byte(n >> 24)}, pcommon.SpanID{byte(n), byte(n >> 8), byte(n >> 16), byte(n >> 24), 1})
	}
}

// TestDuplicatesAcrossPrefetchChunks: the window's lookups are prefetched prefetchSpans spans at a time; copies
// in other chunks of one scope, and other spans between the request spans, change nothing.
func TestDuplicatesAcrossPrefetchChunks(t *testing.T) {
	tel := componenttest.NewTelemetry()
	t.Cleanup(func() { require.NoError(t, tel.Shutdown(context.Background())) })
	sink := new(consumertest.MetricsSink)
	c, err := newConnector(metadatatest.NewSettings(tel), seedSLOConfig(), sink, clockwork.NewFakeClockAt(t0))
	require.NoError(t, err)
	batch := vllmrequesttest.V1Batch(3*prefetchSpans, 1)
	spans := batch.ResourceSpans().At(0).ScopeSpans().At(0).Spans()
	// a span of another name with the ids of request span 1 every few spans, and copies of request spans 0,
	// prefetchSpans-1 and prefetchSpans (at the end of the first chunk and the start of the second) after them
	for i := 0; i < 3*prefetchSpans; i += 7 {
		other := spans.AppendEmpty()
		other.SetName("http.request")
		other.SetTraceID(spans.At(1).TraceID())
		other.SetSpanID(spans.At(1).SpanID())
	}
	for _, i := range []int{0, prefetchSpans - 1, prefetchSpans} {
		spans.At(i).CopyTo(spans.AppendEmpty())
	}
	require.Greater(t, spans.Len(), 3*prefetchSpans, "a fourth chunk")
	require.NoError(t, c.ConsumeTraces(context.Background(), batch))
	require.NoError(t, c.Shutdown(context.Background()))
	assert.Equal(t, int64(3*prefetchSpans), vllmrequesttest.SumTotal(sink.AllMetrics(), metricRequests))
	metadatatest.AssertEqualConnectorVllmSpansDuplicate(t, tel, []metricdata.DataPoint[int64]{{Value: 3}}, metricdatatest.IgnoreTimestamp())
}
