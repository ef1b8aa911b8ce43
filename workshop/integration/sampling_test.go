package integration_test

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/open-telemetry/opentelemetry-collector-contrib/pkg/sampling"
	"github.com/open-telemetry/opentelemetry-collector-contrib/processor/probabilisticsamplerprocessor"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/connector/connectortest"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/processor/processortest"

	"github.com/otelcol-vllm/otelcol-vllm/connector/vllmconnector"
	"github.com/otelcol-vllm/otelcol-vllm/internal/vllmrequest"
	"github.com/otelcol-vllm/otelcol-vllm/internal/vllmrequest/vllmrequesttest"
	"github.com/otelcol-vllm/otelcol-vllm/processor/vllmprocessor"
)

// TestSLOAwareSampling runs the documented pipeline in process: the vllm processor marks the requests that broke
// the SLO with sampling.priority, contrib's probabilistic_sampler (mode proportional, 10%) keeps all of them and
// 10% of the rest, and the thresholds it writes let a vllm connector over the sampled spans estimate the total.
func TestSLOAwareSampling(t *testing.T) {
	const total = 20000
	td := vllmrequesttest.V1Batch(total, 4)
	rng := rand.New(rand.NewPCG(1, 2))
	vllmrequesttest.ForEachSpan(td, func(s ptrace.Span) {
		var id pcommon.TraceID
		for i := range id {
			id[i] = byte(rng.UintN(256)) // W3C random trace ids: the sampler's randomness
		}
		s.SetTraceID(id)
	})

	// the vllm processor, with seed 003's objectives and sampling_priority
	pf := vllmprocessor.NewFactory()
	pcfg := pf.CreateDefaultConfig().(*vllmprocessor.Config)
	ttft, tpot, e2e := 200*time.Millisecond, 50*time.Millisecond, 5*time.Second
	pcfg.Request.SLO = vllmrequest.SLOConfig{TTFT: &ttft, TPOT: &tpot, E2E: &e2e}
	pcfg.SamplingPriority = true
	marked := new(consumertest.TracesSink)
	proc, err := pf.CreateTraces(context.Background(), processortest.NewNopSettings(pf.Type()), pcfg, marked)
	require.NoError(t, err)
	require.NoError(t, proc.ConsumeTraces(context.Background(), td))
	enriched := marked.AllTraces()[0]
	violators := map[pcommon.SpanID]bool{}
	vllmrequesttest.ForEachSpan(enriched, func(s ptrace.Span) {
		if met, _ := s.Attributes().Get(vllmprocessor.AttrSLOMet); !met.Bool() {
			violators[s.SpanID()] = true
			p, ok := s.Attributes().Get(vllmprocessor.AttrSamplingPriority)
			require.True(t, ok, "a violator carries sampling.priority")
			require.Equal(t, int64(1), p.Int())
		} else {
			_, ok := s.Attributes().Get(vllmprocessor.AttrSamplingPriority)
			require.False(t, ok, "a request within the SLO has no sampling.priority")
		}
	})
	require.Greater(t, len(violators), total/10, "the batch has violators to keep")
	require.Less(t, len(violators), total*9/10)

	// contrib's probabilistic_sampler, as examples/sampled-traces.yaml configures it
	sf := probabilisticsamplerprocessor.NewFactory()
	scfg := sf.CreateDefaultConfig().(*probabilisticsamplerprocessor.Config)
	scfg.Mode = probabilisticsamplerprocessor.Proportional
	scfg.SamplingPercentage = 10
	kept := new(consumertest.TracesSink)
	sampler, err := sf.CreateTraces(context.Background(), processortest.NewNopSettings(sf.Type()), scfg, kept)
	require.NoError(t, err)
	require.NoError(t, sampler.Start(context.Background(), componenttest.NewNopHost()))
	require.NoError(t, sampler.ConsumeTraces(context.Background(), enriched))

	keptViolators, keptOthers := 0, 0
	var estimate float64
	for _, out := range kept.AllTraces() {
		vllmrequesttest.ForEachSpan(out, func(s ptrace.Span) {
			ts, err := sampling.NewW3CTraceState(s.TraceState().AsRaw())
			require.NoError(t, err)
			count := ts.OTelValue().AdjustedCount()
			estimate += count
			if violators[s.SpanID()] {
				keptViolators++
				// kept at 100%: a 10% threshold here would make every downstream counter count it tenfold
				assert.Equal(t, 1.0, count, "violator's tracestate %q", s.TraceState().AsRaw())
			} else {
				keptOthers++
				assert.InDelta(t, 10, count, 0.01, "tracestate %q", s.TraceState().AsRaw())
			}
		})
	}
	assert.Equal(t, len(violators), keptViolators, "every violator is kept")
	others := total - len(violators)
	assert.InDelta(t, 0.10, float64(keptOthers)/float64(others), 0.015, "10%% ± 1.5%% of the rest")
	assert.InDelta(t, total, estimate, total*0.05, "the sampled stream's adjusted counts add up to the total")

	// a vllm connector downstream of the sampler honours the thresholds: its request total estimates the real one
	cf := vllmconnector.NewFactory()
	metrics := new(consumertest.MetricsSink)
	conn, err := cf.CreateTracesToMetrics(context.Background(), connectortest.NewNopSettings(cf.Type()), cf.CreateDefaultConfig(), metrics)
	require.NoError(t, err)
	require.NoError(t, conn.Start(context.Background(), componenttest.NewNopHost()))
	for _, out := range kept.AllTraces() {
		require.NoError(t, conn.ConsumeTraces(context.Background(), out))
	}
	require.NoError(t, conn.Shutdown(context.Background()))
	requests := vllmrequesttest.SumTotal(metrics.AllMetrics(), "vllm.requests")
	assert.InDelta(t, total, requests, total*0.05, "downstream estimate of %d requests", total)
}
