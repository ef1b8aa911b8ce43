package vllmmetrics

import (
	"io"
	"maps"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func parse(t *testing.T, r *Registry) map[string]*dto.MetricFamily {
	t.Helper()
	var b strings.Builder
	require.NoError(t, r.WriteText(&b))
	p := expfmt.NewTextParser(model.LegacyValidation)
	families, err := p.TextToMetricFamilies(strings.NewReader(b.String()))
	require.NoError(t, err, "exposition:\n%s", b.String())
	return families
}

func labelsOf(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, l := range m.GetLabel() {
		out[l.GetName()] = l.GetValue()
	}
	return out
}

// find returns the metric of a family with exactly these labels.
func find(t *testing.T, families map[string]*dto.MetricFamily, name string, labels map[string]string) *dto.Metric {
	t.Helper()
	f, ok := families[name]
	require.True(t, ok, "no family %s", name)
	for _, m := range f.GetMetric() {
		if assert.ObjectsAreEqual(labels, labelsOf(m)) {
			return m
		}
	}
	t.Fatalf("%s has no series %v", name, labels)
	return nil
}

func TestNewValidates(t *testing.T) {
	for _, tt := range []struct {
		name    string
		models  []string
		wantErr string
	}{
		{"no models", nil, "at least one model"},
		{"empty name", []string{"a", ""}, "must not be empty"},
		{"duplicate", []string{"a", "a"}, `"a" listed twice`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.models, "0")
			assert.ErrorContains(t, err, tt.wantErr)
		})
	}
}

func TestStartsAtZeroWithEverySeries(t *testing.T) {
	r, err := New([]string{"llama", "qwen"}, "0")
	require.NoError(t, err)
	families := parse(t, r)

	wantTypes := map[string]dto.MetricType{
		MetricRequestSuccess: dto.MetricType_COUNTER, MetricPromptTokens: dto.MetricType_COUNTER,
		MetricGenerationTokens: dto.MetricType_COUNTER, MetricE2ELatency: dto.MetricType_HISTOGRAM,
		MetricTTFT: dto.MetricType_HISTOGRAM, MetricRunning: dto.MetricType_GAUGE, MetricWaiting: dto.MetricType_GAUGE,
		MetricKVCacheUsage: dto.MetricType_GAUGE,
	}
	for name, typ := range maps.Clone(wantTypes) {
		if typ != dto.MetricType_GAUGE {
			wantTypes[strings.TrimSuffix(name, "_total")+"_created"] = dto.MetricType_GAUGE
		}
	}
	assert.Len(t, families, len(wantTypes))
	for name, typ := range wantTypes {
		require.Contains(t, families, name)
		assert.Equal(t, typ, families[name].GetType(), name)
	}
	// vLLM creates a request_success series per model and finish reason at startup
	assert.Len(t, families[MetricRequestSuccess].GetMetric(), 2*len(FinishReasons))
	for _, model := range []string{"llama", "qwen"} {
		for _, reason := range FinishReasons {
			m := find(t, families, MetricRequestSuccess, map[string]string{LabelModel: model, LabelEngine: "0", LabelFinishedReason: reason})
			assert.Zero(t, m.GetCounter().GetValue())
		}
		h := find(t, families, MetricTTFT, map[string]string{LabelModel: model, LabelEngine: "0"}).GetHistogram()
		assert.Zero(t, h.GetSampleCount())
		assert.Len(t, h.GetBucket(), len(TTFTBuckets)+1) // and +Inf
	}
}

func TestBucketBoundsAreVLLMs(t *testing.T) {
	r, err := New([]string{"m"}, "0")
	require.NoError(t, err)
	families := parse(t, r)
	for name, want := range map[string][]float64{MetricTTFT: TTFTBuckets, MetricE2ELatency: RequestLatencyBuckets} {
		var got []float64
		for _, b := range families[name].GetMetric()[0].GetHistogram().GetBucket() {
			got = append(got, b.GetUpperBound())
		}
		assert.Equal(t, append(append([]float64(nil), want...), math.Inf(1)), got, name)
	}
	assert.Len(t, TTFTBuckets, 22)
	assert.Len(t, RequestLatencyBuckets, 21)
	assert.Equal(t, 2560.0, TTFTBuckets[len(TTFTBuckets)-1])
	assert.Equal(t, 0.3, RequestLatencyBuckets[0])
	assert.Equal(t, 7680.0, RequestLatencyBuckets[len(RequestLatencyBuckets)-1])

	// bounds are written as prometheus_client writes them
	var b strings.Builder
	require.NoError(t, r.WriteText(&b))
	assert.Contains(t, b.String(), `vllm:e2e_request_latency_seconds_bucket{model_name="m",engine="0",le="1.0"} 0.0`)
	assert.Contains(t, b.String(), `vllm:time_to_first_token_seconds_bucket{model_name="m",engine="0",le="0.001"} 0.0`)
	assert.Contains(t, b.String(), `vllm:time_to_first_token_seconds_bucket{model_name="m",engine="0",le="+Inf"} 0.0`)
}

func TestObserve(t *testing.T) {
	r, err := New([]string{"llama", "qwen"}, "1")
	require.NoError(t, err)
	ms := time.Millisecond
	finished := []FinishedRequest{
		{Model: "llama", FinishedReason: FinishStop, TTFT: 100 * ms, E2E: 300 * ms, PromptTokens: 10, GenerationTokens: 5}, // on the 0.1 and 0.3 bounds
		{Model: "llama", FinishedReason: FinishLength, TTFT: 30 * ms, E2E: 2 * time.Second, PromptTokens: 7, GenerationTokens: 256},
		{Model: "llama", FinishedReason: FinishStop, TTFT: 3 * time.Hour, E2E: 3 * time.Hour, PromptTokens: 1, GenerationTokens: 1}, // beyond the last bound
		{Model: "qwen", FinishedReason: FinishError, TTFT: 0, E2E: 0},
	}
	for _, f := range finished {
		require.NoError(t, r.ObserveFinished(f))
	}
	aborted := []AbortedRequest{
		{Model: "llama", FirstToken: true, TTFT: 50 * ms, PromptTokens: 100, GenerationTokens: 3},
		{Model: "llama", FirstToken: false, PromptTokens: 900}, // aborted during prefill: nothing counted but the abort
	}
	for _, a := range aborted {
		require.NoError(t, r.ObserveAborted(a))
	}
	require.NoError(t, r.SetRunning("llama", 4))
	require.NoError(t, r.SetWaiting("llama", 2))
	require.NoError(t, r.SetKVCacheUsage("qwen", 0.25))

	families := parse(t, r)
	llama := map[string]string{LabelModel: "llama", LabelEngine: "1"}
	qwen := map[string]string{LabelModel: "qwen", LabelEngine: "1"}
	with := func(base map[string]string, k, v string) map[string]string {
		out := map[string]string{k: v}
		for a, b := range base {
			out[a] = b
		}
		return out
	}

	tests := []struct {
		metric string
		labels map[string]string
		want   float64
	}{
		{MetricRequestSuccess, with(llama, LabelFinishedReason, FinishStop), 2},
		{MetricRequestSuccess, with(llama, LabelFinishedReason, FinishLength), 1},
		{MetricRequestSuccess, with(llama, LabelFinishedReason, FinishAbort), 0}, // client aborts are not finished requests
		{MetricRequestSuccess, with(qwen, LabelFinishedReason, FinishError), 1},
		{MetricPromptTokens, llama, 10 + 7 + 1 + 100},
		{MetricGenerationTokens, llama, 5 + 256 + 1 + 3},
		{MetricPromptTokens, qwen, 0},
		{MetricRunning, llama, 4},
		{MetricWaiting, llama, 2},
		{MetricRunning, qwen, 0},
		{MetricKVCacheUsage, qwen, 0.25},
		{MetricKVCacheUsage, llama, 0},
	}
	for _, tt := range tests {
		m := find(t, families, tt.metric, tt.labels)
		got := m.GetCounter().GetValue() + m.GetGauge().GetValue()
		assert.Equal(t, tt.want, got, "%s%v", tt.metric, tt.labels)
	}

	ttft := find(t, families, MetricTTFT, llama).GetHistogram()
	assert.EqualValues(t, 4, ttft.GetSampleCount(), "three finished plus the abort that had its first token")
	assert.InDelta(t, 0.1+0.03+3*3600+0.05, ttft.GetSampleSum(), 1e-9)
	cumulative := map[float64]uint64{}
	for _, b := range ttft.GetBucket() {
		cumulative[b.GetUpperBound()] = b.GetCumulativeCount()
	}
	assert.EqualValues(t, 0, cumulative[0.02])
	assert.EqualValues(t, 1, cumulative[0.04]) // 30ms
	assert.EqualValues(t, 2, cumulative[0.06]) // 50ms
	assert.EqualValues(t, 3, cumulative[0.1])  // 100ms: a value on a bound is in that bucket
	assert.EqualValues(t, 3, cumulative[2560])

	e2e := find(t, families, MetricE2ELatency, llama).GetHistogram()
	assert.EqualValues(t, 3, e2e.GetSampleCount(), "aborted requests have no e2e latency")
	cumulative = map[float64]uint64{}
	for _, b := range e2e.GetBucket() {
		cumulative[b.GetUpperBound()] = b.GetCumulativeCount()
	}
	assert.EqualValues(t, 1, cumulative[0.3])
	assert.EqualValues(t, 2, cumulative[2])
	assert.EqualValues(t, 2, cumulative[7680])

	c, err := r.Counts("llama")
	require.NoError(t, err)
	assert.Equal(t, Counts{
		RequestSuccess: map[string]int64{FinishStop: 2, FinishLength: 1, FinishAbort: 0, FinishError: 0, FinishRepetition: 0},
		Finished:       3, Aborted: 2, PromptTokens: 118, GenerationTokens: 265, TTFTCount: 4, E2ECount: 3,
	}, c)
	total := r.Total()
	assert.EqualValues(t, 4, total.Finished)
	assert.EqualValues(t, 1, total.RequestSuccess[FinishError])
	assert.EqualValues(t, 4, total.E2ECount)
}

func TestBadInputChangesNothing(t *testing.T) {
	r, err := New([]string{"m"}, "0")
	require.NoError(t, err)
	tests := []struct {
		name    string
		call    func() error
		wantErr string
	}{
		{"unknown model", func() error { return r.ObserveFinished(FinishedRequest{Model: "x", FinishedReason: FinishStop}) }, `unknown model "x"`},
		{"unknown reason", func() error { return r.ObserveFinished(FinishedRequest{Model: "m", FinishedReason: "timeout"}) }, `unknown finished_reason "timeout"`},
		{"negative tokens", func() error {
			return r.ObserveFinished(FinishedRequest{Model: "m", FinishedReason: FinishStop, PromptTokens: -1})
		}, "must not be negative"},
		{"abort unknown model", func() error { return r.ObserveAborted(AbortedRequest{Model: "x"}) }, `unknown model "x"`},
		{"abort tokens without first token", func() error { return r.ObserveAborted(AbortedRequest{Model: "m", GenerationTokens: 2}) }, "without a first token"},
		{"negative running", func() error { return r.SetRunning("m", -1) }, "must not be negative"},
		{"waiting unknown model", func() error { return r.SetWaiting("x", 1) }, `unknown model "x"`},
		{"kv usage above 1", func() error { return r.SetKVCacheUsage("m", 1.5) }, "within [0, 1]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.ErrorContains(t, tt.call(), tt.wantErr)
		})
	}
	c, err := r.Counts("m")
	require.NoError(t, err)
	assert.Equal(t, Counts{RequestSuccess: map[string]int64{FinishStop: 0, FinishLength: 0, FinishAbort: 0, FinishError: 0, FinishRepetition: 0}}, c)
}

func TestLabelValuesAreEscaped(t *testing.T) {
	model := `org/model "v2"` + "\n" + `\x`
	r, err := New([]string{model}, "0")
	require.NoError(t, err)
	require.NoError(t, r.SetRunning(model, 1))
	families := parse(t, r)
	m := find(t, families, MetricRunning, map[string]string{LabelModel: model, LabelEngine: "0"})
	assert.Equal(t, 1.0, m.GetGauge().GetValue())
}

func TestBeforeReadRunsOnEachScrape(t *testing.T) {
	r, err := New([]string{"m"}, "0")
	require.NoError(t, err)
	var scrapes int64
	r.BeforeRead(func() {
		scrapes++
		require.NoError(t, r.SetRunning("m", scrapes))
	})
	srv := httptest.NewServer(r.Handler())
	defer srv.Close()
	for want := 1.0; want <= 2; want++ {
		resp, err := http.Get(srv.URL + "/metrics")
		require.NoError(t, err)
		assert.Equal(t, "text/plain; version=0.0.4; charset=utf-8", resp.Header.Get("Content-Type"))
		p := expfmt.NewTextParser(model.LegacyValidation)
		families, err := p.TextToMetricFamilies(resp.Body)
		_ = resp.Body.Close()
		require.NoError(t, err)
		assert.Equal(t, want, find(t, families, MetricRunning, map[string]string{LabelModel: "m", LabelEngine: "0"}).GetGauge().GetValue())
	}
	resp, err := http.Post(srv.URL+"/metrics", "text/plain", strings.NewReader(""))
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	assert.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
}

// TestConcurrentUse runs writers and readers together (meaningful under -race) and checks nothing is lost.
func TestConcurrentUse(t *testing.T) {
	r, err := New([]string{"a", "b"}, "0")
	require.NoError(t, err)
	const writers, perWriter = 4, 500
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			model := []string{"a", "b"}[w%2]
			for range perWriter {
				assert.NoError(t, r.ObserveFinished(FinishedRequest{Model: model, FinishedReason: FinishStop, TTFT: time.Millisecond, E2E: time.Second, PromptTokens: 2, GenerationTokens: 3}))
				assert.NoError(t, r.SetRunning(model, 1))
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range 20 {
			assert.NoError(t, r.WriteText(io.Discard))
		}
	}()
	wg.Wait()
	total := r.Total()
	assert.EqualValues(t, writers*perWriter, total.Finished)
	assert.EqualValues(t, 2*writers*perWriter, total.PromptTokens)
	assert.EqualValues(t, writers*perWriter, total.E2ECount)
}

func TestFormatFloat(t *testing.T) {
	for in, want := range map[float64]string{0: "0.0", 1: "1.0", 2560: "2560.0", 0.001: "0.001", 0.25: "0.25", 1.5e-05: "1.5e-05", 123.456: "123.456"} {
		assert.Equal(t, want, formatFloat(in), "%v", in)
	}
}
