package vllmconnector

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/open-telemetry/opentelemetry-collector-contrib/pkg/golden"
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
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/otelcol-vllm/otelcol-vllm/connector/vllmconnector/internal/metadata"
	"github.com/otelcol-vllm/otelcol-vllm/connector/vllmconnector/internal/metadatatest"
	"github.com/otelcol-vllm/otelcol-vllm/internal/vllmrequest"
	"github.com/otelcol-vllm/otelcol-vllm/internal/vllmrequest/vllmrequesttest"
)

var t0 = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

func readFixture(tb testing.TB, name string) ptrace.Traces {
	tb.Helper()
	td, err := golden.ReadTraces(filepath.Join("..", "..", "testdata", "spans", name+".yaml"))
	require.NoError(tb, err)
	return td
}

func seedSLOConfig() *Config {
	cfg := createDefaultConfig().(*Config)
	cfg.Request.SLO = vllmrequest.SLOConfig{TTFT: dur(200 * time.Millisecond), TPOT: dur(50 * time.Millisecond), E2E: dur(5 * time.Second)}
	return cfg
}

type harness struct {
	c     *vllmConnector
	sink  *consumertest.MetricsSink
	clock *clockwork.FakeClock
	// fixtures consumed already: consumed again, they stand for new requests, not a client's retry
	consumed map[string]bool
}

func newHarness(t testing.TB, cfg *Config) *harness {
	t.Helper()
	require.NoError(t, cfg.Validate())
	sink := new(consumertest.MetricsSink)
	clock := clockwork.NewFakeClockAt(t0)
	c, err := newConnector(connectortest.NewNopSettings(metadata.Type), cfg, sink, clock)
	require.NoError(t, err)
	return &harness{c: c, sink: sink, clock: clock, consumed: map[string]bool{}}
}

func (h *harness) consume(t testing.TB, fixtures ...string) {
	t.Helper()
	for _, f := range fixtures {
		td := readFixture(t, f)
		if h.consumed[f] {
			vllmrequesttest.UniqueSpanIDs(td)
		}
		h.consumed[f] = true
		require.NoError(t, h.c.ConsumeTraces(context.Background(), td))
	}
}

// flush advances the clock and flushes; it returns the metrics sent, or an empty Metrics when none were.
func (h *harness) flush(t testing.TB, after time.Duration) pmetric.Metrics {
	t.Helper()
	h.clock.Advance(after)
	before := len(h.sink.AllMetrics())
	h.c.flush(context.Background())
	if len(h.sink.AllMetrics()) == before {
		return pmetric.NewMetrics()
	}
	return h.sink.AllMetrics()[len(h.sink.AllMetrics())-1]
}

// point is one data point found by metric name and attributes.
type found struct {
	hist  pmetric.HistogramDataPoint
	exp   pmetric.ExponentialHistogramDataPoint
	num   pmetric.NumberDataPoint
	kind  pmetric.MetricType
	temp  pmetric.AggregationTemporality
	unit  string
	attrs map[string]any
}

// points returns every data point of the named metric, across resources, with its resource attributes.
func points(md pmetric.Metrics, name string) (out []found) {
	for i := 0; i < md.ResourceMetrics().Len(); i++ {
		sms := md.ResourceMetrics().At(i).ScopeMetrics()
		for j := 0; j < sms.Len(); j++ {
			ms := sms.At(j).Metrics()
			for k := 0; k < ms.Len(); k++ {
				m := ms.At(k)
				if m.Name() != name {
					continue
				}
				switch m.Type() {
				case pmetric.MetricTypeHistogram:
					for p := 0; p < m.Histogram().DataPoints().Len(); p++ {
						dp := m.Histogram().DataPoints().At(p)
						out = append(out, found{hist: dp, kind: m.Type(), temp: m.Histogram().AggregationTemporality(), unit: m.Unit(), attrs: dp.Attributes().AsRaw()})
					}
				case pmetric.MetricTypeExponentialHistogram:
					for p := 0; p < m.ExponentialHistogram().DataPoints().Len(); p++ {
						dp := m.ExponentialHistogram().DataPoints().At(p)
						out = append(out, found{exp: dp, kind: m.Type(), temp: m.ExponentialHistogram().AggregationTemporality(), unit: m.Unit(), attrs: dp.Attributes().AsRaw()})
					}
				case pmetric.MetricTypeSum:
					for p := 0; p < m.Sum().DataPoints().Len(); p++ {
						dp := m.Sum().DataPoints().At(p)
						out = append(out, found{num: dp, kind: m.Type(), temp: m.Sum().AggregationTemporality(), unit: m.Unit(), attrs: dp.Attributes().AsRaw()})
					}
				}
			}
		}
	}
	return out
}

func onePoint(t *testing.T, md pmetric.Metrics, name string, match map[string]any) found {
	t.Helper()
	var hits []found
	for _, p := range points(md, name) {
		ok := true
		for k, v := range match {
			ok = ok && p.attrs[k] == v
		}
		if ok {
			hits = append(hits, p)
		}
	}
	require.Len(t, hits, 1, "%s %v", name, match)
	return hits[0]
}

func metricNames(md pmetric.Metrics) map[string]bool {
	names := map[string]bool{}
	for i := 0; i < md.ResourceMetrics().Len(); i++ {
		ms := md.ResourceMetrics().At(i).ScopeMetrics().At(0).Metrics()
		for k := 0; k < ms.Len(); k++ {
			names[ms.At(k).Name()] = true
		}
	}
	return names
}

func TestConnectorValuesV1(t *testing.T) {
	h := newHarness(t, seedSLOConfig())
	h.consume(t, "v1_newest_scope")
	md := h.flush(t, 15*time.Second)
	require.Equal(t, 1, md.ResourceMetrics().Len())
	res := md.ResourceMetrics().At(0)
	assert.Equal(t, "vllm-server", res.Resource().Attributes().AsRaw()["service.name"])
	assert.Equal(t, metadata.ScopeName, res.ScopeMetrics().At(0).Scope().Name())

	labels := map[string]any{"gen_ai.provider.name": "vllm", "gen_ai.operation.name": "chat", "gen_ai.request.model": "unknown"}
	single := func(name string, want float64, unit string) {
		t.Helper()
		p := onePoint(t, md, name, nil)
		assert.Equal(t, labels, p.attrs, name)
		assert.Equal(t, unit, p.unit, name)
		assert.Equal(t, uint64(1), p.hist.Count(), name)
		assert.InDelta(t, want, p.hist.Sum(), 1e-12, name)
		assert.Equal(t, pmetric.AggregationTemporalityCumulative, p.temp)
		assert.Equal(t, pcommon.NewTimestampFromTime(t0), p.hist.StartTimestamp(), "start = first seen")
		assert.Equal(t, pcommon.NewTimestampFromTime(t0.Add(15*time.Second)), p.hist.Timestamp())
	}
	single(metricTTFT, 0.2463, "s")
	single(metricRequestDuration, 3.1874, "s")
	single(metricQueue, 0.0421, "s")
	single(metricPrefill, 0.1738, "s")
	single(metricDecode, 2.9102, "s")
	single(metricInference, 3.084, "s")
	single(metricTPOT, 2.9102/255, "s")
	single(metricDecodeThroughput, 255/2.9102, "{token}/s")
	for _, absent := range []string{metricScheduler, metricModelForward, metricModelExecute} {
		assert.False(t, metricNames(md)[absent], "%s is V0-only", absent)
	}

	// TTFT 0.2463 falls in the (0.2, 0.25] bucket; 0.2 is the inserted SLO bound.
	ttft := onePoint(t, md, metricTTFT, nil).hist
	bounds := ttft.ExplicitBounds().AsRaw()
	require.Contains(t, bounds, 0.2)
	for i, b := range bounds {
		want := uint64(0)
		if b == 0.25 {
			want = 1
		}
		assert.Equal(t, want, ttft.BucketCounts().At(i), "bucket le=%v", b)
	}

	prompt := onePoint(t, md, metricRequestTokens, map[string]any{"gen_ai.token.type": "input"})
	assert.InDelta(t, 1187, prompt.hist.Sum(), 0)
	completion := onePoint(t, md, metricRequestTokens, map[string]any{"gen_ai.token.type": "output"})
	assert.InDelta(t, 256, completion.hist.Sum(), 0)
	assert.Equal(t, int64(1187), onePoint(t, md, metricTokens, map[string]any{"gen_ai.token.type": "input"}).num.IntValue())
	assert.Equal(t, int64(256), onePoint(t, md, metricTokens, map[string]any{"gen_ai.token.type": "output"}).num.IntValue())
	requests := onePoint(t, md, metricRequests, nil)
	assert.Equal(t, int64(1), requests.num.IntValue())
	assert.Equal(t, "{request}", requests.unit)

	slo := func(objective string, met bool) int64 {
		return onePoint(t, md, metricSLORequests, map[string]any{"vllm.slo.objective": objective, "vllm.slo.met": met}).num.IntValue()
	}
	assert.Equal(t, [2]int64{0, 1}, [2]int64{slo("ttft", true), slo("ttft", false)}, "TTFT 246ms > 200ms")
	assert.Equal(t, [2]int64{1, 0}, [2]int64{slo("tpot", true), slo("tpot", false)})
	assert.Equal(t, [2]int64{1, 0}, [2]int64{slo("e2e", true), slo("e2e", false)})
	assert.Equal(t, [2]int64{0, 1}, [2]int64{slo("all", true), slo("all", false)})
	assert.Len(t, points(md, metricSLORequests), 8, "queue has no objective: 3 objectives + all, met and not met")
}

func TestConnectorValuesV0Detailed(t *testing.T) {
	h := newHarness(t, createDefaultConfig().(*Config))
	h.consume(t, "v0_detailed", "v0")
	md := h.flush(t, time.Second)
	llama := map[string]any{"gen_ai.request.model": "meta-llama/Meta-Llama-3.1-8B-Instruct"}
	mistral := map[string]any{"gen_ai.request.model": "mistralai/Mistral-7B-Instruct-v0.3"}
	sum := func(name string, match map[string]any) float64 { return onePoint(t, md, name, match).hist.Sum() }
	assert.InDelta(t, 0.0897-0.0153, sum(metricPrefill, llama), 1e-12, "derived prefill")
	assert.InDelta(t, 1.6422-0.0897, sum(metricDecode, llama), 1e-12, "derived decode")
	assert.InDelta(t, 1.6422-0.0153, sum(metricInference, llama), 1e-12, "derived inference")
	assert.InDelta(t, 0.0381, sum(metricScheduler, llama), 1e-12)
	assert.InDelta(t, 1.2107, sum(metricModelForward, llama), 1e-12)
	assert.InDelta(t, 1.4489, sum(metricModelExecute, llama), 1e-12)
	assert.InDelta(t, 1.5525/210, sum(metricTPOT, llama), 1e-12)
	assert.InDelta(t, 0.1, sum(metricTPOT, mistral), 1e-12)
	assert.InDelta(t, 0.0125, sum(metricScheduler, mistral), 1e-12)
	assert.Len(t, points(md, metricModelForward), 1, "only the detailed span has forward time")
	assert.Equal(t, "text_completion", onePoint(t, md, metricRequests, llama).attrs["gen_ai.operation.name"])
	assert.Equal(t, "chat", onePoint(t, md, metricRequests, mistral).attrs["gen_ai.operation.name"])
	assert.Empty(t, points(md, metricSLORequests), "no SLO configured")
}

func TestConnectorEdgeCases(t *testing.T) {
	qwen := map[string]any{"gen_ai.request.model": "Qwen/Qwen2.5-7B-Instruct"}
	tests := []struct {
		fixture string
		check   func(t *testing.T, md pmetric.Metrics)
	}{
		{"v1_n2", func(t *testing.T, md pmetric.Metrics) {
			assert.Equal(t, int64(2), onePoint(t, md, metricRequests, qwen).num.IntValue(), "n=2 gives two spans, each counted once")
			assert.Equal(t, int64(100), onePoint(t, md, metricTokens, map[string]any{"gen_ai.token.type": "input"}).num.IntValue())
			assert.Equal(t, int64(71), onePoint(t, md, metricTokens, map[string]any{"gen_ai.token.type": "output"}).num.IntValue())
			assert.InDelta(t, 0.025+0.95/39, onePoint(t, md, metricTPOT, qwen).hist.Sum(), 1e-12)
		}},
		{"v1_one_token", func(t *testing.T, md pmetric.Metrics) {
			assert.Empty(t, points(md, metricTPOT), "TPOT undefined for one output token")
			assert.Empty(t, points(md, metricDecodeThroughput))
			assert.Empty(t, points(md, metricCachedTokens), "no cached-token point for spans that do not say")
			assert.Equal(t, uint64(1), onePoint(t, md, metricDecode, qwen).hist.Count(), "decode 0 is a value")
			assert.Equal(t, int64(0), onePoint(t, md, metricSLORequests, map[string]any{"vllm.slo.objective": "tpot", "vllm.slo.met": false}).num.IntValue())
			assert.Equal(t, int64(1), onePoint(t, md, metricSLORequests, map[string]any{"vllm.slo.objective": "tpot", "vllm.slo.met": true}).num.IntValue(),
				"TPOT 0 meets the objective, as vLLM's serving benchmark counts it")
			assert.Equal(t, int64(1), onePoint(t, md, metricSLORequests, map[string]any{"vllm.slo.objective": "all", "vllm.slo.met": true}).num.IntValue(), "counts as met for all")
		}},
		{"v1_negative_queue", func(t *testing.T, md pmetric.Metrics) {
			assert.Empty(t, points(md, metricQueue), "negative queue rejected")
			assert.Empty(t, points(md, metricPrefill), "prefill beyond e2e rejected")
			assert.Empty(t, points(md, metricInference))
			assert.InDelta(t, 1.5, onePoint(t, md, metricDecode, qwen).hist.Sum(), 0)
			assert.Equal(t, int64(1), onePoint(t, md, metricRequests, qwen).num.IntValue(), "the request still counts")
		}},
		{"v1_nan", func(t *testing.T, md pmetric.Metrics) {
			assert.Empty(t, points(md, metricTTFT))
			assert.Equal(t, uint64(1), onePoint(t, md, metricRequestDuration, qwen).hist.Count())
			ttft := func(met bool) int64 {
				return onePoint(t, md, metricSLORequests, map[string]any{"vllm.slo.objective": "ttft", "vllm.slo.met": met}).num.IntValue()
			}
			assert.Equal(t, [2]int64{0, 0}, [2]int64{ttft(true), ttft(false)}, "a rejected TTFT is not evaluated")
			assert.Equal(t, int64(1), onePoint(t, md, metricSLORequests, map[string]any{"vllm.slo.objective": "all", "vllm.slo.met": true}).num.IntValue())
		}},
		{"v1_string_latency", func(t *testing.T, md pmetric.Metrics) {
			assert.Empty(t, points(md, metricRequestDuration))
			assert.Equal(t, int64(256), onePoint(t, md, metricTokens, map[string]any{"gen_ai.token.type": "output"}).num.IntValue(), "double-typed tokens accepted")
		}},
		{"v1_conventions_usage", func(t *testing.T, md pmetric.Metrics) {
			assert.Equal(t, int64(300), onePoint(t, md, metricTokens, map[string]any{"gen_ai.token.type": "input"}).num.IntValue(), "gen_ai.usage.input_tokens")
			assert.Equal(t, int64(1), onePoint(t, md, metricTokens, map[string]any{"gen_ai.token.type": "output"}).num.IntValue(), "gen_ai.usage.output_tokens")
			assert.Equal(t, int64(256), onePoint(t, md, metricCachedTokens, qwen).num.IntValue(), "gen_ai.usage.cache_read.input_tokens")
			assert.Equal(t, uint64(1), onePoint(t, md, metricRequestTokens, map[string]any{"gen_ai.token.type": "input"}).hist.Count())
			resource := md.ResourceMetrics().At(0).Resource().Attributes().AsRaw()
			assert.NotContains(t, resource, "vllm.process_kind", "a worker process' identity is no series identity")
			assert.NotContains(t, resource, "vllm.process_name")
		}},
		{"not_vllm", func(t *testing.T, md pmetric.Metrics) {
			assert.Equal(t, 0, md.DataPointCount(), "nothing is sent for spans that are not vLLM's")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.fixture, func(t *testing.T) {
			cfg := seedSLOConfig()
			cfg.Request.SLO.E2E = nil
			cfg.Request.SLO.E2E = dur(5 * time.Second)
			h := newHarness(t, cfg)
			h.consume(t, tt.fixture)
			tt.check(t, h.flush(t, time.Second))
		})
	}
}

func TestConnectorGolden(t *testing.T) {
	for _, fixture := range []string{"v1_newest_scope", "v1_legacy_scope", "v0", "v0_detailed", "v1_n2", "v1_one_token", "v1_negative_queue"} {
		t.Run(fixture, func(t *testing.T) {
			h := newHarness(t, seedSLOConfig())
			h.consume(t, fixture)
			got := h.flush(t, 15*time.Second)
			path := filepath.Join("testdata", "golden", fixture+".yaml")
			require.NoError(t, updateGolden(path, got))
			expected, err := golden.ReadMetrics(path)
			require.NoError(t, err)
			require.NoError(t, comparePMetrics(expected, got))
		})
	}
}

func TestCumulativeAccumulatesAcrossFlushes(t *testing.T) {
	h := newHarness(t, seedSLOConfig())
	h.consume(t, "v1_greedy")
	first := h.flush(t, 15*time.Second)
	h.consume(t, "v1_greedy", "v1_greedy")
	second := h.flush(t, 15*time.Second)
	third := h.flush(t, 15*time.Second) // no new spans: cumulative series are still sent
	for i, tc := range []struct {
		md    pmetric.Metrics
		count uint64
		ts    time.Time
	}{{first, 1, t0.Add(15 * time.Second)}, {second, 3, t0.Add(30 * time.Second)}, {third, 3, t0.Add(45 * time.Second)}} {
		p := onePoint(t, tc.md, metricRequestDuration, nil).hist
		assert.Equal(t, tc.count, p.Count(), "flush %d", i)
		assert.InDelta(t, 0.5*float64(tc.count), p.Sum(), 1e-12)
		assert.Equal(t, pcommon.NewTimestampFromTime(t0), p.StartTimestamp(), "start stays at first seen")
		assert.Equal(t, pcommon.NewTimestampFromTime(tc.ts), p.Timestamp())
		assert.Equal(t, int64(tc.count), onePoint(t, tc.md, metricRequests, nil).num.IntValue())
	}
}

func TestDeltaResetsEachFlush(t *testing.T) {
	cfg := seedSLOConfig()
	cfg.AggregationTemporality = TemporalityDelta
	h := newHarness(t, cfg)
	h.clock.Advance(5 * time.Second)
	h.consume(t, "v1_greedy", "v1_greedy")
	first := h.flush(t, 10*time.Second)
	h.consume(t, "v1_greedy")
	second := h.flush(t, 15*time.Second)
	third := h.flush(t, 15*time.Second)

	p1 := onePoint(t, first, metricRequestDuration, nil)
	assert.Equal(t, pmetric.AggregationTemporalityDelta, p1.temp)
	assert.Equal(t, uint64(2), p1.hist.Count())
	assert.Equal(t, pcommon.NewTimestampFromTime(t0.Add(5*time.Second)), p1.hist.StartTimestamp(), "first interval starts when the series appeared")
	p2 := onePoint(t, second, metricRequestDuration, nil)
	assert.Equal(t, uint64(1), p2.hist.Count())
	assert.Equal(t, pcommon.NewTimestampFromTime(t0.Add(15*time.Second)), p2.hist.StartTimestamp(), "next interval starts at the previous flush")
	assert.Equal(t, pcommon.NewTimestampFromTime(t0.Add(30*time.Second)), p2.hist.Timestamp())
	assert.Equal(t, int64(1), onePoint(t, second, metricRequests, nil).num.IntValue())
	assert.Equal(t, int64(21), onePoint(t, second, metricTokens, map[string]any{"gen_ai.token.type": "output"}).num.IntValue())
	assert.Equal(t, 0, third.DataPointCount(), "no requests, no delta points")
}

func TestExpiration(t *testing.T) {
	cfg := seedSLOConfig()
	cfg.MetricsExpiration = time.Minute
	h := newHarness(t, cfg)
	h.consume(t, "v1_greedy", "v0")
	require.Len(t, points(h.flush(t, 30*time.Second), metricRequests), 2)
	h.consume(t, "v0")
	md := h.flush(t, 45*time.Second) // greedy idle 75s > 1m: forgotten; v0 seen 45s ago: kept
	require.Len(t, points(md, metricRequests), 1)
	assert.Equal(t, "mistralai/Mistral-7B-Instruct-v0.3", points(md, metricRequests)[0].attrs["gen_ai.request.model"])
	assert.Equal(t, 1, h.c.seriesCount)
	assert.Len(t, h.c.resources, 1)
	assert.Equal(t, 0, h.flush(t, 2*time.Minute).DataPointCount())
	assert.Equal(t, 0, h.c.seriesCount)
	assert.Empty(t, h.c.resources)
}

func TestCardinalityLimitOverflow(t *testing.T) {
	tel := componenttest.NewTelemetry()
	t.Cleanup(func() { require.NoError(t, tel.Shutdown(context.Background())) })
	cfg := seedSLOConfig()
	cfg.CardinalityLimit = 2
	cfg.Dimensions = []Dimension{{Name: "tenant"}}
	sink := new(consumertest.MetricsSink)
	c, err := newConnector(connectortest.NewNopSettings(metadata.Type), cfg, sink, clockwork.NewFakeClockAt(t0))
	require.NoError(t, err)
	td := readFixture(t, "v1_greedy")
	tmpl := td.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0)
	spans := td.ResourceSpans().At(0).ScopeSpans().At(0).Spans()
	for _, tenant := range []string{"a", "b", "c", "d", "a", "c"} {
		s := spans.AppendEmpty()
		tmpl.CopyTo(s)
		s.Attributes().PutStr("tenant", tenant)
	}
	vllmrequesttest.UniqueSpanIDs(td) // copies of one span, standing for distinct requests
	require.NoError(t, c.ConsumeTraces(context.Background(), td))
	c.flush(context.Background())
	md := sink.AllMetrics()[0]
	byTenant := map[any]int64{}
	for _, p := range points(md, metricRequests) {
		if p.attrs[attrOverflow] == true {
			assert.Equal(t, map[string]any{attrOverflow: true}, p.attrs, "overflow series carries only the overflow flag")
			byTenant["overflow"] = p.num.IntValue()
			continue
		}
		byTenant[p.attrs["tenant"]] = p.num.IntValue()
	}
	// the template span (no tenant) and tenant a take the two series; b, c, d, c overflow.
	assert.Equal(t, map[any]int64{nil: 1, "a": 2, "overflow": 4}, byTenant)
	assert.Equal(t, 2, c.seriesCount)
	require.NoError(t, c.Shutdown(context.Background()))
}

func TestExemplarsKeepSlowest(t *testing.T) {
	cfg := createDefaultConfig().(*Config)
	cfg.Exemplars = ExemplarsConfig{Enabled: true, MaxPerDataPoint: 2}
	h := newHarness(t, cfg)
	td := readFixture(t, "v1_greedy")
	spans := td.ResourceSpans().At(0).ScopeSpans().At(0).Spans()
	tmpl := spans.At(0)
	for i, e2e := range []float64{0.9, 0.3, 1.7, 0.6} {
		s := spans.AppendEmpty()
		tmpl.CopyTo(s)
		s.SetSpanID(pcommon.SpanID{byte(i + 1)})
		s.Attributes().PutDouble(vllmrequest.AttrEndToEnd, e2e)
	}
	require.NoError(t, h.c.ConsumeTraces(context.Background(), td))
	md := h.flush(t, time.Second)
	ex := onePoint(t, md, metricRequestDuration, nil).hist.Exemplars()
	require.Equal(t, 2, ex.Len())
	got := map[float64]pcommon.SpanID{}
	for i := 0; i < ex.Len(); i++ {
		assert.Equal(t, tmpl.TraceID(), ex.At(i).TraceID())
		got[ex.At(i).DoubleValue()] = ex.At(i).SpanID()
	}
	assert.Equal(t, map[float64]pcommon.SpanID{0.9: {1}, 1.7: {3}}, got)
	assert.Equal(t, 0, onePoint(t, h.flush(t, time.Second), metricRequestDuration, nil).hist.Exemplars().Len(), "exemplars are sent once")
}

func TestExponentialHistograms(t *testing.T) {
	cfg := seedSLOConfig()
	cfg.Histograms.Type, cfg.Histograms.MaxSize = HistogramExponential, 20
	h := newHarness(t, cfg)
	h.consume(t, "v1_n2", "v1_greedy", "v1_one_token")
	md := h.flush(t, time.Second)
	chat := map[string]any{"gen_ai.operation.name": "chat"}
	p := onePoint(t, md, metricRequestDuration, chat)
	require.Equal(t, pmetric.MetricTypeExponentialHistogram, p.kind)
	assert.Equal(t, uint64(3), p.exp.Count())
	assert.InDelta(t, 0.9+1.1+0.5, p.exp.Sum(), 1e-12)
	assert.InDelta(t, 0.5, p.exp.Min(), 0)
	assert.InDelta(t, 1.1, p.exp.Max(), 0)
	assert.LessOrEqual(t, p.exp.Positive().BucketCounts().Len(), 20)
	var total uint64
	for _, c := range p.exp.Positive().BucketCounts().AsRaw() {
		total += c
	}
	assert.Equal(t, uint64(3), total+p.exp.ZeroCount())
	decode := onePoint(t, md, metricDecode, map[string]any{"gen_ai.operation.name": "text_completion"}).exp
	assert.Equal(t, uint64(1), decode.ZeroCount(), "the 1-token request's decode of 0 is in the zero bucket")
}

func TestResourceAttributesDefaultAndAll(t *testing.T) {
	h := newHarness(t, createDefaultConfig().(*Config))
	td := readFixture(t, "v1_newest_scope")
	second := td.ResourceSpans().AppendEmpty()
	td.ResourceSpans().At(0).CopyTo(second)
	second.Resource().Attributes().PutStr("vllm.process_id", "4712") // a second API-server process
	second.Resource().Attributes().PutStr("service.instance.id", "pod-a")
	third := td.ResourceSpans().AppendEmpty()
	second.CopyTo(third)
	third.Resource().Attributes().PutStr("vllm.process_id", "4713")
	vllmrequesttest.UniqueSpanIDs(td) // copies of one span, standing for distinct requests
	require.NoError(t, h.c.ConsumeTraces(context.Background(), td))
	md := h.flush(t, time.Second)
	require.Equal(t, 2, md.ResourceMetrics().Len(), "processes of one instance merge; instances stay apart")
	byInstance := map[any]int64{}
	for i := 0; i < md.ResourceMetrics().Len(); i++ {
		rm := md.ResourceMetrics().At(i)
		attrs := rm.Resource().Attributes().AsRaw()
		assert.NotContains(t, attrs, "vllm.process_id")
		for _, p := range points(pmetricFrom(rm), metricRequests) {
			byInstance[attrs["service.instance.id"]] = p.num.IntValue()
		}
	}
	assert.Equal(t, map[any]int64{nil: 1, "pod-a": 2}, byInstance)

	cfg := createDefaultConfig().(*Config)
	cfg.ResourceAttributes = []string{} // keep all
	h = newHarness(t, cfg)
	require.NoError(t, h.c.ConsumeTraces(context.Background(), td))
	assert.Equal(t, 3, h.flush(t, time.Second).ResourceMetrics().Len())
}

func pmetricFrom(rm pmetric.ResourceMetrics) pmetric.Metrics {
	md := pmetric.NewMetrics()
	rm.CopyTo(md.ResourceMetrics().AppendEmpty())
	return md
}

func TestResourceAllowListAndDimensions(t *testing.T) {
	cfg := createDefaultConfig().(*Config)
	cfg.ResourceAttributes = []string{"service.name"}
	cfg.Dimensions = []Dimension{{Name: "gen_ai.request.max_tokens"}, {Name: "tenant", Default: str("shared")}}
	h := newHarness(t, cfg)
	h.consume(t, "v1_newest_scope", "v1_n2") // two resources differing only in vllm.* and model attributes
	md := h.flush(t, time.Second)
	require.Equal(t, 1, md.ResourceMetrics().Len(), "resources with the same allow-listed attributes merge")
	assert.Equal(t, map[string]any{"service.name": "vllm-server"}, md.ResourceMetrics().At(0).Resource().Attributes().AsRaw())
	p := onePoint(t, md, metricRequests, map[string]any{"gen_ai.request.model": "Qwen/Qwen2.5-7B-Instruct"})
	assert.Equal(t, map[string]any{
		"gen_ai.provider.name": "vllm", "gen_ai.operation.name": "chat", "gen_ai.request.model": "Qwen/Qwen2.5-7B-Instruct",
		"gen_ai.request.max_tokens": "64", "tenant": "shared", // dimensions are labels: their string form
	}, p.attrs)
	assert.Equal(t, int64(2), p.num.IntValue())
}

func TestShutdownFlushesAndLogsConsumerErrors(t *testing.T) {
	core, logs := observer.New(zap.InfoLevel)
	set := connectortest.NewNopSettings(metadata.Type)
	set.Logger = zap.New(core)
	for _, next := range []consumer.Metrics{new(consumertest.MetricsSink), consumertest.NewErr(errors.New("backend down"))} {
		conn, err := NewFactory().CreateTracesToMetrics(context.Background(), set, seedSLOConfig(), next)
		require.NoError(t, err)
		require.NoError(t, conn.Start(context.Background(), componenttest.NewNopHost()))
		require.NoError(t, conn.ConsumeTraces(context.Background(), readFixture(t, "v1_greedy")))
		require.NoError(t, conn.Shutdown(context.Background()))
		require.NoError(t, conn.Shutdown(context.Background()), "Shutdown is idempotent")
		if sink, ok := next.(*consumertest.MetricsSink); ok {
			require.Len(t, sink.AllMetrics(), 1, "final flush on shutdown")
			assert.Equal(t, int64(1), onePoint(t, sink.AllMetrics()[0], metricRequests, nil).num.IntValue())
		}
	}
	errLogs := logs.FilterMessage("Failed to send vLLM metrics").All()
	require.Len(t, errLogs, 1)
	assert.Equal(t, "backend down", errLogs[0].ContextMap()["error"])
}

func TestFlushLoopUsesInterval(t *testing.T) {
	h := newHarness(t, seedSLOConfig())
	require.NoError(t, h.c.Start(context.Background(), componenttest.NewNopHost()))
	h.consume(t, "v1_greedy")
	require.NoError(t, h.clock.BlockUntilContext(context.Background(), 1))
	h.clock.Advance(15 * time.Second)
	require.Eventually(t, func() bool { return len(h.sink.AllMetrics()) == 1 }, 5*time.Second, time.Millisecond)
	require.NoError(t, h.c.Shutdown(context.Background()))
	assert.Len(t, h.sink.AllMetrics(), 2, "shutdown flushes once more")
}

func TestConnectorTelemetry(t *testing.T) {
	tel := componenttest.NewTelemetry()
	t.Cleanup(func() { require.NoError(t, tel.Shutdown(context.Background())) })
	cfg := seedSLOConfig()
	cfg.CardinalityLimit = 1
	conn, err := NewFactory().CreateTracesToMetrics(context.Background(), metadatatest.NewSettings(tel), cfg, consumertest.NewNop())
	require.NoError(t, err)
	for _, f := range []string{"v1_newest_scope", "v0", "v1_nan", "not_vllm"} {
		require.NoError(t, conn.ConsumeTraces(context.Background(), readFixture(t, f)))
	}
	require.NoError(t, conn.Shutdown(context.Background()))
	metadatatest.AssertEqualConnectorVllmSpansSeen(t, tel, []metricdata.DataPoint[int64]{{Value: 6}}, metricdatatest.IgnoreTimestamp())
	metadatatest.AssertEqualConnectorVllmSpansRecognized(t, tel, []metricdata.DataPoint[int64]{{Value: 3}}, metricdatatest.IgnoreTimestamp())
	metadatatest.AssertEqualConnectorVllmSeriesOverflow(t, tel, []metricdata.DataPoint[int64]{{Value: 2}}, metricdatatest.IgnoreTimestamp())
	metadatatest.AssertEqualConnectorVllmFieldsRejected(t, tel, []metricdata.DataPoint[int64]{{
		Value: 1, Attributes: attribute.NewSet(attribute.String("field", "ttft"), attribute.String("reason", "nan")),
	}}, metricdatatest.IgnoreTimestamp())
}
