package vllmconnector

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/metric/metricdata/metricdatatest"

	"github.com/otelcol-vllm/otelcol-vllm/connector/vllmconnector/internal/metadatatest"
	"github.com/otelcol-vllm/otelcol-vllm/internal/vllmrequest/vllmrequesttest"
)

// sampledBatch is n identical V1 request spans (TTFT 0.1 s, E2E 1.5 s, 100 prompt and 50 output tokens) of
// service, each with the given W3C tracestate. Their trace ids end in 56 one bits, the largest randomness, which
// is consistent with every threshold.
func sampledBatch(n int, service, tracestate string) ptrace.Traces {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", service)
	spans := rs.ScopeSpans().AppendEmpty().Spans()
	for i := range n {
		s := spans.AppendEmpty()
		s.SetName("llm_request")
		s.SetTraceID(pcommon.TraceID{9, byte(i), byte(i >> 8), 9: 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
		s.SetSpanID(pcommon.SpanID{9, byte(i), byte(i >> 8)})
		s.TraceState().FromRaw(tracestate)
		a := s.Attributes()
		a.PutStr("gen_ai.request.id", "chatcmpl-1")
		a.PutStr("gen_ai.response.model", "m")
		a.PutDouble("gen_ai.latency.time_to_first_token", 0.1)
		a.PutDouble("gen_ai.latency.e2e", 1.5)
		a.PutInt("gen_ai.usage.prompt_tokens", 100)
		a.PutInt("gen_ai.usage.completion_tokens", 50)
	}
	vllmrequesttest.UniqueSpanIDs(td) // each call stands for new requests
	return td
}

// weighted reads what a flush says about n spans of sampledBatch.
type weighted struct {
	requests, inputTokens, outputTokens, goodput int64
	e2eCount                                     uint64
	e2eSum                                       float64
	e2eBucket                                    uint64 // the (1, 1.5] bucket of vLLM's request list holds 1.5
	ttftMin, ttftMax                             float64
}

func readWeighted(t *testing.T, md pmetric.Metrics) weighted {
	t.Helper()
	e2e := onePoint(t, md, metricRequestDuration, nil).hist
	ttft := onePoint(t, md, metricTTFT, nil).hist
	var bucket uint64
	for i, b := range e2e.ExplicitBounds().AsRaw() {
		if b == 1.5 {
			bucket = e2e.BucketCounts().At(i)
		}
	}
	return weighted{
		requests:     onePoint(t, md, metricRequests, nil).num.IntValue(),
		inputTokens:  onePoint(t, md, metricTokens, map[string]any{"gen_ai.token.type": "input"}).num.IntValue(),
		outputTokens: onePoint(t, md, metricTokens, map[string]any{"gen_ai.token.type": "output"}).num.IntValue(),
		goodput:      onePoint(t, md, metricSLORequests, map[string]any{"vllm.slo.objective": "all", "vllm.slo.met": true}).num.IntValue(),
		e2eCount:     e2e.Count(),
		e2eSum:       e2e.Sum(),
		e2eBucket:    bucket,
		ttftMin:      ttft.Min(),
		ttftMax:      ttft.Max(),
	}
}

func TestAdjustedCounts(t *testing.T) {
	tests := []struct {
		name       string
		tracestate string
		spans      int
		requests   int64 // spans × adjusted count
	}{
		{"unsampled", "", 30, 30},
		{"th:0 is 100%", "ot=th:0", 30, 30},
		{"th:8 is 50%", "ot=th:8", 30, 60},
		{"th:c is 25%", "ot=th:c", 30, 120},
		{"th:e is 12.5%", "ot=th:e", 30, 240},
		{"th:4 is 75%: 300 spans are 400 requests", "ot=th:4", 300, 400},
		{"other vendors' entries are ignored", "vendor=x,ot=th:c", 30, 120},
		{"rv at the threshold is consistent", "ot=rv:c0000000000000;th:c", 30, 120},
		{"rv below the threshold: inconsistent, counted unsampled", "ot=rv:abcdef01234567;th:c", 30, 30},
		{"the largest threshold, consistent with the randomness", "ot=th:ffffffffffffff", 1, 1 << 56},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, seedSLOConfig())
			require.NoError(t, h.c.ConsumeTraces(context.Background(), sampledBatch(tt.spans, "vllm", tt.tracestate)))
			got := readWeighted(t, h.flush(t, time.Second))
			assert.Equal(t, weighted{
				requests: tt.requests, inputTokens: 100 * tt.requests, outputTokens: 50 * tt.requests, goodput: tt.requests,
				e2eCount: uint64(tt.requests), e2eSum: 1.5 * float64(tt.requests), e2eBucket: uint64(tt.requests),
				ttftMin: 0.1, ttftMax: 0.1,
			}, roundSum(got), "every instrument counts what the spans stand for")
		})
	}
}

// roundSum rounds the histogram sum to 1e-9, which float accumulation of fractional weights needs.
func roundSum(w weighted) weighted {
	w.e2eSum = math.Round(w.e2eSum*1e9) / 1e9
	return w
}

func TestAdjustedCountsWithoutThreshold(t *testing.T) {
	tel := componenttest.NewTelemetry()
	t.Cleanup(func() { require.NoError(t, tel.Shutdown(context.Background())) })
	cfg := seedSLOConfig()
	cfg.Sampling = SamplingConfig{Ratio: 0.5, ServiceRatios: map[string]float64{"vllm-sdk": 0.1}}
	sink := new(consumertest.MetricsSink)
	c, err := newConnector(metadatatest.NewSettings(tel), cfg, sink, clockwork.NewFakeClockAt(t0))
	require.NoError(t, err)
	for _, td := range []ptrace.Traces{
		sampledBatch(10, "vllm-sdk", ""),                   // the service's ratio: 10 × 10
		sampledBatch(10, "vllm-other", ""),                 // the default ratio: 10 × 2
		sampledBatch(10, "vllm-sdk", "ot=th:c"),            // a threshold wins over the configured ratio: 10 × 4
		sampledBatch(10, "vllm-sdk", "ot=th:zz"),           // malformed: the service's ratio, counted
		sampledBatch(10, "vllm-other", "not a=tracestate"), // malformed W3C: the default ratio, counted
	} {
		require.NoError(t, c.ConsumeTraces(context.Background(), td))
	}
	require.NoError(t, c.Shutdown(context.Background()))
	md := allPoints(sink)
	byService := map[string]int64{}
	for _, p := range pointsWithResource(md, metricRequests) {
		byService[p.service] += p.value
	}
	assert.Equal(t, map[string]int64{"vllm-sdk": 100 + 40 + 100, "vllm-other": 20 + 20}, byService)
	metadatatest.AssertEqualConnectorVllmTracestateMalformed(t, tel, []metricdata.DataPoint[int64]{{Value: 20}}, metricdatatest.IgnoreTimestamp())
}

// TestInconsistentThresholdsAreMalformed: a threshold above the span's randomness (the trace id's last 56 bits,
// or rv) could not have come from a consistent sampler; such a span counts as unsampled, as for a tracestate that
// does not parse, and is counted in telemetry. One th:ffffffffffffff span used to count as 2^56 requests.
func TestInconsistentThresholdsAreMalformed(t *testing.T) {
	tel := componenttest.NewTelemetry()
	t.Cleanup(func() { require.NoError(t, tel.Shutdown(context.Background())) })
	cfg := seedSLOConfig()
	cfg.Sampling.Ratio = 0.5
	sink := new(consumertest.MetricsSink)
	c, err := newConnector(metadatatest.NewSettings(tel), cfg, sink, clockwork.NewFakeClockAt(t0))
	require.NoError(t, err)
	td := sampledBatch(5, "vllm", "")
	spans := td.ResourceSpans().At(0).ScopeSpans().At(0).Spans()
	for i, tc := range []struct {
		traceID pcommon.TraceID
		state   string
	}{
		{pcommon.TraceID{1, 2, 3, 4, 5, 6, 7, 8, 9, 0x12, 0x34}, "ot=th:ffffffffffffff"},               // randomness 0x1234…: inconsistent, 2
		{pcommon.TraceID{1, 9: 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, "ot=th:8"},                   // just below 50%: inconsistent, 2
		{pcommon.TraceID{1, 9: 0x80}, "ot=th:8"},                                                       // exactly at it: consistent, 2
		{pcommon.TraceID{1}, "ot=rv:f0000000000000;th:f"},                                              // rv wins over the trace id: 16
		{pcommon.TraceID{1, 9: 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, "ot=rv:00000000000000;th:c"}, // rv below: inconsistent, 2
	} {
		spans.At(i).SetTraceID(tc.traceID)
		spans.At(i).TraceState().FromRaw(tc.state)
	}
	require.NoError(t, c.ConsumeTraces(context.Background(), td))
	require.NoError(t, c.Shutdown(context.Background()))
	assert.Equal(t, int64(2+2+2+16+2), onePoint(t, allPoints(sink), metricRequests, nil).num.IntValue())
	metadatatest.AssertEqualConnectorVllmTracestateMalformed(t, tel, []metricdata.DataPoint[int64]{{Value: 3}}, metricdatatest.IgnoreTimestamp())
}

// TestCountsSaturate: whatever the weights, no counter or histogram count wraps or goes negative; it stops at
// histogram.MaxCount and what it could not take is counted. 200 spans of 2^56 requests each are 2^63.6 requests.
func TestCountsSaturate(t *testing.T) {
	for _, typ := range []string{HistogramExplicit, HistogramExponential} {
		t.Run(typ, func(t *testing.T) {
			tel := componenttest.NewTelemetry()
			t.Cleanup(func() { require.NoError(t, tel.Shutdown(context.Background())) })
			cfg := seedSLOConfig()
			cfg.Histograms.Type = typ
			sink := new(consumertest.MetricsSink)
			c, err := newConnector(metadatatest.NewSettings(tel), cfg, sink, clockwork.NewFakeClockAt(t0))
			require.NoError(t, err)
			for range 2 {
				require.NoError(t, c.ConsumeTraces(context.Background(), sampledBatch(100, "vllm", "ot=th:ffffffffffffff")))
			}
			require.NoError(t, c.Shutdown(context.Background()))
			md := allPoints(sink)
			const maxInt = int64(1<<63 - 1024)
			assert.Equal(t, maxInt, onePoint(t, md, metricRequests, nil).num.IntValue())
			assert.Equal(t, maxInt, onePoint(t, md, metricTokens, map[string]any{"gen_ai.token.type": "input"}).num.IntValue())
			assert.Equal(t, maxInt, onePoint(t, md, metricSLORequests, map[string]any{"vllm.slo.objective": "all", "vllm.slo.met": true}).num.IntValue())
			// 127 spans fit (127 × 2^56 ≤ 2^63 − 1024), the 128th does not
			want := uint64(127) << 56
			if typ == HistogramExplicit {
				e2e := onePoint(t, md, metricRequestDuration, nil).hist
				assert.Equal(t, want, e2e.Count())
				var buckets uint64
				for _, n := range e2e.BucketCounts().AsRaw() {
					buckets += n
				}
				assert.Equal(t, want, buckets)
				assert.InDelta(t, 1.5*float64(want), e2e.Sum(), 1e6)
			} else {
				e2e := onePoint(t, md, metricRequestDuration, nil).exp
				assert.Equal(t, want, e2e.Count())
				assert.InDelta(t, 1.5*float64(want), e2e.Sum(), 1e6)
			}
			// per span past saturation: requests, 2 token counters, 5 SLO counters (3 objectives and all, met)
			// … and each histogram it has a value for; at least the 73 spans over the limit times one value
			var saturated int64
			rm, err := tel.GetMetric("otelcol_connector_vllm_values_saturated")
			require.NoError(t, err)
			for _, dp := range rm.Data.(metricdata.Sum[int64]).DataPoints {
				saturated += dp.Value
			}
			assert.Greater(t, saturated, int64(73))
		})
	}
}

func TestThresholdsDifferWithinOneResource(t *testing.T) {
	h := newHarness(t, seedSLOConfig())
	td := sampledBatch(4, "vllm", "")
	spans := td.ResourceSpans().At(0).ScopeSpans().At(0).Spans()
	for i, state := range []string{"ot=th:8", "ot=th:e", "", "ot=th:8"} { // 2 + 8 + 1 + 2
		spans.At(i).TraceState().FromRaw(state)
	}
	require.NoError(t, h.c.ConsumeTraces(context.Background(), td))
	md := h.flush(t, time.Second)
	assert.Equal(t, int64(13), onePoint(t, md, metricRequests, nil).num.IntValue())
	e2e := onePoint(t, md, metricRequestDuration, nil).hist
	assert.Equal(t, uint64(13), e2e.Count())
	assert.InDelta(t, 13*1.5, e2e.Sum(), 1e-9)
}

func TestExemplarsOfSampledSpansPointAtThem(t *testing.T) {
	cfg := seedSLOConfig()
	cfg.Exemplars.Enabled = true
	h := newHarness(t, cfg)
	td := sampledBatch(3, "vllm", "ot=th:e")
	require.NoError(t, h.c.ConsumeTraces(context.Background(), td))
	e2e := onePoint(t, h.flush(t, time.Second), metricRequestDuration, nil).hist
	require.Equal(t, 3, e2e.Exemplars().Len(), "one exemplar per real span, not per adjusted count")
	spans := td.ResourceSpans().At(0).ScopeSpans().At(0).Spans()
	ids := map[pcommon.SpanID]bool{}
	for i := 0; i < spans.Len(); i++ {
		ids[spans.At(i).SpanID()] = true
	}
	for i := 0; i < e2e.Exemplars().Len(); i++ {
		assert.True(t, ids[e2e.Exemplars().At(i).SpanID()])
	}
}

func TestExponentialHistogramsAreWeighted(t *testing.T) {
	cfg := seedSLOConfig()
	cfg.Histograms.Type = HistogramExponential
	h := newHarness(t, cfg)
	require.NoError(t, h.c.ConsumeTraces(context.Background(), sampledBatch(300, "vllm", "ot=th:4")))
	p := onePoint(t, h.flush(t, time.Second), metricRequestDuration, nil).exp
	assert.Equal(t, uint64(400), p.Count())
	assert.InDelta(t, 600, p.Sum(), 1e-9)
}

type servicePoint struct {
	service string
	value   int64
}

func pointsWithResource(md pmetric.Metrics, name string) (out []servicePoint) {
	for i := 0; i < md.ResourceMetrics().Len(); i++ {
		rm := md.ResourceMetrics().At(i)
		service, _ := rm.Resource().Attributes().Get("service.name")
		one := pmetric.NewMetrics()
		rm.CopyTo(one.ResourceMetrics().AppendEmpty())
		for _, p := range points(one, name) {
			out = append(out, servicePoint{service: service.Str(), value: p.num.IntValue()})
		}
	}
	return out
}
