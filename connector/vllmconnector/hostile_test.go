package vllmconnector

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/connector/connectortest"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/metric/metricdata/metricdatatest"

	"github.com/otelcol-vllm/otelcol-vllm/connector/vllmconnector/internal/metadata"
	"github.com/otelcol-vllm/otelcol-vllm/connector/vllmconnector/internal/metadatatest"
	"github.com/otelcol-vllm/otelcol-vllm/internal/vllmrequest/vllmrequesttest"
)

// hostileBatch returns n V1 request spans whose model (on the resource, as vLLM V1 sends it) is
// model(i) and whose span attributes are set by attrs(i, span attributes).
func hostileBatch(n int, model func(i int) string, attrs func(i int, a pcommon.Map)) ptrace.Traces {
	td := vllmrequesttest.V1Batch(n, 1)
	vllmrequesttest.UniqueSpanIDs(td) // each call stands for new requests
	rs := td.ResourceSpans().At(0)
	rs.Resource().Attributes().Remove("gen_ai.request.model")
	spans := rs.ScopeSpans().At(0).Spans()
	for i := 0; i < spans.Len(); i++ {
		a := spans.At(i).Attributes()
		a.PutStr("gen_ai.request.id", fmt.Sprintf("chatcmpl-%d", i))
		if model != nil {
			a.PutStr("gen_ai.request.model", model(i))
		}
		if attrs != nil {
			attrs(i, a)
		}
	}
	return td
}

// allPoints merges every request the sink received into one Metrics, for lookups.
func allPoints(sink interface{ AllMetrics() []pmetric.Metrics }) pmetric.Metrics {
	md := pmetric.NewMetrics()
	for _, r := range sink.AllMetrics() {
		r.ResourceMetrics().MoveAndAppendTo(md.ResourceMetrics())
	}
	return md
}

func longString(prefix string, n int) string { return prefix + strings.Repeat("x", n-len(prefix)) }

func TestSeriesKeysDoNotCollide(t *testing.T) {
	tests := []struct {
		name string
		a, b func(a pcommon.Map)
		dims []Dimension
		same bool
	}{
		{
			name: "model and operation boundary",
			a: func(a pcommon.Map) {
				a.PutStr("gen_ai.operation.name", "chat\x00m")
				a.PutStr("gen_ai.request.model", "x")
			},
			b: func(a pcommon.Map) {
				a.PutStr("gen_ai.operation.name", "chat")
				a.PutStr("gen_ai.request.model", "m\x00x")
			},
		},
		{
			name: "model and dimension boundary",
			dims: []Dimension{{Name: "tenant"}},
			a:    func(a pcommon.Map) { a.PutStr("gen_ai.request.model", "a\x00vX"); a.PutStr("tenant", "Y") },
			b:    func(a pcommon.Map) { a.PutStr("gen_ai.request.model", "a"); a.PutStr("tenant", "X\x00vY") },
		},
		{
			name: "dimension absent and dimension value",
			dims: []Dimension{{Name: "tenant"}, {Name: "team"}},
			a:    func(a pcommon.Map) { a.PutStr("gen_ai.request.model", "m"); a.PutStr("tenant", "-") },
			b:    func(a pcommon.Map) { a.PutStr("gen_ai.request.model", "m"); a.PutStr("team", "-") },
		},
		{
			// dimensions become labels, which have no type: one series, on purpose
			name: "Int(5) and Str(\"5\") are one label value",
			dims: []Dimension{{Name: "tenant"}},
			a:    func(a pcommon.Map) { a.PutStr("gen_ai.request.model", "m"); a.PutInt("tenant", 5) },
			b:    func(a pcommon.Map) { a.PutStr("gen_ai.request.model", "m"); a.PutStr("tenant", "5") },
			same: true,
		},
		{
			name: "Double(5) and Int(5) are one label value",
			dims: []Dimension{{Name: "tenant"}},
			a:    func(a pcommon.Map) { a.PutStr("gen_ai.request.model", "m"); a.PutDouble("tenant", 5) },
			b:    func(a pcommon.Map) { a.PutStr("gen_ai.request.model", "m"); a.PutInt("tenant", 5) },
			same: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := createDefaultConfig().(*Config)
			cfg.Dimensions = tt.dims
			h := newHarness(t, cfg)
			td := hostileBatch(2, nil, func(i int, a pcommon.Map) {
				if i == 0 {
					tt.a(a)
				} else {
					tt.b(a)
				}
			})
			require.NoError(t, h.c.ConsumeTraces(context.Background(), td))
			md := h.flush(t, time.Second)
			requests := points(md, metricRequests)
			if tt.same {
				require.Len(t, requests, 1)
				assert.Equal(t, int64(2), requests[0].num.IntValue())
				assert.Equal(t, "5", requests[0].attrs["tenant"], "exported in its string form")
				return
			}
			require.Len(t, requests, 2, "two attribute sets, two series")
			spans := td.ResourceSpans().At(0).ScopeSpans().At(0).Spans()
			for i, want := range []ptrace.Span{spans.At(0), spans.At(1)} {
				got := requests[0]
				if !sameAttrs(got.attrs, want.Attributes(), tt.dims) {
					got = requests[1]
				}
				assert.True(t, sameAttrs(got.attrs, want.Attributes(), tt.dims), "span %d is exported under its own attributes: %v", i, got.attrs)
				assert.Equal(t, int64(1), got.num.IntValue())
			}
		})
	}
}

// sameAttrs says whether point attributes carry the operation, model and dimensions of span attributes.
func sameAttrs(point map[string]any, span pcommon.Map, dims []Dimension) bool {
	keys := []string{"gen_ai.request.model"}
	if _, ok := span.Get("gen_ai.operation.name"); ok {
		keys = append(keys, "gen_ai.operation.name")
	}
	for _, d := range dims {
		keys = append(keys, d.Name)
	}
	for _, k := range keys {
		v, ok := span.Get(k)
		if pv, pok := point[k]; ok != pok || ok && pv != v.AsString() {
			return false
		}
	}
	return true
}

func TestAttributeValuesAreCappedAndCounted(t *testing.T) {
	tel := componenttest.NewTelemetry()
	t.Cleanup(func() { require.NoError(t, tel.Shutdown(context.Background())) })
	cfg := createDefaultConfig().(*Config)
	cfg.MaxAttributeLength = 16
	cfg.Dimensions = []Dimension{{Name: "tenant"}, {Name: "labels"}}
	sink := new(consumertest.MetricsSink)
	c, err := newConnector(metadatatest.NewSettings(tel), cfg, sink, clockwork.NewFakeClockAt(t0))
	require.NoError(t, err)

	td := hostileBatch(1, func(int) string { return longString("model-", 64<<10) }, func(_ int, a pcommon.Map) {
		a.PutStr("gen_ai.provider.name", longString("prov-", 100))
		a.PutStr("tenant", "ü"+strings.Repeat("é", 20))     // truncated at a rune boundary
		a.PutEmptySlice("labels").AppendEmpty().SetStr("a") // not a scalar: dropped
	})
	res := td.ResourceSpans().At(0).Resource().Attributes()
	res.PutStr("service.instance.id", longString("instance-", 1000))
	nested := res.PutEmptySlice("service.namespace") // a deep array, as a hostile OTLP/JSON request sends
	for range 100_000 {
		nested = nested.AppendEmpty().SetEmptySlice()
	}
	require.NoError(t, c.ConsumeTraces(context.Background(), td))
	require.NoError(t, c.Shutdown(context.Background()))

	md := allPoints(sink)
	require.Equal(t, 1, md.ResourceMetrics().Len())
	assert.Equal(t, map[string]any{"service.name": "vllm-server", "service.instance.id": "instance-xxxxxxx"},
		md.ResourceMetrics().At(0).Resource().Attributes().AsRaw(), "the array is dropped, the long value cut")
	p := onePoint(t, md, metricRequests, nil)
	assert.Equal(t, map[string]any{
		"gen_ai.provider.name": "prov-xxxxxxxxxxx", "gen_ai.operation.name": "chat",
		"gen_ai.request.model": "model-xxxxxxxxxx", "tenant": "ü" + strings.Repeat("é", 7),
	}, p.attrs)
	for k, v := range p.attrs {
		assert.LessOrEqual(t, len(v.(string)), 16, k)
	}
	metadatatest.AssertEqualConnectorVllmAttributesTruncated(t, tel, []metricdata.DataPoint[int64]{
		{Attributes: attribute.NewSet(attribute.String("kind", "model")), Value: 1},
		{Attributes: attribute.NewSet(attribute.String("kind", "provider")), Value: 1},
		{Attributes: attribute.NewSet(attribute.String("kind", "dimension")), Value: 1},
		{Attributes: attribute.NewSet(attribute.String("kind", "resource")), Value: 1},
	}, metricdatatest.IgnoreTimestamp())
	metadatatest.AssertEqualConnectorVllmAttributesDropped(t, tel, []metricdata.DataPoint[int64]{
		{Attributes: attribute.NewSet(attribute.String("kind", "dimension")), Value: 1},
		{Attributes: attribute.NewSet(attribute.String("kind", "resource")), Value: 1},
	}, metricdatatest.IgnoreTimestamp())
}

func TestKeepAllResourceAttributesIsBounded(t *testing.T) {
	cfg := createDefaultConfig().(*Config)
	cfg.ResourceAttributes = []string{}
	h := newHarness(t, cfg)
	td := hostileBatch(1, func(int) string { return "m" }, nil)
	res := td.ResourceSpans().At(0).Resource().Attributes()
	res.Clear()
	for i := range 1000 {
		res.PutStr(fmt.Sprintf("attr.%04d", i), "v")
	}
	res.PutStr(longString("key.", 1000), "v") // a key longer than max_attribute_length
	require.NoError(t, h.c.ConsumeTraces(context.Background(), td))
	md := h.flush(t, time.Second)
	attrs := md.ResourceMetrics().At(0).Resource().Attributes()
	assert.Equal(t, maxKeptResourceAttributes, attrs.Len())
	_, ok := attrs.Get("attr.0000")
	assert.True(t, ok, "the first in key order are kept")
	_, ok = attrs.Get(fmt.Sprintf("attr.%04d", maxKeptResourceAttributes))
	assert.False(t, ok)
}

// TestMemoryIsBoundedByConfiguration sends the attack of distinct 64 KB model names: the heap the connector
// keeps grows with cardinality_limit and max_attribute_length, not with the size of the input.
func TestMemoryIsBoundedByConfiguration(t *testing.T) {
	const limit, spans, valueSize = 1000, 3000, 64 << 10
	cfg := seedSLOConfig()
	cfg.Exemplars.Enabled = true
	cfg.CardinalityLimit = limit
	h := newHarness(t, cfg)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for batch := 0; batch < spans/100; batch++ {
		td := hostileBatch(100, func(i int) string { return longString(fmt.Sprintf("%d-%d-", batch, i), valueSize) }, nil)
		require.NoError(t, h.c.ConsumeTraces(context.Background(), td))
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	held := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	// The README's bound, cardinality_limit × (S + (3 + D + R) × 2 × max_attribute_length), with S = 8 KiB for
	// explicit histograms with exemplars (measured 5.6 KB), no dimensions and the 3 default resource attributes.
	// Unbounded, each series would keep its 64 KiB model name.
	bound := int64(limit * (8<<10 + (3+0+3)*2*cfg.MaxAttributeLength))
	assert.Less(t, held, bound, "heap held after %d spans of %d KiB model names", spans, valueSize>>10)
	t.Logf("heap held: %d KiB for %d series", held>>10, limit)
	assert.Equal(t, limit, h.c.seriesCount)

	h.clock.Advance(time.Second)
	h.c.flush(context.Background())
	requests := h.sink.AllMetrics()
	var sizer pmetric.ProtoMarshaler
	for _, r := range requests {
		assert.LessOrEqual(t, sizer.MetricsSize(r), cfg.MaxRequestBytes)
	}
	runtime.KeepAlive(h)
}

func TestFlushIsSplitIntoBoundedRequests(t *testing.T) {
	const series = 5000
	cfg := seedSLOConfig()
	cfg.Exemplars.Enabled = true
	cfg.Dimensions = []Dimension{{Name: "series"}}
	h := newHarness(t, cfg)
	td := hostileBatch(series, func(i int) string {
		if i == 42 {
			return longString("poison-", 512<<10) // alone, it once made every flush exceed 4 MiB
		}
		return fmt.Sprintf("model-%d", i%7)
	}, func(i int, a pcommon.Map) { a.PutInt("series", int64(i)) })
	require.NoError(t, h.c.ConsumeTraces(context.Background(), td))
	h.clock.Advance(time.Second)
	h.c.flush(context.Background())

	requests := h.sink.AllMetrics()
	require.Greater(t, len(requests), 1, "5,000 series do not fit one request of 1 MiB")
	var sizer pmetric.ProtoMarshaler
	seen := map[string]bool{}
	for _, r := range requests {
		assert.LessOrEqual(t, sizer.MetricsSize(r), cfg.MaxRequestBytes)
		for _, p := range points(r, metricRequests) {
			seen[p.attrs["series"].(string)] = true
		}
	}
	assert.Len(t, seen, series, "every series arrives, the poison one too")
	merged := allPoints(h.sink)
	assert.Equal(t, series, len(points(merged, metricRequests)))
	// every series keeps all its points in one request: its histograms sit beside its counter
	for _, r := range requests {
		assert.Equal(t, len(points(r, metricRequests)), len(points(r, metricRequestDuration)))
	}
}

// cancelAfterFirst is a next consumer that ends the flush's context at its first request, as a shutdown
// deadline would.
type cancelAfterFirst struct {
	consumertest.MetricsSink
	cancel context.CancelFunc
}

func (c *cancelAfterFirst) ConsumeMetrics(ctx context.Context, md pmetric.Metrics) error {
	c.cancel()
	return c.MetricsSink.ConsumeMetrics(ctx, md)
}

func (*cancelAfterFirst) Capabilities() consumer.Capabilities { return consumer.Capabilities{} }

func TestShutdownStopsAtItsDeadline(t *testing.T) {
	tel := componenttest.NewTelemetry()
	t.Cleanup(func() { require.NoError(t, tel.Shutdown(context.Background())) })
	cfg := seedSLOConfig()
	cfg.Dimensions = []Dimension{{Name: "series"}}
	cfg.MaxRequestBytes = minRequestBytes
	ctx, cancel := context.WithCancel(context.Background())
	next := &cancelAfterFirst{cancel: cancel}
	c, err := newConnector(metadatatest.NewSettings(tel), cfg, next, clockwork.NewFakeClockAt(t0))
	require.NoError(t, err)
	td := hostileBatch(2000, func(int) string { return "m" }, func(i int, a pcommon.Map) { a.PutInt("series", int64(i)) })
	require.NoError(t, c.ConsumeTraces(context.Background(), td))
	total := 0
	c.mu.Lock()
	for _, r := range c.buildMetricsCopy() {
		total += r.DataPointCount()
	}
	c.mu.Unlock()

	require.NoError(t, c.Shutdown(ctx))
	require.Len(t, next.AllMetrics(), 1, "no request is sent once the deadline has passed")
	sent := next.AllMetrics()[0].DataPointCount()
	metadatatest.AssertEqualConnectorVllmDataPointsDropped(t, tel, []metricdata.DataPoint[int64]{
		{Attributes: attribute.NewSet(attribute.String("reason", "shutdown_deadline")), Value: int64(total - sent)},
	}, metricdatatest.IgnoreTimestamp())
}

// buildMetricsCopy builds the requests a flush would send without resetting anything (cumulative).
func (c *vllmConnector) buildMetricsCopy() []pmetric.Metrics {
	saved := c.lastFlush
	defer func() { c.lastFlush = saved }()
	requests, _ := c.buildMetrics(context.Background(), c.clock.Now())
	return requests
}

// deadlineRecorder is a next consumer that records whether each request came with a deadline.
type deadlineRecorder struct {
	consumertest.MetricsSink
	deadlines []time.Time // zero: none
}

func (d *deadlineRecorder) ConsumeMetrics(ctx context.Context, md pmetric.Metrics) error {
	deadline, _ := ctx.Deadline()
	d.deadlines = append(d.deadlines, deadline)
	return d.MetricsSink.ConsumeMetrics(ctx, md)
}

func (*deadlineRecorder) Capabilities() consumer.Capabilities { return consumer.Capabilities{} }

// TestFinalFlushIsBounded: the collector shuts its components down with a context that has no deadline, so the
// final flush sets its own (finalFlushTimeout), or keeps the shutdown's when that is earlier.
func TestFinalFlushIsBounded(t *testing.T) {
	for _, tc := range []struct {
		name   string
		ctx    func() (context.Context, context.CancelFunc)
		within time.Duration
	}{
		{"no deadline", func() (context.Context, context.CancelFunc) { return context.WithCancel(context.Background()) }, finalFlushTimeout},
		{"an earlier deadline", func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), time.Second)
		}, time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			next := &deadlineRecorder{}
			c, err := newConnector(connectortest.NewNopSettings(metadata.Type), seedSLOConfig(), next, clockwork.NewFakeClockAt(t0))
			require.NoError(t, err)
			require.NoError(t, c.ConsumeTraces(context.Background(), hostileBatch(10, nil, nil)))
			ctx, cancel := tc.ctx()
			defer cancel()
			require.NoError(t, c.Shutdown(ctx))
			after := time.Now()
			require.Len(t, next.deadlines, 1)
			require.False(t, next.deadlines[0].IsZero(), "the final flush has a deadline")
			assert.False(t, next.deadlines[0].After(after.Add(tc.within)), "deadline %v, at most %v after %v", next.deadlines[0], tc.within, after)
		})
	}
}

// TestDeadlineDuringBuildStopsBuilding: a deadline that has passed before the last series are written stops the
// flush there (building 5,000 large series is most of a final flush's time); their points are counted as
// dropped and nothing is sent.
func TestDeadlineDuringBuildStopsBuilding(t *testing.T) {
	tel := componenttest.NewTelemetry()
	t.Cleanup(func() { require.NoError(t, tel.Shutdown(context.Background())) })
	cfg := seedSLOConfig()
	cfg.Dimensions = []Dimension{{Name: "series"}}
	next := new(consumertest.MetricsSink)
	c, err := newConnector(metadatatest.NewSettings(tel), cfg, next, clockwork.NewFakeClockAt(t0))
	require.NoError(t, err)
	require.NoError(t, c.ConsumeTraces(context.Background(), hostileBatch(500, nil, func(i int, a pcommon.Map) { a.PutInt("series", int64(i)) })))
	c.mu.Lock()
	total := 0
	for _, r := range c.buildMetricsCopy() {
		total += r.DataPointCount()
	}
	c.mu.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.NoError(t, c.Shutdown(ctx))
	assert.Empty(t, next.AllMetrics())
	metadatatest.AssertEqualConnectorVllmDataPointsDropped(t, tel, []metricdata.DataPoint[int64]{
		{Attributes: attribute.NewSet(attribute.String("reason", "shutdown_deadline")), Value: int64(total)},
	}, metricdatatest.IgnoreTimestamp())
}

func TestUnflushedSeriesAreNotExpired(t *testing.T) {
	cfg := createDefaultConfig().(*Config)
	cfg.MetricsFlushInterval = time.Minute
	cfg.MetricsExpiration = time.Minute
	h := newHarness(t, cfg)
	h.consume(t, "v1_newest_scope")
	md := h.flush(t, 2*time.Minute) // a late tick: the series is past its expiry but was never sent
	require.Len(t, points(md, metricRequests), 1)
	md = h.flush(t, 2*time.Minute)
	assert.Empty(t, points(md, metricRequests), "sent once, then expired")
}

// TestLongResponseModelIsCountedOnce: gen_ai.response.model is also the request model when model.attributes
// finds it first; the one value cut is counted once, not once per use. A span whose request and response models
// differ, both long, has two values cut.
func TestLongResponseModelIsCountedOnce(t *testing.T) {
	tel := componenttest.NewTelemetry()
	t.Cleanup(func() { require.NoError(t, tel.Shutdown(context.Background())) })
	cfg := createDefaultConfig().(*Config)
	cfg.MaxAttributeLength = 16
	cfg.Request.Model.Attributes = []string{"gen_ai.request.model", "gen_ai.response.model"}
	c, err := newConnector(metadatatest.NewSettings(tel), cfg, new(consumertest.MetricsSink), clockwork.NewFakeClockAt(t0))
	require.NoError(t, err)
	td := hostileBatch(4, nil, func(i int, a pcommon.Map) {
		a.PutStr("gen_ai.response.model", longString("response-", 100))
		if i == 3 {
			a.PutStr("gen_ai.request.model", longString("request-", 100))
		}
	})
	require.NoError(t, c.ConsumeTraces(context.Background(), td))
	require.NoError(t, c.Shutdown(context.Background()))
	metadatatest.AssertEqualConnectorVllmAttributesTruncated(t, tel, []metricdata.DataPoint[int64]{
		{Attributes: attribute.NewSet(attribute.String("kind", "model")), Value: 3 + 2},
	}, metricdatatest.IgnoreTimestamp())
}

// TestEmptyValueIsAbsent: Prometheus drops an empty label, so a dimension or resource attribute whose value is ""
// and one that is absent must be one series here too; as two, remote write would map both onto one Prometheus
// series and each flush would overwrite the other's count. An empty value takes the dimension's default.
func TestEmptyValueIsAbsent(t *testing.T) {
	def := "shared"
	for _, tc := range []struct {
		name  string
		dim   Dimension
		attrs map[string]any
	}{
		{"no default", Dimension{Name: "tenant"}, map[string]any{}},
		{"default", Dimension{Name: "tenant", Default: &def}, map[string]any{"tenant": "shared"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := createDefaultConfig().(*Config)
			cfg.Dimensions = []Dimension{tc.dim}
			cfg.ResourceAttributes = []string{"service.name", "service.namespace"}
			h := newHarness(t, cfg)
			td := hostileBatch(8, nil, func(i int, a pcommon.Map) {
				if i < 3 {
					a.PutStr("tenant", "")
				}
			})
			td.ResourceSpans().At(0).Resource().Attributes().PutStr("service.namespace", "")
			other := hostileBatch(2, nil, nil) // the same resource without service.namespace
			other.ResourceSpans().MoveAndAppendTo(td.ResourceSpans())
			require.NoError(t, h.c.ConsumeTraces(context.Background(), td))
			md := h.flush(t, time.Second)
			require.Equal(t, 1, md.ResourceMetrics().Len(), "one resource")
			assert.Equal(t, map[string]any{"service.name": "vllm-server"}, md.ResourceMetrics().At(0).Resource().Attributes().AsRaw())
			p := onePoint(t, md, metricRequests, nil)
			assert.Equal(t, int64(10), p.num.IntValue())
			for k, v := range tc.attrs {
				assert.Equal(t, v, p.attrs[k])
			}
			_, has := p.attrs["tenant"]
			assert.Equal(t, len(tc.attrs) > 0, has)
		})
	}
}

// TestLargestSeriesIsSplitByDataPoint: at the largest values the configuration allows (32 dimensions and 64
// resource attributes of max_attribute_length 4096 bytes, 100 exemplars per point, 256 bounds per histogram) one
// series is several MiB, more than a default OTLP receiver takes in one message. It is split by data point:
// every request stays within max_request_bytes and every point arrives.
func TestLargestSeriesIsSplitByDataPoint(t *testing.T) {
	cfg := seedSLOConfig()
	cfg.MaxAttributeLength = maxAttributeLength
	cfg.Exemplars = ExemplarsConfig{Enabled: true, MaxPerDataPoint: maxExemplarsPerDataPoint}
	bounds := make([]float64, maxExplicitBounds)
	for i := range bounds {
		bounds[i] = float64(i+1) / 100
	}
	cfg.Histograms.Buckets = map[string][]float64{metricRequestDuration: bounds}
	cfg.ResourceAttributes = nil
	for i := range maxResourceAttributeNames {
		cfg.ResourceAttributes = append(cfg.ResourceAttributes, fmt.Sprintf("r%02d", i))
	}
	for i := range maxDimensions {
		cfg.Dimensions = append(cfg.Dimensions, Dimension{Name: fmt.Sprintf("d%02d", i)})
	}
	h := newHarness(t, cfg)
	const series = 3
	td := hostileBatch(series*maxExemplarsPerDataPoint, func(i int) string { return longString(fmt.Sprintf("model-%d-", i%series), 8192) },
		func(i int, a pcommon.Map) {
			for _, d := range cfg.Dimensions {
				a.PutStr(d.Name, longString(fmt.Sprintf("%s-%d-", d.Name, i%series), 8192))
			}
		})
	res := td.ResourceSpans().At(0).Resource().Attributes()
	for _, k := range cfg.ResourceAttributes {
		res.PutStr(k, longString(k, 8192))
	}
	require.NoError(t, h.c.ConsumeTraces(context.Background(), td))
	c := h.c
	c.mu.Lock()
	want := 0
	for _, r := range c.buildMetricsCopy() {
		want += r.DataPointCount()
	}
	c.mu.Unlock()
	h.clock.Advance(time.Second)
	h.c.flush(context.Background())

	var sizer pmetric.ProtoMarshaler
	got, largest := 0, 0
	for _, r := range h.sink.AllMetrics() {
		largest = max(largest, sizer.MetricsSize(r))
		got += r.DataPointCount()
	}
	t.Logf("%d requests, the largest %d KiB", len(h.sink.AllMetrics()), largest>>10)
	assert.LessOrEqual(t, largest, cfg.MaxRequestBytes)
	assert.Equal(t, want, got, "every data point arrives")
	assert.Equal(t, int64(series*maxExemplarsPerDataPoint), vllmrequesttest.SumTotal(h.sink.AllMetrics(), metricRequests))
}

// TestSeriesResolvedOncePerBatch: a batch resolves a series once per resource and set of values and reuses it
// for the resource's later spans; every span still counts in its own series, a cut value is counted for every
// span that carries it, and every span beyond cardinality_limit is counted as overflow.
func TestSeriesResolvedOncePerBatch(t *testing.T) {
	tel := componenttest.NewTelemetry()
	t.Cleanup(func() { require.NoError(t, tel.Shutdown(context.Background())) })
	cfg := createDefaultConfig().(*Config)
	cfg.MaxAttributeLength = 16
	cfg.CardinalityLimit = 4
	sink := new(consumertest.MetricsSink)
	c, err := newConnector(metadatatest.NewSettings(tel), cfg, sink, clockwork.NewFakeClockAt(t0))
	require.NoError(t, err)

	// 12 spans: models a, b and a long one in turn; every fourth span (0, 4, 8) an error
	models := []string{"a", "b", longString("model-", 100)}
	td := hostileBatch(12, func(i int) string { return models[i%3] }, func(i int, a pcommon.Map) {
		if i%4 == 0 {
			a.PutEmptySlice("gen_ai.response.finish_reasons").AppendEmpty().SetStr("abort")
		}
	})
	require.NoError(t, c.ConsumeTraces(context.Background(), td))
	require.NoError(t, c.Shutdown(context.Background()))

	// series in order of arrival: a/abort (0), b (1), long (2), a (3); then the limit: b/abort (4), long/abort (8)
	// go to overflow, as their copies do
	requests := map[string]int64{}
	for _, p := range points(allPoints(sink), metricRequests) {
		key := fmt.Sprint(p.attrs["gen_ai.request.model"], "/", p.attrs["error.type"])
		if p.attrs[attrOverflow] == true {
			key = "overflow"
		}
		requests[key] += p.num.IntValue()
	}
	assert.Equal(t, map[string]int64{
		"a/abort": 1, "b/<nil>": 3, "model-xxxxxxxxxx/<nil>": 3, "a/<nil>": 3, "overflow": 2,
	}, requests)
	metadatatest.AssertEqualConnectorVllmSeriesOverflow(t, tel, []metricdata.DataPoint[int64]{{Value: 2}}, metricdatatest.IgnoreTimestamp())
	metadatatest.AssertEqualConnectorVllmAttributesTruncated(t, tel, []metricdata.DataPoint[int64]{
		{Attributes: attribute.NewSet(attribute.String("kind", "model")), Value: 4},
	}, metricdatatest.IgnoreTimestamp())
}
