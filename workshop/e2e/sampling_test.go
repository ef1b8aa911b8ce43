package e2e

import (
	"context"
	"encoding/json"
	"math"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/open-telemetry/opentelemetry-collector-contrib/pkg/sampling"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/connector/connectortest"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/otelcol-vllm/otelcol-vllm/connector/vllmconnector"
	"github.com/otelcol-vllm/otelcol-vllm/internal/vllmrequest/vllmrequesttest"
	"github.com/otelcol-vllm/otelcol-vllm/workshop/testkit/otlpsink"
)

// vllmgen's summary under head sampling: what the sent spans stand for, per model.
type adjustedStat struct {
	Count      float64 `json:"count"`
	SumSeconds float64 `json:"sum_seconds"`
}

type adjustedReport struct {
	Spans            float64      `json:"spans"`
	PromptTokens     float64      `json:"prompt_tokens"`
	CompletionTokens float64      `json:"completion_tokens"`
	E2E              adjustedStat `json:"e2e"`
	SLO              map[string]struct {
		Met      float64 `json:"met"`
		Violated float64 `json:"violated"`
	} `json:"slo"`
}

type sampledReport struct {
	report
	Adjusted *adjustedReport `json:"adjusted"`
}

type sampledSummary struct {
	Total    sampledReport            `json:"total"`
	Models   map[string]sampledReport `json:"models"`
	Sampling *struct {
		AdjustedCount  float64 `json:"adjusted_count"`
		SentSpans      int64   `json:"sent_spans"`
		UnsampledSpans int64   `json:"unsampled_spans"`
	} `json:"sampling"`
	SLOViolators *struct {
		Spans     int64    `json:"spans"`
		SpanIDs   []string `json:"span_ids"`
		Truncated bool     `json:"truncated"`
	} `json:"slo_violators"`
}

// sampledCollector runs the distribution on testdata/sampled.yaml, its metrics to a cumulative sink and its
// sampled traces to a trace sink.
func sampledCollector(t *testing.T, ratio string) (*collector, *otlpsink.Sink, *otlpsink.Sink) {
	t.Helper()
	metrics, traces := &otlpsink.Sink{}, &otlpsink.Sink{}
	c := startCollector(t, "sampled", []string{filepath.Join(workshopRoot(t), "e2e", "testdata", "sampled.yaml")}, map[string]string{
		"E2E_METRICS_SINK_ENDPOINT": otlpsink.StartGRPC(t, metrics), "E2E_TRACE_SINK_ENDPOINT": otlpsink.StartGRPC(t, traces),
		"E2E_SAMPLING_RATIO": ratio,
	})
	return c, metrics, traces
}

func sendSampled(t *testing.T, c *collector, count int, extra ...string) sampledSummary {
	t.Helper()
	args := append([]string{
		"--otlp-endpoint=" + c.otlpGRPC, "--otlp-protocol=grpc", "--shape=v1", "--count=" + strconv.Itoa(count), "--seed=21",
		"--models=llama-8b,qwen-7b", "--resource=service.instance.id=vllm-0", "--batch=200", "--summary=json",
	}, sloFlags...)
	out := run(t, 3*time.Minute, "", vllmgen(t), append(args, extra...)...)
	var s sampledSummary
	require.NoError(t, json.Unmarshal(out, &s), "vllmgen summary: %s", out)
	require.Zero(t, s.Total.FailedSpans)
	return s
}

// waitTotal waits until the metric's total over the matching series reaches want (within slack) or the timeout.
func waitTotal(t *testing.T, sink *otlpsink.Sink, metric string, match map[string]any, want, slack float64) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		got, _, _ := sink.Total(metric, match)
		if got >= want-slack || time.Now().After(deadline) {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestHeadSampledMetrics sends 20,000 requests head-sampled at 10% at the source, once with OTEP 235 thresholds in
// the tracestate and once without (as vLLM's Python SDK sends them, the ratio then given to the connector): every
// metric must equal what the sent spans stand for, as vllmgen computes it from the same spans.
func TestHeadSampledMetrics(t *testing.T) {
	for _, tt := range []struct {
		name, mode, collectorRatio string
	}{
		{"thresholds in the tracestate", "threshold", "1"},
		{"no threshold, ratio configured", "none", "0.1"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, sink, _ := sampledCollector(t, tt.collectorRatio)
			s := sendSampled(t, c, 20000, "--sample-ratio=0.1", "--sample-tracestate="+tt.mode)
			require.NotNil(t, s.Sampling)
			assert.InDelta(t, 0.10, float64(s.Sampling.SentSpans)/20000, 0.015, "10%% of the requests sent as spans")
			require.NotNil(t, s.Total.Adjusted)
			waitTotal(t, sink, "vllm.requests", nil, s.Total.Adjusted.Spans, 4)

			for model, r := range s.Models {
				require.NotNil(t, r.Adjusted, model)
				a := r.Adjusted
				m := map[string]any{"gen_ai.request.model": model}
				// The connector rounds each series' exact weight once when it writes it: a model's total is within
				// half a request of its exact adjusted count per series it has (one per operation).
				check := func(what string, got float64, series int, want float64) {
					t.Helper()
					assert.LessOrEqual(t, math.Abs(got-want), 0.5*float64(series)+1e-9,
						"%s of %s: got %v, the sent spans stand for %v (%d series)", what, model, got, want, series)
				}
				got, _, n := sink.Total("vllm.requests", m)
				check("requests", got, n, a.Spans)
				got, _, n = sink.Total("vllm.tokens", map[string]any{"gen_ai.request.model": model, "gen_ai.token.type": "input"})
				check("input tokens", got, n, a.PromptTokens)
				got, _, n = sink.Total("vllm.tokens", map[string]any{"gen_ai.request.model": model, "gen_ai.token.type": "output"})
				check("output tokens", got, n, a.CompletionTokens)
				count, sum, n := sink.Total("gen_ai.server.request.duration", m)
				check("E2E count", count, n, a.E2E.Count)
				assert.InDelta(t, a.E2E.SumSeconds, sum, 1e-6*a.E2E.SumSeconds, "E2E sum of %s = Σ value × adjusted count", model)
				for _, met := range []bool{true, false} {
					got, _, n := sink.Total("vllm.slo.requests", map[string]any{"gen_ai.request.model": model, "vllm.slo.objective": "all", "vllm.slo.met": met})
					want := a.SLO["all"].Met
					if !met {
						want = a.SLO["all"].Violated
					}
					check("goodput (all met="+strconv.FormatBool(met)+")", got, n, want)
				}
			}
		})
	}
}

// TestSLOAwareSampling sends 20,000 unsampled requests through the documented pipeline: the metrics equal the
// unsampled totals exactly, the trace sink receives every SLO violator and 10% ± 1.5% of the rest, and a vllm
// connector over the sampled stream alone estimates the request total within 5%.
func TestSLOAwareSampling(t *testing.T) {
	c, sink, traces := sampledCollector(t, "1")
	s := sendSampled(t, c, 20000)
	total := int(s.Total.Spans) // 20,000 requests, n > 1 ones as several spans
	require.GreaterOrEqual(t, total, 20000)
	require.NotNil(t, s.SLOViolators)
	require.False(t, s.SLOViolators.Truncated)
	require.Len(t, s.SLOViolators.SpanIDs, int(s.SLOViolators.Spans))
	require.Positive(t, s.SLOViolators.Spans)

	// the metrics see every span: exact
	waitTotal(t, sink, "vllm.requests", nil, float64(total), 0)
	for model, r := range s.Models {
		m := map[string]any{"gen_ai.request.model": model}
		got, _, _ := sink.Total("vllm.requests", m)
		assert.Equal(t, float64(r.Spans), got, "requests of %s", model)
		got, _, _ = sink.Total("vllm.tokens", map[string]any{"gen_ai.request.model": model, "gen_ai.token.type": "output"})
		assert.Equal(t, float64(r.CompletionTokens), got, "output tokens of %s", model)
		for objective, o := range r.SLO {
			met, _, _ := sink.Total("vllm.slo.requests", map[string]any{"gen_ai.request.model": model, "vllm.slo.objective": objective, "vllm.slo.met": true})
			violated, _, _ := sink.Total("vllm.slo.requests", map[string]any{"gen_ai.request.model": model, "vllm.slo.objective": objective, "vllm.slo.met": false})
			assert.Equal(t, [2]float64{float64(o.Met), float64(o.Violated)}, [2]float64{met, violated}, "%s %s met/violated", model, objective)
		}
	}

	// the trace branch: every violator, 10% of the others
	violators := map[string]bool{}
	for _, id := range s.SLOViolators.SpanIDs {
		violators[id] = true
	}
	others := total - len(violators)
	expect := len(violators) + others/10
	require.Eventually(t, func() bool { return traces.SpanCount() >= expect*9/10 }, 60*time.Second, 200*time.Millisecond)
	time.Sleep(2 * time.Second) // the last batch
	keptViolators, keptOthers := 0, 0
	var estimate float64
	all := traces.TraceRequests()
	for _, td := range all {
		vllmrequesttest.ForEachSpan(td, func(sp ptrace.Span) {
			ts, err := sampling.NewW3CTraceState(sp.TraceState().AsRaw())
			require.NoError(t, err)
			estimate += ts.OTelValue().AdjustedCount()
			if violators[sp.SpanID().String()] {
				keptViolators++
				assert.Equal(t, 1.0, ts.OTelValue().AdjustedCount(), "a violator kept at 100%% says so: %q", sp.TraceState().AsRaw())
			} else {
				keptOthers++
			}
		})
	}
	assert.Equal(t, len(violators), keptViolators, "every SLO violator reaches the trace backend")
	assert.InDelta(t, 0.10, float64(keptOthers)/float64(others), 0.015, "the rest is sampled at 10%%")
	assert.InDelta(t, float64(total), estimate, 0.05*float64(total), "the sampled stream's adjusted counts estimate the total")

	// a second connector that sees only the sampled stream estimates the total from the thresholds
	f := vllmconnector.NewFactory()
	downstream := new(consumertest.MetricsSink)
	conn, err := f.CreateTracesToMetrics(context.Background(), connectortest.NewNopSettings(f.Type()), f.CreateDefaultConfig(), downstream)
	require.NoError(t, err)
	require.NoError(t, conn.Start(context.Background(), componenttest.NewNopHost()))
	for _, td := range all {
		require.NoError(t, conn.ConsumeTraces(context.Background(), td))
	}
	require.NoError(t, conn.Shutdown(context.Background()))
	requests := vllmrequesttest.SumTotal(downstream.AllMetrics(), "vllm.requests")
	assert.InDelta(t, float64(total), float64(requests), 0.05*float64(total), "downstream estimate of the request total")
}
