package vllmstatusexporter

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// bucketOf is the index of the bucket (upper-inclusive, as Prometheus' le) that holds v.
func bucketOf(bounds []float64, v float64) int {
	i := 0
	for i < len(bounds) && v > bounds[i] {
		i++
	}
	return i
}

// exactQuantile is the q-quantile of sorted observations (the value at rank ceil(q·n)).
func exactQuantile(sorted []float64, q float64) float64 {
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(i, 0)]
}

func TestWindowPercentilesWithinOneBucket(t *testing.T) {
	t.Parallel()
	s := newStore(testConfig())
	rng := rand.New(rand.NewPCG(1, 2))
	in := &series{model: "llama", op: "chat", start: t0.Add(-time.Minute)}
	draw := func(n int) []float64 {
		var out []float64
		for range n {
			out = append(out, math.Exp(rng.NormFloat64()*0.9-1.5)) // lognormal, median 0.22 s
		}
		return out
	}
	// 500 requests before the window: in the baseline snapshot, not in the percentiles
	in.ttft = draw(500)
	in.requests = 500
	s.consume(in.metrics(t0), t0)
	s.takeSnapshot(t0)
	inWindow := draw(2000)
	in.ttft = append(in.ttft, inWindow...)
	in.requests += 2000
	now := t0.Add(time.Minute)
	s.consume(in.metrics(now), now)

	st := s.view(now, time.Minute)
	require.Len(t, st.Models, 1)
	got := st.Models[0].TTFT
	require.NotNil(t, got)
	assert.InDelta(t, 2000, got.Count, 0)
	slices.Sort(inWindow)
	sum := 0.0
	for _, v := range inWindow {
		sum += v
	}
	assert.InDelta(t, sum/2000, got.Mean, 1e-9, "the mean is exact: sum and count deltas")
	for _, c := range []struct {
		q   float64
		est float64
	}{{0.5, got.P50}, {0.95, got.P95}, {0.99, got.P99}} {
		exact := exactQuantile(inWindow, c.q)
		b := bucketOf(ttftBounds, exact)
		assert.Equal(t, b, bucketOf(ttftBounds, c.est), "p%g: estimate %g and exact %g in different buckets", c.q*100, c.est, exact)
		lower := 0.0
		if b > 0 {
			lower = ttftBounds[b-1]
		}
		assert.LessOrEqual(t, math.Abs(c.est-exact), ttftBounds[b]-lower, "p%g: error beyond the bucket width", c.q*100)
	}
}

func TestQuantileAsPrometheus(t *testing.T) {
	t.Parallel()
	// histogram_quantile(0.5, {le="1"} 10, {le="2"} 30, {le="+Inf"} 40) = 1 + (20-10)/20 = 1.5
	h := hist{bounds: []float64{1, 2}, counts: []float64{10, 20, 10}, count: 40}
	q, ok := quantile(0.5, h)
	require.True(t, ok)
	assert.InDelta(t, 1.5, q, 1e-12)
	// a rank in the first bucket interpolates from 0
	q, _ = quantile(0.1, h)
	assert.InDelta(t, 0.4, q, 1e-12)
	// a rank in +Inf answers the highest finite bound
	q, _ = quantile(0.99, h)
	assert.InDelta(t, 2.0, q, 1e-12)
	_, ok = quantile(0.5, hist{bounds: []float64{1}, counts: []float64{0, 0}})
	assert.False(t, ok, "no observation: no quantile")
}

func TestRatesTotalsAndErrors(t *testing.T) {
	t.Parallel()
	s := newStore(testConfig())
	in := &series{model: "qwen", op: "chat", start: t0}
	s.consume(in.metrics(t0), t0)
	s.takeSnapshot(t0)
	// 300 requests, 30 of them failed, 45,000 input and 6,000 output tokens, in one minute
	in.requests, in.errors = 300, map[string]float64{"abort": 20, "_OTHER": 10}
	in.tokensIn, in.tokensOut = 45000, 6000
	in.sloAll = [2]float64{240, 300}
	now := t0.Add(time.Minute)
	s.consume(in.metrics(now), now)
	s.takeSnapshot(now)

	m := s.view(now, time.Minute).Models[0]
	assert.Equal(t, "qwen", m.Model)
	assert.Equal(t, []string{"chat"}, m.Operations)
	assert.InDelta(t, 300, m.RequestsTotal, 0)
	assert.InDelta(t, 5, m.RequestsPerSecond, 1e-12)
	assert.InDelta(t, 750, m.Tokens.InputPerSecond, 1e-9)
	assert.InDelta(t, 100, m.Tokens.OutputPerSecond, 1e-9)
	require.NotNil(t, m.GoodputRatio)
	assert.InDelta(t, 0.8, *m.GoodputRatio, 1e-12)
	assert.InDelta(t, 30, m.Errors.Total, 0)
	require.NotNil(t, m.Errors.Ratio)
	assert.InDelta(t, 0.1, *m.Errors.Ratio, 1e-12)
	assert.Equal(t, []ErrorsByType{{Type: "_OTHER", Total: 10, Window: 10}, {Type: "abort", Total: 20, Window: 20}}, m.Errors.ByType)

	// the same cumulative values again: no new request, the rate over the next minute is 0, totals stay
	later := now.Add(time.Minute)
	s.consume(in.metrics(later), later)
	m = s.view(later, time.Minute).Models[0]
	assert.InDelta(t, 300, m.RequestsTotal, 0)
	assert.InDelta(t, 0, m.RequestsPerSecond, 0)
	assert.Nil(t, m.TTFT, "no observation in the window")

	// a restarted input series (new start time, smaller value) is all increment, as Prometheus' increase()
	in.start, in.requests, in.errors, in.tokensIn, in.tokensOut = later, 60, nil, 0, 0
	s.consume(in.metrics(later.Add(time.Second)), later.Add(time.Second))
	assert.InDelta(t, 360, s.view(later.Add(time.Second), time.Minute).Models[0].RequestsTotal, 0)
}

func TestRunningWaitingAndSpanCoverage(t *testing.T) {
	t.Parallel()
	s := newStore(testConfig())
	in := &series{model: "llama", op: "chat", start: t0}
	s.consume(in.metrics(t0), t0)
	// vLLM's counter counts since vLLM started: its first sample is only the baseline
	s.consume(counterMetrics(metricVLLMSuccess, 1000, "model_name", "llama", "finished_reason", "stop"), t0)
	s.takeSnapshot(t0)
	now := t0.Add(time.Minute)
	in.requests = 90
	s.consume(in.metrics(now), now)
	s.consume(counterMetrics(metricVLLMSuccess, 1100, "model_name", "llama", "finished_reason", "stop"), now)
	s.consume(gaugeMetrics(metricVLLMRunning, 7, "model_name", "llama"), now)
	s.consume(gaugeMetrics(metricVLLMWaiting, 3, "model_name", "llama"), now)
	m := s.view(now, time.Minute).Models[0]
	require.NotNil(t, m.Running)
	require.NotNil(t, m.Waiting)
	assert.InDelta(t, 7, *m.Running, 0)
	assert.InDelta(t, 3, *m.Waiting, 0)
	require.NotNil(t, m.SpanCoverage)
	assert.InDelta(t, 0.9, *m.SpanCoverage, 1e-12)

	// stale gauges disappear
	s.takeSnapshot(now.Add(6 * time.Minute))
	m = s.view(now.Add(6*time.Minute), time.Minute).Models[0]
	assert.Nil(t, m.Running)
}

func TestGPUs(t *testing.T) {
	t.Parallel()
	s := newStore(testConfig())
	gpu := []any{"hw.id", "GPU-1", "hw.model", "NVIDIA H100 80GB HBM3", "nvidia.gpu.index", 1, "k8s.pod.name", "vllm-0", "k8s.namespace.name", "llm"}
	s.consume(gaugeMetrics(metricGPUUtil, 0.75, append(gpu, "hw.gpu.task", "general")...), t0)
	s.consume(gaugeMetrics(metricGPUUtil, 0.10, append(gpu, "hw.gpu.task", "encoder")...), t0)
	s.consume(gaugeMetrics(metricGPUMemUsed, 40<<30, gpu...), t0)
	s.consume(gaugeMetrics(metricGPUMemLimit, 80<<30, gpu...), t0)
	s.consume(gaugeMetrics(metricGPUPower, 350, gpu...), t0)
	s.consume(gaugeMetrics(metricGPUTemp, 61, append(gpu, "hw.sensor_location", "gpu")...), t0)
	s.consume(gaugeMetrics(metricGPUTemp, 70, append(gpu, "hw.sensor_location", "memory")...), t0)
	s.consume(gaugeMetrics(metricGPUUtil, 0.2, "hw.id", "GPU-0", "nvidia.gpu.index", 0, "hw.model", "NVIDIA H100 80GB HBM3"), t0)
	g := s.view(t0, time.Minute).GPUs
	require.Len(t, g, 2)
	assert.Equal(t, "GPU-0", g[0].ID, "sorted by index")
	one := g[1]
	assert.Equal(t, int64(1), *one.Index)
	assert.Equal(t, "llm/vllm-0", one.Pod)
	assert.InDelta(t, 0.75, *one.Utilization, 0)
	assert.InDelta(t, 40<<30, *one.MemoryUsedBytes, 0)
	assert.InDelta(t, 80<<30, *one.MemoryTotalBytes, 0)
	assert.InDelta(t, 350, *one.PowerWatts, 0)
	assert.InDelta(t, 61, *one.TemperatureCelsius, 0)
	assert.Nil(t, one.SMActivity)
}

func TestAlertsFireAndClear(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	s := newStore(cfg)
	e := &statusExporter{cfg: cfg, store: s}
	waiting := func(v float64, now time.Time) {
		s.consume(gaugeMetrics(metricVLLMWaiting, v, "model_name", "llama"), now)
		e.tick(now)
	}
	waiting(8, t0)
	assert.Empty(t, s.view(t0, cfg.Window).Alerts, "pending, not firing, before `for`")
	waiting(8, t0.Add(59*time.Second))
	assert.Empty(t, s.view(t0.Add(59*time.Second), cfg.Window).Alerts)
	now := t0.Add(time.Minute)
	waiting(9, now)
	alerts := s.view(now, cfg.Window).Alerts
	require.Len(t, alerts, 1)
	assert.Equal(t, Alert{Rule: ruleQueue, Model: "llama", Severity: "warning", Value: 9, Threshold: 5, Since: t0,
		Message: "llama: 9 requests waiting (more than 5)"}, alerts[0])
	// the queue drains: cleared at once
	waiting(2, now.Add(5*time.Second))
	assert.Empty(t, s.view(now.Add(5*time.Second), cfg.Window).Alerts)
	// and pending again from the start when it comes back
	waiting(6, now.Add(10*time.Second))
	assert.Empty(t, s.view(now.Add(10*time.Second), cfg.Window).Alerts)

	// error share and goodput, over the 5-minute window, for 5 minutes
	in := &series{model: "qwen", op: "chat", start: t0}
	for i := 0; i <= 10; i++ {
		at := t0.Add(time.Duration(i) * 30 * time.Second)
		in.requests += 100
		in.errors = map[string]float64{"abort": float64(i+1) * 20}
		in.sloAll = [2]float64{in.sloAll[0] + 50, in.sloAll[1] + 100}
		s.consume(in.metrics(at), at)
		e.tick(at)
	}
	end := t0.Add(5 * time.Minute)
	var rulesFiring []string
	for _, a := range s.view(end, cfg.Window).Alerts {
		if a.Model == "qwen" {
			rulesFiring = append(rulesFiring, a.Rule)
		}
	}
	assert.Equal(t, []string{ruleErrorRate, ruleGoodput}, rulesFiring)
}

func TestBoundedModelsAndSnapshots(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.MaxModels = 2
	s := newStore(cfg)
	for _, m := range []string{"a", "b", "c", "d"} {
		in := &series{model: m, op: "chat", start: t0, requests: 1}
		s.consume(in.metrics(t0), t0)
	}
	var names []string
	total := 0.0
	for _, m := range s.view(t0, time.Minute).Models {
		names = append(names, m.Model)
		total += m.RequestsTotal
	}
	assert.Equal(t, []string{"a", "b", overflowModel}, names)
	assert.InDelta(t, 4, total, 0, "nothing lost: the overflow row counts the rest")
	for i := range 1000 {
		s.takeSnapshot(t0.Add(time.Duration(i) * cfg.SnapshotInterval))
	}
	assert.Len(t, s.snapshots, int(15*time.Minute/cfg.SnapshotInterval)+2)
}

func TestSlowestRequestsFromExemplars(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.JaegerURL = "http://jaeger:16686/"
	cfg.SlowestRequests = 2
	s := newStore(cfg)
	in := &series{model: "llama", op: "chat", start: t0, ttft: []float64{1, 2, 3},
		exemplars: []exemplarIn{{3.5, 1}, {9.25, 2}, {0.5, 3}}}
	s.consume(in.metrics(t0), t0)
	s.consume(in.metrics(t0.Add(time.Second)), t0.Add(time.Second)) // the same exemplars again: not twice
	got := s.view(t0.Add(time.Second), time.Minute).Slowest
	require.Len(t, got, 2)
	assert.InDelta(t, 9.25, got[0].E2ESeconds, 0)
	assert.Equal(t, "02010000000000000000000000000000", got[0].TraceID)
	assert.Equal(t, "http://jaeger:16686/trace/02010000000000000000000000000000", got[0].TraceURL)
	assert.InDelta(t, 3.5, got[1].E2ESeconds, 0)
}
