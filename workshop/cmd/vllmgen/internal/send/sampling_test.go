package send

import (
	"bytes"
	"context"
	"io"
	"slices"
	"testing"

	"github.com/open-telemetry/opentelemetry-collector-contrib/pkg/sampling"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"

	"github.com/otelcol-vllm/otelcol-vllm/internal/vllmrequest/vllmrequesttest"
	"github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmgen/internal/otlpsend"
	"github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmgen/internal/workload"
	"github.com/otelcol-vllm/otelcol-vllm/workshop/testkit/otlpsink"
)

// consumed is what a consumer that weighs each received span by its adjusted count computes, span by span,
// independently of vllmgen's own accounting.
type consumed struct {
	spans                     int
	weight, prompt, output    float64
	violatedWeight, metWeight float64
	violators                 []string
}

const (
	testSLOTTFT = 0.15 // seconds; the flags below
	testSLOTPOT = 0.03
)

var sampledSLOFlags = []string{"--slo-ttft", "150ms", "--slo-tpot", "30ms"}

func consume(t *testing.T, sink *otlpsink.Sink, weightOf func(traceState string, id pcommon.TraceID) float64) map[string]*consumed {
	t.Helper()
	out := map[string]*consumed{}
	for _, rs := range sink.Traces().ResourceSpans().All() {
		model, ok := rs.Resource().Attributes().Get(vllmrequesttest.AttrRequestModel)
		require.True(t, ok)
		c := out[model.Str()]
		if c == nil {
			c = &consumed{}
			out[model.Str()] = c
		}
		for _, span := range rs.ScopeSpans().At(0).Spans().All() {
			w := weightOf(span.TraceState().AsRaw(), span.TraceID())
			a := span.Attributes()
			prompt, _ := a.Get(vllmrequesttest.AttrPromptTokens)
			completion, _ := a.Get(vllmrequesttest.AttrCompletionTokens)
			ttft, _ := a.Get(vllmrequesttest.AttrTTFT)
			decode, _ := a.Get(vllmrequesttest.AttrDecode)
			c.spans++
			c.weight += w
			c.prompt += w * float64(prompt.Int())
			c.output += w * float64(completion.Int())
			violated := ttft.Double() > testSLOTTFT
			if n := completion.Int(); n >= 2 && decode.Double()/float64(n-1) > testSLOTPOT {
				violated = true
			}
			if violated {
				c.violatedWeight += w
				c.violators = append(c.violators, span.SpanID().String())
			} else {
				c.metWeight += w
			}
		}
	}
	return out
}

func TestHeadSampledExport(t *testing.T) {
	for _, mode := range []string{"threshold", "none"} {
		t.Run(mode, func(t *testing.T) {
			sink := &otlpsink.Sink{}
			args := append(startReceiver(t, otlpsend.ProtocolGRPC, sink), "--count", "4000", "--seed", "9", "--models", "a,b",
				"--n-prob", "0.2", "--batch", "50", "--workers", "3", "--sample-ratio", "0.1", "--sample-tracestate", mode)
			args = append(args, sampledSLOFlags...)
			code, s, stderr := runMain(t, args...)
			require.Equal(t, ExitOK, code, stderr)

			weightOf := func(traceState string, id pcommon.TraceID) float64 {
				if mode == "none" {
					require.Empty(t, traceState)
					return 1 / 0.1 // what a collector configured with sampling.ratio 0.1 counts
				}
				w3c, err := sampling.NewW3CTraceState(traceState)
				require.NoError(t, err, traceState)
				th, ok := w3c.OTelValue().TValueThreshold()
				require.True(t, ok, "tracestate %q has a threshold", traceState)
				require.True(t, th.ShouldSample(sampling.TraceIDToRandomness(id)), "the span's threshold admits its trace id")
				return th.AdjustedCount()
			}
			got := consume(t, sink, weightOf)

			require.NotNil(t, s.Sampling)
			assert.Equal(t, 0.1, s.Sampling.Ratio)
			assert.Equal(t, mode, s.Sampling.TraceState)
			assert.Equal(t, "e666", s.Sampling.Threshold)
			if mode == "threshold" {
				assert.Equal(t, "ot=th:e666", s.Sampling.SpanTraceState)
			} else {
				assert.Empty(t, s.Sampling.SpanTraceState)
			}
			assert.EqualValues(t, sink.SpanCount(), s.Sampling.SentSpans)
			assert.Equal(t, s.Total.Spans, s.Sampling.SentSpans)
			assert.Equal(t, s.Total.Spans, s.Total.ExportedSpans)
			v := s.VLLM.Total
			assert.Equal(t, v.UnsampledSpans, s.Sampling.UnsampledSpans)
			assert.Equal(t, v.Finished, s.Total.Spans+v.UnsampledSpans, "finished requests: sent or unsampled")
			assert.InDelta(t, 0.1, float64(s.Total.Spans)/float64(v.Finished), 0.015)

			var violators []string
			for model, c := range got {
				r := s.Models[model]
				require.NotNil(t, r.Adjusted, model)
				assert.EqualValues(t, c.spans, r.Spans, model)
				assert.InEpsilon(t, c.weight, r.Adjusted.Spans, 1e-12, model)
				assert.InEpsilon(t, c.prompt, r.Adjusted.PromptTokens, 1e-12, model)
				assert.InEpsilon(t, c.output, r.Adjusted.CompletionTokens, 1e-12, model)
				assert.InEpsilon(t, c.violatedWeight, r.Adjusted.SLO[workload.ObjectiveAll].Violated, 1e-12, model)
				assert.InEpsilon(t, c.metWeight, r.Adjusted.SLO[workload.ObjectiveAll].Met, 1e-12, model)
				assert.EqualValues(t, len(c.violators), r.SLO[workload.ObjectiveAll].Violated, model)
				assert.Equal(t, vllmUnsampled(s, model)+r.Spans, s.VLLM.Models[model].Finished, model)
				violators = append(violators, c.violators...)
			}
			require.Len(t, got, 2)
			slices.Sort(violators)
			require.NotNil(t, s.SLOViolators)
			assert.NotEmpty(t, violators)
			assert.Equal(t, violators, s.SLOViolators.SpanIDs, "every SLO violator that was sent, by span id")
			assert.EqualValues(t, len(violators), s.SLOViolators.Spans)
			assert.False(t, s.SLOViolators.Truncated)
			assert.InEpsilon(t, s.Total.Adjusted.Spans, s.Models["a"].Adjusted.Spans+s.Models["b"].Adjusted.Spans, 1e-12)

			// exactly the generated spans whose trace id the threshold admits were sent
			th, err := sampling.TValueToThreshold(s.Sampling.Threshold)
			require.NoError(t, err)
			var wantSent int
			for _, rec := range generated(t, mustParse(t, args...)) {
				if th.ShouldSample(sampling.TraceIDToRandomness(rec.TraceID)) {
					wantSent++
				}
			}
			assert.EqualValues(t, wantSent, s.Total.Spans)
		})
	}
}

func vllmUnsampled(s Summary, model string) int64 { return s.VLLM.Models[model].UnsampledSpans }

func TestHeadSamplingIsDeterministic(t *testing.T) {
	args := append([]string{"--count", "3000", "--seed", "21", "--models", "a,b", "--n-prob", "0.3", "--workers", "3",
		"--batch", "17", "--sample-ratio", "0.25"}, sampledSLOFlags...)
	_, dry1, _ := runMain(t, append(args, "--dry-run")...)
	_, dry2, _ := runMain(t, append(args, "--dry-run", "--workers", "1")...)
	sink := &otlpsink.Sink{}
	code, sent, stderr := runMain(t, append(args, startReceiver(t, otlpsend.ProtocolHTTP, sink)...)...)
	require.Equal(t, ExitOK, code, stderr)
	_, none, _ := runMain(t, append(args, "--dry-run", "--sample-tracestate", "none")...)

	assert.Equal(t, dry1.Sampling, dry2.Sampling)
	assert.Equal(t, dry1.Total, dry2.Total)
	assert.Equal(t, dry1.Models, dry2.Models)
	assert.Equal(t, dry1.SLOViolators, dry2.SLOViolators)
	// a dry run predicts what a sending run sends
	assert.Equal(t, dry1.Total.Adjusted, sent.Total.Adjusted)
	assert.Equal(t, dry1.SLOViolators, sent.SLOViolators)
	assert.Equal(t, dry1.Sampling, sent.Sampling)
	// th:c is exactly 25 %: both modes send the same spans and count them the same
	assert.Equal(t, "ot=th:c", dry1.Sampling.SpanTraceState)
	assert.Equal(t, 4.0, dry1.Sampling.AdjustedCount)
	assert.Equal(t, dry1.Total.Adjusted, none.Total.Adjusted)
	assert.Equal(t, float64(dry1.Total.Spans)*4, dry1.Total.Adjusted.Spans)

	_, other, _ := runMain(t, "--dry-run", "--count", "3000", "--seed", "22", "--models", "a,b", "--n-prob", "0.3", "--sample-ratio", "0.25")
	assert.NotEqual(t, dry1.Total.Spans, other.Total.Spans, "another seed samples other spans")
}

func TestHeadSamplingWithSpanLoss(t *testing.T) {
	base := []string{"--count", "3000", "--seed", "5", "--models", "a,b", "--n-prob", "0.3"}
	sentIDs := func(args ...string) (map[pcommon.SpanID]bool, Summary) {
		sink := &otlpsink.Sink{}
		code, s, stderr := runMain(t, append(append(startReceiver(t, otlpsend.ProtocolGRPC, sink), base...), args...)...)
		require.Equal(t, ExitOK, code, stderr)
		ids := map[pcommon.SpanID]bool{}
		for _, rs := range sink.Traces().ResourceSpans().All() {
			for _, span := range rs.ScopeSpans().At(0).Spans().All() {
				ids[span.SpanID()] = true
			}
		}
		return ids, s
	}
	lossyIDs, lossy := sentIDs("--span-loss", "0.2")
	bothIDs, both := sentIDs("--span-loss", "0.2", "--sample-ratio", "0.5")
	sampledIDs, sampled := sentIDs("--sample-ratio", "0.5")

	assert.Equal(t, lossy.VLLM.Total.Counts, both.VLLM.Total.Counts, "vLLM counts every request")
	v := both.VLLM.Total
	assert.Equal(t, v.Finished, both.Total.Spans+v.LostSpans+v.UnsampledSpans)
	assert.Equal(t, sampled.VLLM.Total.UnsampledSpans, v.UnsampledSpans, "the sampling decision does not depend on the loss")
	assert.Equal(t, sampled.Total.Spans, both.Total.Spans+v.LostSpans, "an unsampled span is never created, so never lost")
	want := map[pcommon.SpanID]bool{}
	for id := range lossyIDs {
		if sampledIDs[id] {
			want[id] = true
		}
	}
	assert.Equal(t, want, bothIDs, "the same seed loses the same spans with or without sampling")
	assert.Positive(t, v.LostSpans)
}

func TestNoSamplingByDefault(t *testing.T) {
	sink := &otlpsink.Sink{}
	args := append(startReceiver(t, otlpsend.ProtocolGRPC, sink), "--count", "300", "--seed", "3")
	code, s, stderr := runMain(t, args...)
	require.Equal(t, ExitOK, code, stderr)
	assert.Nil(t, s.Sampling)
	assert.Nil(t, s.Total.Adjusted)
	assert.Nil(t, s.SLOViolators, "no SLO set")
	assert.Zero(t, s.VLLM.Total.UnsampledSpans)
	assert.Equal(t, s.VLLM.Total.Finished, s.Total.Spans)
	for _, rs := range sink.Traces().ResourceSpans().All() {
		for _, span := range rs.ScopeSpans().At(0).Spans().All() {
			assert.Empty(t, span.TraceState().AsRaw())
		}
	}
}

func TestSampleRatioOneSendsEverySpanWithThresholdZero(t *testing.T) {
	sink := &otlpsink.Sink{}
	args := append(startReceiver(t, otlpsend.ProtocolGRPC, sink), "--count", "300", "--seed", "3", "--sample-ratio", "1")
	code, s, stderr := runMain(t, args...)
	require.Equal(t, ExitOK, code, stderr)
	require.NotNil(t, s.Sampling)
	assert.Zero(t, s.Sampling.UnsampledSpans)
	assert.Equal(t, s.VLLM.Total.Finished, s.Total.Spans)
	assert.Equal(t, float64(s.Total.Spans), s.Total.Adjusted.Spans)
	assert.Equal(t, float64(s.Total.PromptTokens), s.Total.Adjusted.PromptTokens)
	n := 0
	for _, rs := range sink.Traces().ResourceSpans().All() {
		for _, span := range rs.ScopeSpans().At(0).Spans().All() {
			assert.Equal(t, "ot=th:0", span.TraceState().AsRaw())
			n++
		}
	}
	assert.EqualValues(t, s.Total.Spans, n)
}

func TestSLOViolatorsWithoutSampling(t *testing.T) {
	args := append([]string{"--count", "500", "--seed", "13", "--n-prob", "0.2"}, sampledSLOFlags...)
	_, s, _ := runMain(t, append(args, "--dry-run")...)
	require.NotNil(t, s.SLOViolators)
	assert.Nil(t, s.Sampling)
	var want []string
	slo := mustParse(t, args...).SLO
	for _, rec := range generated(t, mustParse(t, args...)) {
		if slo.Violates(&rec) {
			want = append(want, rec.SpanID.String())
		}
	}
	slices.Sort(want)
	assert.NotEmpty(t, want)
	assert.Equal(t, want, s.SLOViolators.SpanIDs)
	assert.Equal(t, s.Total.SLO[workload.ObjectiveAll].Violated, s.SLOViolators.Spans)
}

func TestViolatorListIsBounded(t *testing.T) {
	l := &violatorList{limit: 5}
	l.add(nil)
	l.add([]pcommon.SpanID{{1}, {2}, {3}})
	assert.False(t, l.truncated)
	l.add([]pcommon.SpanID{{4}, {5}, {6}})
	assert.True(t, l.truncated)
	l.add([]pcommon.SpanID{{7}})
	assert.Equal(t, []pcommon.SpanID{{1}, {2}, {3}, {4}, {5}}, l.ids)
}

func TestTextSummaryShowsSampling(t *testing.T) {
	var stdout bytes.Buffer
	code := Main(context.Background(), []string{"--dry-run", "--seed", "9", "--count", "2000", "--models", "m1,m2",
		"--slo-ttft", "100ms", "--sample-ratio", "0.5"}, &stdout, io.Discard)
	require.Equal(t, ExitOK, code)
	out := stdout.String()
	for _, want := range []string{"head sampling at 0.5 (threshold 8, probability 0.5), tracestate ot=th:8", "each sent span counts 2",
		"adjusted expected totals", "spans unsampled", "(all)"} {
		assert.Contains(t, out, want)
	}
}
