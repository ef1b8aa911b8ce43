package metrics

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmbench/internal/record"
)

func ok(ttft, e2el float64, prompt, output int64, itl ...float64) record.Record {
	return record.Record{Success: true, TTFT: ttft, E2EL: e2el, PromptTokens: prompt, OutputTokens: output, ITL: itl}
}

func TestPercentileMatchesNumpy(t *testing.T) {
	// reference values: numpy.percentile(values, p) with the default linear method
	tests := []struct {
		values []float64
		p      float64
		want   float64
	}{
		{[]float64{1, 2, 3, 4}, 99, 3.97},
		{[]float64{1, 2, 3, 4}, 50, 2.5},
		{[]float64{1, 2, 3, 4}, 100, 4},
		{[]float64{1, 2, 3, 4}, 25, 1.75},
		{[]float64{5}, 99, 5},
		{[]float64{1, 10}, 90, 9.1},
		{nil, 99, 0},
	}
	for _, tt := range tests {
		assert.InDelta(t, tt.want, Percentile(tt.values, tt.p), 1e-12, "p%v of %v", tt.p, tt.values)
	}
}

func TestComputeFollowsTheBenchmarkRules(t *testing.T) {
	recs := []record.Record{
		ok(0.100, 0.500, 10, 5, 0.1, 0.1, 0.1, 0.1), // tpot 0.1
		ok(0.300, 0.300, 20, 1),                     // one token: tpot 0 for goodput, not in TPOT stats
		ok(0.150, 1.150, 30, 11, 0.1),               // tpot 0.1, e2el 1.15
		{Success: false, Error: "HTTP 500: boom", HTTPStatus: 500, PromptTokens: 99, OutputTokens: 99, TTFT: 0.001},
	}
	s := Compute(recs, 2.0, Goodput{"ttft": 200, "tpot": 100, "e2el": 1000}, []float64{50, 99})
	assert.Equal(t, 3, s.Completed)
	assert.Equal(t, 1, s.Failed)
	assert.Equal(t, int64(60), s.TotalInput, "failed requests' tokens never count")
	assert.Equal(t, int64(17), s.TotalOutput)
	assert.InDelta(t, 1.5, s.RequestThroughput, 1e-12)
	assert.InDelta(t, 8.5, s.OutputThroughput, 1e-12)
	assert.InDelta(t, 38.5, s.TotalTokenThroughput, 1e-12)
	// request 1: ttft 100 ≤ 200, tpot 100 ≤ 100 (equal meets), e2el 500 → good
	// request 2: ttft 300 > 200 → bad; request 3: e2el 1150 > 1000 → bad
	assert.Equal(t, 1, s.GoodCompleted)
	assert.InDelta(t, 0.5, s.RequestGoodput, 1e-12)

	ttft := s.Stats["ttft"]
	assert.Equal(t, 3, ttft.Count)
	assert.InDelta(t, (100.0+300+150)/3, ttft.Mean, 1e-9)
	assert.InDelta(t, 150, ttft.Median, 1e-9)
	assert.InDelta(t, 297, ttft.Percentiles[1], 1e-9) // 150 + (300-150)·0.98
	tpot := s.Stats["tpot"]
	assert.Equal(t, 2, tpot.Count, "TPOT statistics exclude one-token requests")
	assert.InDelta(t, 100, tpot.Mean, 1e-9)
	assert.InDelta(t, 0, tpot.Std, 1e-9)
	assert.Equal(t, 5, s.Stats["itl"].Count)
	e2el := s.Stats["e2el"]
	assert.InDelta(t, 500, e2el.Median, 1e-9)
	assert.InDelta(t, 362.859017617954, e2el.Std, 1e-9) // numpy.std([300, 500, 1150]) (population σ)
}

func TestGoodputOneTokenMeetsTPOT(t *testing.T) {
	s := Compute([]record.Record{ok(0.1, 0.1, 1, 1)}, 1, Goodput{"tpot": 0}, []float64{99})
	assert.Equal(t, 1, s.GoodCompleted, "a one-token request has TPOT 0, which meets even tpot:0")
}

func TestNoGoodputNoFigure(t *testing.T) {
	s := Compute([]record.Record{ok(0.1, 0.2, 1, 2)}, 1, nil, []float64{99})
	assert.False(t, s.HasGoodput)
	assert.Zero(t, s.GoodCompleted)
	var b strings.Builder
	require.NoError(t, s.WriteText(&b, PrintOptions{Metrics: AllMetrics, RequestRate: inf()}))
	assert.NotContains(t, b.String(), "goodput")
}

func TestAllFailedStillSummarises(t *testing.T) {
	recs := []record.Record{{Error: "connection refused"}, {Error: "HTTP 404: x", HTTPStatus: 404}}
	s := Compute(recs, 0.5, Goodput{"ttft": 1}, []float64{99})
	assert.Equal(t, 0, s.Completed)
	assert.Equal(t, 2, s.Failed)
	assert.Zero(t, s.RequestThroughput)
	assert.Zero(t, s.Stats["ttft"].Mean)
	var b strings.Builder
	require.NoError(t, s.WriteText(&b, PrintOptions{Metrics: []string{"ttft"}, RequestRate: inf()}))
	assert.Contains(t, b.String(), "Failed requests:                         2")
}

func TestGap(t *testing.T) {
	a := ok(0.110, 0.520, 1, 2)
	a.Server = &record.Server{TTFT: 0.100, E2E: 0.500}
	b := ok(0.210, 0.640, 1, 2)
	b.Server = &record.Server{TTFT: 0.200, E2E: 0.600}
	c := ok(0.1, 0.2, 1, 2)
	c.ServerError = "jaeger: down"
	s := Compute([]record.Record{a, b, c}, 1, nil, []float64{99})
	assert.Equal(t, 2, s.Joined)
	assert.Equal(t, 1, s.JoinFailed)
	assert.Equal(t, 3, s.Completed, "a failed join does not fail the request")
	assert.InDelta(t, 10, s.TTFTGap.Mean, 1e-9)
	assert.InDelta(t, 30, s.E2EGap.Mean, 1e-9)
}

func TestWriteTextLayout(t *testing.T) {
	recs := []record.Record{ok(0.1, 0.5, 10, 5, 0.1, 0.1, 0.1, 0.1)}
	s := Compute(recs, 2, Goodput{"ttft": 200}, []float64{99})
	var b strings.Builder
	require.NoError(t, s.WriteText(&b, PrintOptions{Metrics: []string{"ttft", "tpot", "itl", "e2el"}, MaxConcurrency: 4, RequestRate: 10}))
	want := `============ Serving Benchmark Result ============
Successful requests:                     1         
Failed requests:                         0         
Maximum request concurrency:             4         
Request rate configured (RPS):           10.00     
Benchmark duration (s):                  2.00      
Total input tokens:                      10        
Total generated tokens:                  5         
Request throughput (req/s):              0.50      
Request goodput (req/s):                 0.50      
Output token throughput (tok/s):         2.50      
Total Token throughput (tok/s):          7.50      
---------------Time to First Token----------------
Mean TTFT (ms):                          100.00    
Median TTFT (ms):                        100.00    
P99 TTFT (ms):                           100.00    
-----Time per Output Token (excl. 1st token)------
Mean TPOT (ms):                          100.00    
Median TPOT (ms):                        100.00    
P99 TPOT (ms):                           100.00    
---------------Inter-token Latency----------------
Mean ITL (ms):                           100.00    
Median ITL (ms):                         100.00    
P99 ITL (ms):                            100.00    
----------------End-to-end Latency----------------
Mean E2EL (ms):                          500.00    
Median E2EL (ms):                        500.00    
P99 E2EL (ms):                           500.00    
==================================================
`
	assert.Equal(t, want, b.String())
}

func TestParseGoodput(t *testing.T) {
	g, err := ParseGoodput("ttft:200,tpot:50 e2el:5000")
	require.NoError(t, err)
	assert.Equal(t, Goodput{"ttft": 200, "tpot": 50, "e2el": 5000}, g)
	for _, bad := range []string{"", "ttft", "queue:100", "ttft:abc", "ttft:-1", "ttft:NaN"} {
		_, err := ParseGoodput(bad)
		assert.Error(t, err, bad)
	}
}

func TestParseMetricsAndPercentiles(t *testing.T) {
	m, err := ParseMetrics("ttft,e2el,ttft")
	require.NoError(t, err)
	assert.Equal(t, []string{"ttft", "e2el"}, m)
	_, err = ParseMetrics("ttft,queue")
	assert.ErrorContains(t, err, "queue")
	p, err := ParsePercentiles("50, 99.9")
	require.NoError(t, err)
	assert.Equal(t, []float64{50, 99.9}, p)
	assert.Equal(t, "99.9", PercentileWord(99.9))
	assert.Equal(t, "99", PercentileWord(99))
	for _, bad := range []string{"0", "101", "x", ""} {
		_, err := ParsePercentiles(bad)
		assert.Error(t, err, bad)
	}
}
