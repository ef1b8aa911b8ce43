package send

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmgen/internal/otlpsend"
	"github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmgen/internal/vllmmetrics"
	"github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmgen/internal/workload"
	"github.com/otelcol-vllm/otelcol-vllm/workshop/testkit/otlpsink"
)

func dryRun(t *testing.T, args ...string) *Result {
	t.Helper()
	res, err := Run(context.Background(), mustParse(t, append([]string{"--dry-run"}, args...)...))
	require.NoError(t, err)
	t.Cleanup(res.Close)
	return res
}

// generated regenerates the records of a run, before any loss or abort.
func generated(t *testing.T, o Options) []workload.Record {
	t.Helper()
	gen, err := workload.NewGenerator(workload.Config{Shape: o.Shape, Profile: o.Profile, Models: o.Models, Seed: o.Seed, NProb: o.NProb, GreedyProb: o.GreedyProb})
	require.NoError(t, err)
	var recs []workload.Record
	for range o.Count {
		recs = gen.Next(recs)
	}
	return recs
}

func TestVLLMCountsEveryRequestWithoutLoss(t *testing.T) {
	for _, shape := range []string{"v1", "v0"} {
		t.Run(shape, func(t *testing.T) {
			args := []string{"--shape", shape, "--count", "1500", "--seed", "4", "--models", "a,b", "--n-prob", "0.3"}
			res := dryRun(t, args...)
			recs := generated(t, mustParse(t, args...))

			wantReasons := map[string]int64{vllmmetrics.FinishStop: 0, vllmmetrics.FinishLength: 0, vllmmetrics.FinishAbort: 0, vllmmetrics.FinishError: 0, vllmmetrics.FinishRepetition: 0}
			var prompt, completion int64
			for i := range recs {
				if recs[i].CompletionTokens == recs[i].MaxTokens*max(1, recs[i].NumSequences) {
					wantReasons[vllmmetrics.FinishLength]++
				} else {
					wantReasons[vllmmetrics.FinishStop]++
				}
				prompt += recs[i].PromptTokens
				completion += recs[i].CompletionTokens
			}
			require.Positive(t, wantReasons[vllmmetrics.FinishLength], "the profile has max_tokens=1 requests")
			got := res.VLLM
			assert.Equal(t, wantReasons, got.RequestSuccess)
			assert.EqualValues(t, len(recs), got.Finished, "one finished request per span")
			assert.Equal(t, res.Tally.Total.Spans, got.Finished)
			assert.Zero(t, got.LostSpans)
			assert.Zero(t, got.Aborted)
			assert.Equal(t, prompt, got.PromptTokens)
			assert.Equal(t, completion, got.GenerationTokens)
			assert.EqualValues(t, len(recs), got.TTFTCount)
			assert.EqualValues(t, len(recs), got.E2ECount)
			for i, m := range []string{"a", "b"} {
				assert.Equal(t, res.Tally.Models[i].Spans, res.VLLMModels[m].Finished, m)
			}
		})
	}
}

func TestSpanLoss(t *testing.T) {
	args := []string{"--count", "4000", "--seed", "9", "--models", "a,b", "--n-prob", "0.3"}
	full := dryRun(t, args...)
	lossy := dryRun(t, append(args, "--span-loss", "0.1")...)
	again := dryRun(t, append(args, "--span-loss", "0.1")...)

	// vLLM counted exactly the same requests: the loss draws do not disturb the generated values
	assert.Equal(t, full.VLLM.Counts, lossy.VLLM.Counts)
	assert.Equal(t, lossy.VLLM.Finished, lossy.Tally.Total.Spans+lossy.VLLM.LostSpans)
	for i, m := range []string{"a", "b"} {
		c := lossy.VLLMModels[m]
		assert.Equal(t, c.Finished, lossy.Tally.Models[i].Spans+c.LostSpans, m)
	}
	lostShare := float64(lossy.VLLM.LostSpans) / float64(lossy.VLLM.Finished)
	assert.InDelta(t, 0.1, lostShare, 0.015)
	// a lost span takes its values out of the expectations, and the request is counted when any span is sent
	assert.Less(t, lossy.Tally.Total.TTFT.SumUS, full.Tally.Total.TTFT.SumUS)
	assert.Less(t, lossy.Tally.Total.Requests, full.Tally.Total.Requests)
	assert.Greater(t, lossy.Tally.Total.Requests, int64(4000*0.85))

	// deterministic with the seed
	assert.Equal(t, lossy.VLLM, again.VLLM)
	assert.Equal(t, lossy.Tally.Total, again.Tally.Total)
}

func TestSpanLossSendsASubsetOfTheSpans(t *testing.T) {
	sink := &otlpsink.Sink{}
	args := append(startReceiver(t, otlpsend.ProtocolGRPC, sink), "--count", "600", "--seed", "2", "--n-prob", "0.5",
		"--span-loss", "0.25", "--abort-fraction", "0.1")
	code, summary, stderr := runMain(t, args...)
	require.Equal(t, ExitOK, code, stderr)
	want := expectedSpans(t, mustParse(t, args...)) // every generated span, none lost
	got := sink.Traces()
	received := 0
	for _, rs := range got.ResourceSpans().All() {
		for _, span := range rs.ScopeSpans().At(0).Spans().All() {
			exp, ok := want[span.SpanID()]
			require.True(t, ok, "span %s was never generated", span.SpanID())
			assert.Equal(t, exp.Attributes().AsRaw(), span.Attributes().AsRaw())
			received++
		}
	}
	assert.EqualValues(t, summary.Total.Spans, received)
	v := summary.VLLM.Total
	assert.Equal(t, len(want), int(v.Finished+v.Aborted), "every generated engine request is finished or aborted")
	assert.Equal(t, v.Finished, summary.Total.Spans+v.LostSpans, "finished requests: sent or lost")
	assert.Equal(t, 0.25, summary.VLLM.SpanLoss)
	assert.Equal(t, 0.1, summary.VLLM.AbortFraction)
}

func TestAbortedRequests(t *testing.T) {
	args := []string{"--count", "3000", "--seed", "6", "--n-prob", "0.3"}
	full := dryRun(t, args...)
	aborted := dryRun(t, append(args, "--abort-fraction", "0.2")...)

	v := aborted.VLLM
	assert.Equal(t, full.VLLM.Finished, v.Finished+v.Aborted, "each engine request either finishes or is aborted")
	assert.InDelta(t, 0.2, float64(v.Aborted)/float64(full.VLLM.Finished), 0.03)
	assert.Equal(t, v.Finished, aborted.Tally.Total.Spans, "aborted requests send no span, finished ones all do")
	assert.Zero(t, v.RequestSuccess[vllmmetrics.FinishAbort], "client aborts are not counted as finished")
	assert.Equal(t, v.Finished, v.E2ECount, "no e2e latency for an aborted request")
	assert.Greater(t, v.TTFTCount, v.Finished, "aborts after the first token have a TTFT")
	assert.Less(t, v.TTFTCount, full.VLLM.TTFTCount, "aborts during queue or prefill have none")
	// tokens processed before the abort are counted, the rest never were
	assert.Less(t, v.GenerationTokens, full.VLLM.GenerationTokens)
	assert.Greater(t, v.GenerationTokens, aborted.Tally.Total.CompletionTokens)
	assert.Less(t, v.PromptTokens, full.VLLM.PromptTokens)
	assert.Greater(t, v.PromptTokens, aborted.Tally.Total.PromptTokens)
}

func TestAdmitCutsAnAbortedRequest(t *testing.T) {
	o := mustParse(t, "--models", "m")
	side, err := newVLLMSide(o, time.Now)
	require.NoError(t, err)
	rec := workload.Record{Model: 0, FirstOfRequest: true, MaxTokens: 100, PromptTokens: 50, CompletionTokens: 11,
		QueueUS: 1_000, TTFTUS: 100_000, TPOTUS: 10_000, E2EUS: 200_500}
	tests := []struct {
		name               string
		cutUS              int64
		firstToken         bool
		prompt, generation int64
	}{
		{name: "in the queue", cutUS: 500},
		{name: "during prefill", cutUS: 99_999},
		{name: "at the first token", cutUS: 100_000, firstToken: true, prompt: 50, generation: 1},
		{name: "during decode", cutUS: 135_000, firstToken: true, prompt: 50, generation: 4},
		{name: "after the last token", cutUS: 200_400, firstToken: true, prompt: 50, generation: 11},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := side.engine.Metrics().Total()
			side.observeAborted("m", &rec, tt.cutUS)
			after := side.engine.Metrics().Total()
			assert.EqualValues(t, 1, after.Aborted-before.Aborted)
			assert.Equal(t, tt.prompt, after.PromptTokens-before.PromptTokens)
			assert.Equal(t, tt.generation, after.GenerationTokens-before.GenerationTokens)
			wantTTFT := int64(0)
			if tt.firstToken {
				wantTTFT = 1
			}
			assert.Equal(t, wantTTFT, after.TTFTCount-before.TTFTCount)
			assert.Equal(t, before.E2ECount, after.E2ECount)
		})
	}
}

func TestGaugesFollowTheTimeline(t *testing.T) {
	o := mustParse(t, "--models", "m")
	now := time.Unix(1_000_000, 0)
	side, err := newVLLMSide(o, func() time.Time { return now })
	require.NoError(t, err)
	rec := workload.Record{Model: 0, FirstOfRequest: true, MaxTokens: 100, PromptTokens: 131_072 - 72, CompletionTokens: 72,
		QueueUS: 500_000, TTFTUS: 600_000, TPOTUS: 1000, E2EUS: 2_000_000, ReleasedUnixNano: now.UnixNano()}
	kept := side.admit([]workload.Record{rec})
	require.Len(t, kept, 1)

	gauges := func() (waiting, running, kv float64) {
		var b bytes.Buffer
		require.NoError(t, side.engine.Metrics().WriteText(&b))
		p := expfmt.NewTextParser(model.LegacyValidation)
		families, err := p.TextToMetricFamilies(&b)
		require.NoError(t, err)
		get := func(name string) float64 { return families[name].GetMetric()[0].GetGauge().GetValue() }
		return get(vllmmetrics.MetricWaiting), get(vllmmetrics.MetricRunning), get(vllmmetrics.MetricKVCacheUsage)
	}
	for _, tt := range []struct {
		after                time.Duration
		waiting, running, kv float64
	}{
		{0, 1, 0, 0},
		{time.Second, 0, 1, 0.5},
		{3 * time.Second, 0, 0, 0},
	} {
		now = time.Unix(1_000_000, 0).Add(tt.after)
		w, r, kv := gauges()
		assert.Equal(t, []float64{tt.waiting, tt.running, tt.kv}, []float64{w, r, kv}, "after %v", tt.after)
	}
}

// TestMetricsEndpoint scrapes a run's /metrics and finds the summary's numbers.
func TestMetricsEndpoint(t *testing.T) {
	sink := &otlpsink.Sink{}
	args := append(startReceiver(t, otlpsend.ProtocolHTTP, sink), "--count", "400", "--seed", "8", "--models", "a,b",
		"--span-loss", "0.2", "--abort-fraction", "0.1", "--metrics-listen", "127.0.0.1:0")
	res, err := Run(context.Background(), mustParse(t, args...))
	require.NoError(t, err)
	defer res.Close()
	require.NotEmpty(t, res.MetricsAddr())

	resp, err := http.Get("http://" + res.MetricsAddr() + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	p := expfmt.NewTextParser(model.LegacyValidation)
	families, err := p.TextToMetricFamilies(resp.Body)
	require.NoError(t, err)

	for _, m := range []string{"a", "b"} {
		want := res.VLLMModels[m]
		var finished float64
		for _, metric := range families[vllmmetrics.MetricRequestSuccess].GetMetric() {
			l := labelsOf(metric)
			if l[vllmmetrics.LabelModel] == m {
				assert.Equal(t, "0", l[vllmmetrics.LabelEngine])
				assert.EqualValues(t, want.RequestSuccess[l[vllmmetrics.LabelFinishedReason]], metric.GetCounter().GetValue(), "%v", l)
				finished += metric.GetCounter().GetValue()
			}
		}
		assert.EqualValues(t, want.Finished, finished, m)
		assert.EqualValues(t, want.PromptTokens, valueFor(families, vllmmetrics.MetricPromptTokens, m), m)
		assert.EqualValues(t, want.GenerationTokens, valueFor(families, vllmmetrics.MetricGenerationTokens, m), m)
		assert.EqualValues(t, want.E2ECount, histogramFor(families, vllmmetrics.MetricE2ELatency, m).GetSampleCount(), m)
		assert.EqualValues(t, want.TTFTCount, histogramFor(families, vllmmetrics.MetricTTFT, m).GetSampleCount(), m)
	}
	assert.Equal(t, sink.SpanCount(), int(res.Tally.Total.Spans))
	assert.Less(t, res.Tally.Total.Spans, res.VLLM.Finished)
}

func TestMetricsListenBusyPortFailsTheRun(t *testing.T) {
	first, err := Run(context.Background(), mustParse(t, "--dry-run", "--count", "1", "--metrics-listen", "127.0.0.1:0"))
	require.NoError(t, err)
	defer first.Close()
	_, err = Run(context.Background(), mustParse(t, "--dry-run", "--count", "1", "--metrics-listen", first.MetricsAddr()))
	assert.ErrorContains(t, err, "--metrics-listen")
}

func TestLingerMetrics(t *testing.T) {
	t.Run("for a while", func(t *testing.T) {
		res, err := Run(context.Background(), mustParse(t, "--dry-run", "--count", "1", "--metrics-listen", "127.0.0.1:0", "--metrics-linger", "300ms"))
		require.NoError(t, err)
		addr := res.MetricsAddr()
		done := make(chan struct{})
		go func() { res.LingerMetrics(context.Background()); close(done) }()
		resp, err := http.Get("http://" + addr + "/metrics")
		require.NoError(t, err, "still served while lingering")
		_ = resp.Body.Close()
		<-done
		_, err = http.Get("http://" + addr + "/metrics")
		assert.Error(t, err, "no longer served after the linger")
	})
	t.Run("until cancelled", func(t *testing.T) {
		res, err := Run(context.Background(), mustParse(t, "--dry-run", "--count", "1", "--metrics-listen", "127.0.0.1:0", "--metrics-linger", "0"))
		require.NoError(t, err)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { res.LingerMetrics(ctx); close(done) }()
		select {
		case <-done:
			t.Fatal("--metrics-linger 0 stopped before the signal")
		case <-time.After(200 * time.Millisecond):
		}
		cancel()
		<-done
	})
}

func labelsOf(m interface {
	GetLabel() []*dto.LabelPair
}) map[string]string {
	out := map[string]string{}
	for _, l := range m.GetLabel() {
		out[l.GetName()] = l.GetValue()
	}
	return out
}

func seriesFor(families map[string]*dto.MetricFamily, name, model string) *dto.Metric {
	for _, m := range families[name].GetMetric() {
		if labelsOf(m)[vllmmetrics.LabelModel] == model {
			return m
		}
	}
	return nil
}

func valueFor(families map[string]*dto.MetricFamily, name, model string) float64 {
	return seriesFor(families, name, model).GetCounter().GetValue()
}

func histogramFor(families map[string]*dto.MetricFamily, name, model string) *dto.Histogram {
	return seriesFor(families, name, model).GetHistogram()
}

func TestTextSummarySaysSentVersusCounted(t *testing.T) {
	var stdout bytes.Buffer
	code := Main(context.Background(), []string{"--dry-run", "--seed", "3", "--count", "20", "--models", "m", "--n-prob", "0"}, &stdout, io.Discard)
	require.Equal(t, ExitOK, code)
	// no loss, no aborts: vLLM counted exactly the 20 requests sent
	assert.Regexp(t, `(?m)^m\s+20\s+\d+\s+\d+\s+0\s+20\s+0\s+1\.0000\s*$`, stdout.String())

	stdout.Reset()
	code = Main(context.Background(), []string{"--dry-run", "--seed", "3", "--count", "2000", "--models", "m", "--span-loss", "0.5"}, &stdout, io.Discard)
	require.Equal(t, ExitOK, code)
	assert.Regexp(t, `(?m)^m\s+\d+\s+\d+\s+\d+\s+0\s+\d+\s+\d+\s+0\.[45]\d{3}\s*$`, stdout.String())
	assert.Contains(t, stdout.String(), "sent vs counted by vLLM's /metrics")
}
