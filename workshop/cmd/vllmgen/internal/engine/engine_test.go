package engine

import (
	"bytes"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmgen/internal/vllmmetrics"
)

func TestTimeline(t *testing.T) {
	const ms = int64(time.Millisecond)
	o := newTimeline(100*time.Millisecond, time.Second) // ring of 10 ticks
	base := int64(1_000_000) * ms
	o.add(base, base+200*ms, base+500*ms, 100)         // waits 0–200 ms, runs 200–500 ms
	o.add(base+100*ms, base+100*ms, base+5_000*ms, 10) // runs from 100 ms; its end lies beyond the horizon
	tests := []struct {
		at                       int64
		waiting, running, tokens int64
	}{
		{at: 0, waiting: 1},
		{at: 150 * ms, waiting: 1, running: 1, tokens: 10},
		{at: 250 * ms, running: 2, tokens: 110},
		{at: 600 * ms, running: 1, tokens: 10},
		{at: 1_150 * ms, running: 0, tokens: 0}, // ended at the horizon (cursor + 1 s) instead of at 5 s
		{at: 9_000 * ms, running: 0, tokens: 0},
	}
	for _, tt := range tests {
		o.advance(base + tt.at)
		assert.Equal(t, [numSlots]int64{tt.waiting, tt.running, tt.tokens}, o.current, "at %d ms", tt.at/ms)
	}
	// a request that started and ended before the cursor changes nothing in the end
	o.add(base, base+ms, base+2*ms, 7)
	o.advance(base + 9_100*ms)
	assert.Equal(t, [numSlots]int64{}, o.current)
}

// gauges scrapes e and returns waiting, running and KV cache usage of its first model.
func gauges(t *testing.T, e *Engine) [3]float64 {
	t.Helper()
	var b bytes.Buffer
	require.NoError(t, e.Metrics().WriteText(&b))
	p := expfmt.NewTextParser(model.LegacyValidation)
	families, err := p.TextToMetricFamilies(&b)
	require.NoError(t, err)
	get := func(name string) float64 { return families[name].GetMetric()[0].GetGauge().GetValue() }
	return [3]float64{get(vllmmetrics.MetricWaiting), get(vllmmetrics.MetricRunning), get(vllmmetrics.MetricKVCacheUsage)}
}

// A request that moves through the engine as it happens (vllmgen serve) shows on the next scrape, whatever the tick.
func TestLiveRequests(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	e, err := New([]string{"m"}, func() time.Time { return now })
	require.NoError(t, err)
	assert.Equal(t, [3]float64{0, 0, 0}, gauges(t, e))

	a := e.Arrive(0, KVCacheTokens/4)
	b := e.Arrive(0, KVCacheTokens/2)
	assert.Equal(t, [3]float64{2, 0, 0}, gauges(t, e))
	now = now.Add(time.Millisecond) // within the same tick
	a.Schedule()
	a.Schedule() // no-op
	assert.Equal(t, [3]float64{1, 1, 0.25}, gauges(t, e))
	now = now.Add(time.Second)
	b.Leave() // left while waiting (client gone)
	b.Leave()
	b.Schedule() // too late: no-op
	assert.Equal(t, [3]float64{0, 1, 0.25}, gauges(t, e))
	a.Leave()
	assert.Equal(t, [3]float64{0, 0, 0}, gauges(t, e))
	now = now.Add(time.Hour) // long idle: nothing left behind
	assert.Equal(t, [3]float64{0, 0, 0}, gauges(t, e))
}

func TestServer(t *testing.T) {
	e, err := New([]string{"m"}, time.Now)
	require.NoError(t, err)
	s, err := Listen("127.0.0.1:0", MetricsOnly(e))
	require.NoError(t, err)
	_, err = Listen(s.Addr(), MetricsOnly(e))
	assert.Error(t, err, "the port is taken")

	resp, err := http.Get("http://" + s.Addr() + MetricsPath)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Contains(t, string(body), `vllm:num_requests_running{model_name="m",engine="0"} 0.0`)
	resp, err = http.Get("http://" + s.Addr() + "/v1/models")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusNotFound, resp.StatusCode, "send's server has /metrics only")

	assert.NoError(t, s.Err())
	require.NoError(t, s.Shutdown(time.Second))
	<-s.Done()
	assert.NoError(t, s.Err(), "a shutdown is no failure")
}
