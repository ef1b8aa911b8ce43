package workload

import (
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/otelcol-vllm/otelcol-vllm/internal/vllmrequest/vllmrequesttest"
)

// recomputed is an independent accounting made only from what is on the exported spans.
type recomputed struct {
	requests                              map[string]bool
	spans, promptTokens, completionTokens int64
	sums                                  map[string]int64
	counts                                map[string]int64
	met, violated                         map[string]int64
}

func newRecomputed() *recomputed {
	return &recomputed{
		requests: map[string]bool{}, sums: map[string]int64{}, counts: map[string]int64{},
		met: map[string]int64{}, violated: map[string]int64{},
	}
}

func microseconds(seconds float64) int64 { return int64(math.Round(seconds * 1e6)) }

// add reads one span like a consumer would: V1 carries prefill/decode/inference, V0 gets them derived.
func (rc *recomputed) add(t *testing.T, span ptrace.Span, slo SLO) {
	a := span.Attributes()
	num := func(k string) (float64, bool) {
		v, ok := a.Get(k)
		if !ok {
			return 0, false
		}
		if k == vllmrequesttest.AttrPromptTokens || k == vllmrequesttest.AttrCompletionTokens {
			return float64(v.Int()), true
		}
		return v.Double(), true
	}
	must := func(k string) float64 {
		v, ok := num(k)
		require.True(t, ok, k)
		return v
	}
	id, _ := a.Get(vllmrequesttest.AttrRequestID)
	rc.requests[id.Str()] = true
	rc.spans++
	rc.promptTokens += int64(must(vllmrequesttest.AttrPromptTokens))
	completion := int64(must(vllmrequesttest.AttrCompletionTokens))
	rc.completionTokens += completion

	values := map[string]float64{"ttft": must(vllmrequesttest.AttrTTFT), "e2e": must(vllmrequesttest.AttrE2E), "queue": must(vllmrequesttest.AttrQueue)}
	if _, v1 := num(vllmrequesttest.AttrPrefill); v1 {
		values["prefill"], values["decode"], values["inference"] = must(vllmrequesttest.AttrPrefill), must(vllmrequesttest.AttrDecode), must(vllmrequesttest.AttrInference)
	} else {
		values["prefill"] = values["ttft"] - values["queue"]
		values["decode"] = values["e2e"] - values["ttft"]
		values["inference"] = values["prefill"] + values["decode"]
	}
	if completion >= 2 {
		values["tpot"] = values["decode"] / float64(completion-1)
	}
	for k, v := range values {
		rc.sums[k] += microseconds(v)
		rc.counts[k]++
	}
	if !slo.Any() {
		return
	}
	allMet := true
	for name, threshold := range slo.Thresholds() {
		v, ok := values[name]
		if !ok {
			require.Equal(t, "tpot", name)
			v = 0 // at most one output token: TPOT 0, as vLLM's serving benchmark counts it
		}
		// Compared in float seconds, the way a collector compares against a configured duration.
		if v <= threshold.Seconds() {
			rc.met[name]++
		} else {
			rc.violated[name]++
			allMet = false
		}
	}
	if allMet {
		rc.met[ObjectiveAll]++
	} else {
		rc.violated[ObjectiveAll]++
	}
}

func (rc *recomputed) assertEqual(t *testing.T, got Report) {
	t.Helper()
	assert.Equal(t, int64(len(rc.requests)), got.Requests, "requests")
	assert.Equal(t, rc.spans, got.Spans, "spans")
	assert.Equal(t, rc.promptTokens, got.PromptTokens, "prompt tokens")
	assert.Equal(t, rc.completionTokens, got.CompletionTokens, "completion tokens")
	for name, stat := range map[string]StatReport{
		"ttft": got.TTFT, "tpot": got.TPOT, "e2e": got.E2E, "queue": got.Queue,
		"prefill": got.Prefill, "decode": got.Decode, "inference": got.Inference,
	} {
		assert.Equal(t, rc.counts[name], stat.Count, name+" count")
		assert.Equal(t, rc.sums[name], stat.SumUS, name+" sum")
		assert.InDelta(t, float64(rc.sums[name])/1e6, stat.SumSeconds, 1e-6, name+" sum seconds")
	}
	for name, outcome := range got.SLO {
		assert.Equal(t, rc.met[name], outcome.Met, name+" met")
		assert.Equal(t, rc.violated[name], outcome.Violated, name+" violated")
	}
}

func TestTallyMatchesRecomputationFromSpans(t *testing.T) {
	slo := SLO{TTFT: 100 * time.Millisecond, TPOT: 30 * time.Millisecond, E2E: 4 * time.Second, Queue: 20 * time.Millisecond}
	for _, shape := range Shapes() {
		t.Run(shape.String(), func(t *testing.T) {
			recs := generate(t, Config{Shape: shape, Profile: ProfileMixed, Models: testModels, Seed: 21, NProb: 0.25, GreedyProb: 0.2}, 4000)
			tally := NewTally(len(testModels), slo)
			for i := range recs {
				tally.Add(&recs[i])
			}
			td := NewSpanBuilder(shape, testModels, ResourceConfig{ServiceName: "s"}, AnchorArrival).Build(recs)

			overall := newRecomputed()
			perModel := map[string]*recomputed{}
			forEachSpan(td, func(model string, span ptrace.Span) {
				overall.add(t, span, slo)
				if perModel[model] == nil {
					perModel[model] = newRecomputed()
				}
				perModel[model].add(t, span, slo)
			})
			total := tally.Total.Report(slo)
			require.Len(t, total.SLO, 5, "four objectives and all")
			assert.Positive(t, total.SLO["all"].Met)
			assert.Positive(t, total.SLO["all"].Violated)
			overall.assertEqual(t, total)
			require.Len(t, perModel, len(testModels))
			for i, model := range testModels {
				perModel[model].assertEqual(t, tally.Models[i].Report(slo))
			}
		})
	}
}

func TestSLOAccounting(t *testing.T) {
	// One span with TTFT 100 ms, e2e 2 s, queue 10 ms and TPOT 40 ms over 11 tokens.
	base := Record{QueueUS: 10_000, PrefillUS: 80_000, TTFTUS: 100_000, TPOTUS: 40_000, DecodeUS: 400_000, E2EUS: 2_000_000, CompletionTokens: 11, FirstOfRequest: true}
	oneToken := base
	oneToken.CompletionTokens, oneToken.TPOTUS, oneToken.DecodeUS = 1, 0, 0

	tests := []struct {
		name string
		slo  SLO
		rec  Record
		want map[string]Outcome
	}{
		{"no objectives", SLO{}, base, nil},
		{"equal to threshold meets", SLO{TTFT: 100 * time.Millisecond}, base,
			map[string]Outcome{"ttft": {Met: 1}, "all": {Met: 1}}},
		{"one microsecond over violates", SLO{TTFT: 99_999 * time.Microsecond}, base,
			map[string]Outcome{"ttft": {Violated: 1}, "all": {Violated: 1}}},
		{"sub-microsecond threshold", SLO{TTFT: 99_999_999 * time.Nanosecond}, base,
			map[string]Outcome{"ttft": {Violated: 1}, "all": {Violated: 1}}},
		{"one violation fails all", SLO{TTFT: time.Second, TPOT: 30 * time.Millisecond, E2E: 5 * time.Second, Queue: time.Second}, base,
			map[string]Outcome{"ttft": {Met: 1}, "tpot": {Violated: 1}, "e2e": {Met: 1}, "queue": {Met: 1}, "all": {Violated: 1}}},
		{"every objective met", SLO{TTFT: time.Second, TPOT: 40 * time.Millisecond, E2E: 2 * time.Second, Queue: 10 * time.Millisecond}, base,
			map[string]Outcome{"ttft": {Met: 1}, "tpot": {Met: 1}, "e2e": {Met: 1}, "queue": {Met: 1}, "all": {Met: 1}}},
		{"1-token output meets TPOT and all", SLO{TPOT: time.Millisecond}, oneToken,
			map[string]Outcome{"tpot": {Met: 1}, "all": {Met: 1}}},
		{"1-token output still judged on the others", SLO{TPOT: time.Millisecond, Queue: time.Millisecond}, oneToken,
			map[string]Outcome{"tpot": {Met: 1}, "queue": {Violated: 1}, "all": {Violated: 1}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tally := NewTally(1, tt.slo)
			tally.Add(&tt.rec)
			got := tally.Total.Report(tt.slo)
			assert.Equal(t, tt.want, got.SLO)
			assert.Equal(t, got.SLO, tally.Models[0].Report(tt.slo).SLO)
			assert.Equal(t, tt.want != nil && tt.want[ObjectiveAll].Violated == 1, tt.slo.Violates(&tt.rec), "Violates")
		})
	}
}

func TestTallyMergeIsOrderIndependent(t *testing.T) {
	slo := SLO{TTFT: 200 * time.Millisecond, TPOT: 25 * time.Millisecond}
	recs := generate(t, Config{Shape: ShapeV1, Profile: ProfileMixed, Models: testModels, Seed: 31, NProb: 0.3}, 3000)
	whole := NewTally(len(testModels), slo)
	parts := []*Tally{NewTally(len(testModels), slo), NewTally(len(testModels), slo), NewTally(len(testModels), slo)}
	for i := range recs {
		whole.Add(&recs[i])
		parts[i%len(parts)].Add(&recs[len(recs)-1-i])
	}
	parts[0].AddExported(0, 5)
	parts[2].AddFailed(1, 3)
	whole.AddExported(0, 5)
	whole.AddFailed(1, 3)

	forward, backward := NewTally(len(testModels), slo), NewTally(len(testModels), slo)
	for i := range parts {
		forward.Merge(parts[i])
		backward.Merge(parts[len(parts)-1-i])
	}
	assert.Equal(t, whole.Total, forward.Total)
	assert.Equal(t, whole.Models, forward.Models)
	assert.Equal(t, forward, backward)
	assert.Equal(t, int64(3), forward.Total.FailedSpans)
	assert.Equal(t, int64(3), forward.Models[1].FailedSpans)
}

func TestAddRejected(t *testing.T) {
	tally := NewTally(2, SLO{})
	tally.AddExported(0, 10)
	tally.AddExported(1, 5)
	tally.AddRejected(4)
	assert.Equal(t, int64(11), tally.Total.ExportedSpans)
	assert.Equal(t, int64(4), tally.Total.FailedSpans)
	assert.Equal(t, int64(10), tally.Models[0].ExportedSpans)
}

func TestAdjusted(t *testing.T) {
	slo := SLO{TTFT: 150 * time.Millisecond, TPOT: 30 * time.Millisecond}
	recs := generate(t, Config{Shape: ShapeV1, Profile: ProfileChat, Models: testModels, Seed: 5, NProb: 0.2}, 500)
	tally := NewTally(len(testModels), slo)
	for i := range recs {
		tally.Add(&recs[i])
	}
	for _, w := range []float64{1, 4.0 / 3, 10} {
		weigh := func(n int64) float64 { return float64(n) * w }
		r := tally.Total.Report(slo)
		got := tally.Total.Adjusted(slo, weigh)
		assert.Equal(t, float64(r.Spans)*w, got.Spans)
		assert.Equal(t, float64(r.PromptTokens)*w, got.PromptTokens)
		assert.Equal(t, float64(r.CompletionTokens)*w, got.CompletionTokens)
		assert.Equal(t, AdjustedStat{Count: float64(r.TTFT.Count) * w, SumSeconds: float64(r.TTFT.SumUS) * w / 1e6}, got.TTFT)
		assert.Equal(t, float64(r.TPOT.Count)*w, got.TPOT.Count)
		require.Len(t, got.SLO, 3, "ttft, tpot and all")
		for name, o := range r.SLO {
			assert.Equal(t, AdjustedOutcome{Met: float64(o.Met) * w, Violated: float64(o.Violated) * w}, got.SLO[name], name)
		}
		assert.Positive(t, got.SLO[ObjectiveAll].Violated)
	}
	assert.Nil(t, tally.Total.Adjusted(SLO{}, func(n int64) float64 { return float64(n) }).SLO)
}
