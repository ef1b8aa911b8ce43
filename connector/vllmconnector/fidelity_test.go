package vllmconnector

import (
	"context"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/metric/metricdata/metricdatatest"

	"github.com/otelcol-vllm/otelcol-vllm/connector/vllmconnector/internal/metadatatest"
)

// TestOperationPerAPI checks that each vLLM API's requests form their own series, that non-generative ones
// carry no TTFT, TPOT, decode or output tokens, and that an unknown request id is counted.
func TestOperationPerAPI(t *testing.T) {
	tel := componenttest.NewTelemetry()
	t.Cleanup(func() { require.NoError(t, tel.Shutdown(context.Background())) })
	cfg := seedSLOConfig()
	sink := new(consumertest.MetricsSink)
	c, err := newConnector(metadatatest.NewSettings(tel), cfg, sink, clockwork.NewFakeClockAt(t0))
	require.NoError(t, err)
	ids := map[string]string{
		"chatcmpl-1": "chat", "resp_1": "chat", "cmpl-1": "text_completion", "embd-1": "embeddings",
		"classify-1": "classify", "score-1": "score", "pooling-1": "pooling", "transcribe-1": "transcription",
		"translate-1": "translation", "newapi-1": "text_completion",
	}
	td := hostileBatch(len(ids), func(int) string { return "m" }, nil)
	spans := td.ResourceSpans().At(0).ScopeSpans().At(0).Spans()
	i := 0
	for id := range ids {
		spans.At(i).Attributes().PutStr("gen_ai.request.id", id)
		i++
	}
	require.NoError(t, c.ConsumeTraces(context.Background(), td))
	require.NoError(t, c.Shutdown(context.Background()))
	md := allPoints(sink)

	counts := map[string]int64{}
	for _, p := range points(md, metricRequests) {
		counts[p.attrs["gen_ai.operation.name"].(string)] += p.num.IntValue()
	}
	assert.Equal(t, map[string]int64{
		"chat": 2, "text_completion": 2, "embeddings": 1, "classify": 1, "score": 1, "pooling": 1,
		"transcription": 1, "translation": 1,
	}, counts)
	for _, op := range []string{"embeddings", "classify", "score", "pooling"} {
		match := map[string]any{"gen_ai.operation.name": op}
		for _, name := range []string{metricRequestDuration, metricQueue, metricPrefill, metricInference} {
			assert.Equal(t, uint64(1), onePoint(t, md, name, match).hist.Count(), "%s has %s", op, name)
		}
		assert.Equal(t, uint64(1), onePoint(t, md, metricRequestTokens, map[string]any{"gen_ai.operation.name": op, "gen_ai.token.type": "input"}).hist.Count())
		for _, name := range []string{metricTTFT, metricTPOT, metricDecode, metricDecodeThroughput} {
			for _, p := range points(md, name) {
				assert.NotEqual(t, op, p.attrs["gen_ai.operation.name"], "%s must not have %s", op, name)
			}
		}
		for _, p := range points(md, metricTokens) {
			if p.attrs["gen_ai.operation.name"] == op {
				assert.Equal(t, "input", p.attrs["gen_ai.token.type"], "%s has no output tokens", op)
			}
		}
	}
	metadatatest.AssertEqualConnectorVllmOperationsUnknown(t, tel, []metricdata.DataPoint[int64]{{Value: 1}}, metricdatatest.IgnoreTimestamp())
}

func TestModelLabels(t *testing.T) {
	h := newHarness(t, seedSLOConfig())
	h.consume(t, "v1_greedy", "v0")
	md := h.flush(t, time.Second)
	v1 := onePoint(t, md, metricRequests, map[string]any{"gen_ai.request.model": "Qwen/Qwen2.5-7B-Instruct"})
	assert.NotContains(t, v1.attrs, "gen_ai.response.model", "a V1 span names no response model")
	v0 := onePoint(t, md, metricRequests, map[string]any{"gen_ai.request.model": "mistralai/Mistral-7B-Instruct-v0.3"})
	assert.Equal(t, "mistralai/Mistral-7B-Instruct-v0.3", v0.attrs["gen_ai.response.model"], "V0's response model is kept")

	h = newHarness(t, seedSLOConfig())
	td := readFixture(t, "v1_greedy")
	td.ResourceSpans().At(0).Resource().Attributes().Remove("gen_ai.request.model")
	require.NoError(t, h.c.ConsumeTraces(context.Background(), td))
	p := onePoint(t, h.flush(t, time.Second), metricRequests, nil)
	assert.Equal(t, "unknown", p.attrs["gen_ai.request.model"], "model.default is the request model")
}

func TestErroredAndAbortedRequests(t *testing.T) {
	h := newHarness(t, seedSLOConfig())
	h.consume(t, "v1_aborted", "v1_newest_scope")
	md := h.flush(t, time.Second)
	errType := "vllm.v1.engine.exceptions.EngineDeadError"
	failed := map[string]any{"error.type": errType}
	assert.Equal(t, int64(1), onePoint(t, md, metricRequests, failed).num.IntValue())
	assert.InDelta(t, 1.8033, onePoint(t, md, metricRequestDuration, failed).hist.Sum(), 1e-12)
	assert.InDelta(t, 0.312, onePoint(t, md, metricTTFT, failed).hist.Sum(), 1e-12, "it has a TTFT, which is recorded")
	assert.InDelta(t, 1.441/36, onePoint(t, md, metricTPOT, failed).hist.Sum(), 1e-12)
	slo := func(objective string, met bool) int64 {
		return onePoint(t, md, metricSLORequests, map[string]any{"error.type": errType, "vllm.slo.objective": objective, "vllm.slo.met": met}).num.IntValue()
	}
	assert.Equal(t, int64(1), slo("all", false), "an errored request never counts as goodput")
	assert.Equal(t, int64(0), slo("all", true))
	assert.Equal(t, int64(1), slo("e2e", true), "per objective, its values are judged as they are")
	succeeded := 0
	for _, p := range points(md, metricRequests) {
		if _, ok := p.attrs["error.type"]; !ok {
			succeeded += int(p.num.IntValue())
		}
	}
	assert.Equal(t, 1, succeeded, "a request that succeeded has no error.type")

	// an abort without error status
	h = newHarness(t, seedSLOConfig())
	td := readFixture(t, "v1_aborted")
	span := td.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0)
	span.Status().SetCode(0)
	span.Events().RemoveIf(func(ptrace.SpanEvent) bool { return true })
	require.NoError(t, h.c.ConsumeTraces(context.Background(), td))
	assert.Equal(t, int64(1), onePoint(t, h.flush(t, time.Second), metricRequests, map[string]any{"error.type": "abort"}).num.IntValue())
}

func TestSingleTokenTPOT(t *testing.T) {
	for _, tt := range []struct {
		mode  string
		count uint64
	}{{SingleTokenTPOTOmit, 0}, {SingleTokenTPOTZero, 2}} {
		t.Run(tt.mode, func(t *testing.T) {
			cfg := seedSLOConfig()
			cfg.Histograms.SingleTokenTPOT = tt.mode
			h := newHarness(t, cfg)
			h.consume(t, "v1_one_token", "v1_embeddings") // 1 and 0 output tokens
			md := h.flush(t, time.Second)
			var count uint64
			var sum float64
			for _, p := range points(md, metricTPOT) {
				count += p.hist.Count()
				sum += p.hist.Sum()
				assert.Equal(t, p.hist.Count(), p.hist.BucketCounts().At(0), "0 is in the first bucket")
			}
			assert.Equal(t, tt.count, count, "vLLM observes 0 for every request of at most one output token")
			assert.Zero(t, sum)
		})
	}
}

func TestHistogramPresets(t *testing.T) {
	for _, tt := range []struct {
		preset string
		first  float64
		n      int
	}{{PresetVLLM, 0.3, len(requestBuckets)}, {PresetSemconv, 0.01, len(semconvRequestBuckets)}} {
		t.Run(tt.preset, func(t *testing.T) {
			cfg := seedSLOConfig()
			cfg.Histograms.Preset = tt.preset
			h := newHarness(t, cfg)
			h.consume(t, "v1_embeddings")
			md := h.flush(t, time.Second)
			p := onePoint(t, md, metricRequestDuration, nil).hist
			bounds := p.ExplicitBounds().AsRaw()
			assert.Equal(t, tt.first, bounds[0])
			assert.Contains(t, bounds, 5.0, "the SLO threshold is a bound in every preset")
			assert.Len(t, bounds, tt.n+boolToInt(!contains(tt.preset, 5.0)))
			if tt.preset == PresetSemconv {
				// the 70 ms embeddings request is resolved: it lands in (0.04, 0.08], not in vLLM's first bucket
				assert.Equal(t, uint64(1), p.BucketCounts().At(3))
			} else {
				assert.Equal(t, uint64(1), p.BucketCounts().At(0))
			}
		})
	}
}

func contains(preset string, v float64) bool {
	list := requestBuckets
	if preset == PresetSemconv {
		list = semconvRequestBuckets
	}
	for _, b := range list {
		if b == v {
			return true
		}
	}
	return false
}

func boolToInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
