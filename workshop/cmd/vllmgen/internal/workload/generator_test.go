package workload

import (
	"math"
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/open-telemetry/opentelemetry-collector-contrib/pkg/pdatatest/ptracetest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/otelcol-vllm/otelcol-vllm/internal/vllmrequest/vllmrequesttest"
)

var testModels = []string{"meta-llama/Llama-3.1-8B-Instruct", "Qwen/Qwen2.5-7B-Instruct"}

func generate(t testing.TB, cfg Config, requests int) []Record {
	t.Helper()
	g, err := NewGenerator(cfg)
	require.NoError(t, err)
	var recs []Record
	for range requests {
		recs = g.Next(recs)
	}
	return recs
}

func TestConfigValidate(t *testing.T) {
	valid := Config{Models: []string{"m"}}
	tests := []struct {
		name   string
		modify func(*Config)
		want   string
	}{
		{"valid", func(*Config) {}, ""},
		{"no models", func(c *Config) { c.Models = nil }, "at least one model"},
		{"empty model", func(c *Config) { c.Models = []string{"a", ""} }, "must not be empty"},
		{"n prob above 1", func(c *Config) { c.NProb = 1.5 }, "n probability 1.5"},
		{"greedy prob NaN", func(c *Config) { c.GreedyProb = math.NaN() }, "greedy probability NaN"},
		{"bad shape", func(c *Config) { c.Shape = 9 }, "invalid shape"},
		{"bad profile", func(c *Config) { c.Profile = -1 }, "invalid profile"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := valid
			tt.modify(&cfg)
			_, err := NewGenerator(cfg)
			if tt.want == "" {
				assert.NoError(t, err)
			} else {
				assert.ErrorContains(t, err, tt.want)
			}
		})
	}
}

func TestLatencyRelations(t *testing.T) {
	for _, shape := range Shapes() {
		for _, profile := range []Profile{ProfileChat, ProfileBatch, ProfileMixed} {
			t.Run(shape.String()+"/"+profile.String(), func(t *testing.T) {
				recs := generate(t, Config{Shape: shape, Profile: profile, Models: testModels, Seed: 11, NProb: 0.2, GreedyProb: 0.2}, 3000)
				for i := range recs {
					r := &recs[i]
					require.GreaterOrEqual(t, r.CompletionTokens, int64(1))
					require.LessOrEqual(t, r.CompletionTokens, r.MaxTokens*max(1, r.NumSequences), "each sequence stops at max_tokens")
					require.Positive(t, r.QueueUS)
					require.Positive(t, r.PrefillUS)
					require.Equal(t, r.PrefillUS+r.DecodeUS, r.InferenceUS())
					require.GreaterOrEqual(t, r.TTFTUS, r.QueueUS+r.PrefillUS, "ttft ≥ queue + prefill")
					require.GreaterOrEqual(t, r.E2EUS, r.TTFTUS+r.DecodeUS, "e2e ≥ ttft + decode")
					require.Greater(t, r.SpanDurationUS, r.E2EUS, "span end − start > e2e")
					require.GreaterOrEqual(t, r.RequestDurationUS, r.SpanDurationUS)
					if r.HasTPOT() {
						require.Equal(t, r.DecodeUS, r.TPOTUS*(r.CompletionTokens-1), "TPOT is exact")
						require.NotZero(t, r.TPOTUS%offGridModulus)
					} else if !shape.IsV0() {
						require.Zero(t, r.DecodeUS, "a 1-token V1 output has no decode phase")
					}
					for _, v := range []int64{r.QueueUS, r.TTFTUS, r.E2EUS} {
						require.NotZero(t, v%offGridModulus, "SLO-checked values avoid multiples of 10 µs")
					}
					if shape.IsV0() {
						require.Equal(t, r.TTFTUS-r.QueueUS, r.PrefillUS, "V0 prefill = ttft − queue")
						require.Equal(t, r.E2EUS-r.TTFTUS, r.DecodeUS, "V0 decode = e2e − ttft")
						require.Positive(t, r.SchedulerUS)
						require.Less(t, r.SchedulerUS, r.E2EUS)
					} else {
						require.Zero(t, r.SchedulerUS)
					}
					if shape == ShapeV0Detailed {
						require.Positive(t, r.ForwardUS)
						require.Less(t, r.ForwardUS, r.ExecuteUS, "forward < execute")
						require.Less(t, r.ExecuteUS, r.E2EUS, "execute < e2e")
					} else {
						require.Zero(t, r.ExecuteUS)
					}
				}
			})
		}
	}
}

// The relations must also hold for the float seconds written on the spans, as a consumer reads them.
func TestSpanValuesKeepRelations(t *testing.T) {
	for _, shape := range []Shape{ShapeV1, ShapeV1LegacyScope} {
		t.Run(shape.String(), func(t *testing.T) {
			recs := generate(t, Config{Shape: shape, Models: testModels, Seed: 3, NProb: 0.3}, 2000)
			for i := range recs {
				recs[i].ReleasedUnixNano = 1_785_000_000_000_000_000
			}
			td := NewSpanBuilder(shape, testModels, ResourceConfig{ServiceName: "s"}, AnchorArrival).Build(recs)
			forEachSpan(td, func(_ string, span ptrace.Span) {
				a := span.Attributes()
				get := func(k string) float64 {
					v, ok := a.Get(k)
					require.True(t, ok, k)
					return v.Double()
				}
				assert.InDelta(t, get(vllmrequesttest.AttrPrefill)+get(vllmrequesttest.AttrDecode), get(vllmrequesttest.AttrInference), 1e-9)
				assert.GreaterOrEqual(t, get(vllmrequesttest.AttrTTFT), get(vllmrequesttest.AttrQueue)+get(vllmrequesttest.AttrPrefill)-1e-9)
				assert.GreaterOrEqual(t, get(vllmrequesttest.AttrE2E), get(vllmrequesttest.AttrTTFT)+get(vllmrequesttest.AttrDecode)-1e-9)
				duration := float64(span.EndTimestamp()-span.StartTimestamp()) / 1e9
				assert.Greater(t, duration, get(vllmrequesttest.AttrE2E))
			})
		})
	}
}

func forEachSpan(td ptrace.Traces, f func(model string, span ptrace.Span)) {
	for _, rs := range td.ResourceSpans().All() {
		model := ""
		if v, ok := rs.Resource().Attributes().Get(vllmrequesttest.AttrRequestModel); ok {
			model = v.Str()
		}
		for _, ss := range rs.ScopeSpans().All() {
			for _, span := range ss.Spans().All() {
				m := model
				if v, ok := span.Attributes().Get(vllmrequesttest.AttrResponseModel); ok {
					m = v.Str()
				}
				f(m, span)
			}
		}
	}
}

func TestSeedReproducibility(t *testing.T) {
	cfg := Config{Shape: ShapeV1, Profile: ProfileMixed, Models: testModels, Seed: 42, NProb: 0.3, GreedyProb: 0.3}
	a := generate(t, cfg, 500)
	b := generate(t, cfg, 500)
	require.Equal(t, a, b)

	build := func(recs []Record) ptrace.Traces {
		for i := range recs {
			recs[i].ReleasedUnixNano = 1_700_000_000_000_000_000 + int64(i)*1000
		}
		return NewSpanBuilder(cfg.Shape, cfg.Models, ResourceConfig{ServiceName: "s"}, AnchorArrival).Build(recs)
	}
	require.NoError(t, ptracetest.CompareTraces(build(a), build(b)))

	cfg.Seed = 43
	c := generate(t, cfg, 500)
	assert.NotEqual(t, a[0].RequestID, c[0].RequestID)
	assert.NotEqual(t, a[0].TTFTUS, c[0].TTFTUS)
}

func TestNFanOut(t *testing.T) {
	tests := []struct {
		shape            Shape
		nProb            float64
		wantSpansPerReq  int
		wantN            int64
		wantNumSequences int64
		wantBestOf       int64
	}{
		{ShapeV1, 1, 2, 1, 0, 0},
		{ShapeV1LegacyScope, 1, 2, 1, 0, 0},
		{ShapeV0, 1, 1, 2, 2, 0},
		{ShapeV0Detailed, 1, 1, 2, 2, 2},
		{ShapeV1, 0, 1, 1, 0, 0},
		{ShapeV0, 0, 1, 1, 1, 0},
		{ShapeV0Detailed, 0, 1, 1, 1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.shape.String(), func(t *testing.T) {
			const requests = 200
			g, err := NewGenerator(Config{Shape: tt.shape, Models: testModels, Seed: 5, NProb: tt.nProb})
			require.NoError(t, err)
			seen := map[string]bool{}
			for range requests {
				recs := g.Next(nil)
				require.Len(t, recs, tt.wantSpansPerReq)
				assert.True(t, recs[0].FirstOfRequest)
				assert.False(t, seen[recs[0].RequestID], "request ids are unique per API call")
				seen[recs[0].RequestID] = true
				for i, r := range recs {
					assert.Equal(t, i == 0, r.FirstOfRequest)
					assert.Equal(t, recs[0].RequestID, r.RequestID, "children share the API request id")
					assert.Equal(t, recs[0].PromptTokens, r.PromptTokens, "each child carries the full prompt")
					assert.Equal(t, recs[0].Model, r.Model)
					assert.Equal(t, tt.wantN, r.N)
					assert.Equal(t, tt.wantNumSequences, r.NumSequences)
					assert.Equal(t, tt.wantBestOf, r.BestOf)
					if i > 0 {
						assert.NotEqual(t, recs[0].SpanID, r.SpanID)
					}
				}
				if tt.shape.IsV0() && tt.nProb == 1 {
					assert.GreaterOrEqual(t, recs[0].CompletionTokens, int64(2), "two sequences' tokens are summed")
				}
			}
		})
	}
}

func TestNProbability(t *testing.T) {
	recs := generate(t, Config{Shape: ShapeV1, Models: testModels, Seed: 9, NProb: 0.3}, 10000)
	share := float64(len(recs)-10000) / 10000
	assert.InDelta(t, 0.3, share, 0.02)
}

func TestGreedyOmission(t *testing.T) {
	for _, shape := range Shapes() {
		t.Run(shape.String(), func(t *testing.T) {
			for _, greedy := range []float64{0, 1} {
				recs := generate(t, Config{Shape: shape, Models: testModels, Seed: 2, GreedyProb: greedy}, 50)
				td := NewSpanBuilder(shape, testModels, ResourceConfig{ServiceName: "s"}, AnchorArrival).Build(recs)
				forEachSpan(td, func(_ string, span ptrace.Span) {
					v, ok := span.Attributes().Get(vllmrequesttest.AttrTemperature)
					switch {
					case greedy == 0:
						require.True(t, ok)
						assert.Positive(t, v.Double())
					case shape.IsV0():
						require.True(t, ok, "V0 writes temperature 0.0")
						assert.Zero(t, v.Double())
					default:
						assert.False(t, ok, "V1 omits a falsy temperature")
					}
					_, hasTopP := span.Attributes().Get(vllmrequesttest.AttrTopP)
					assert.True(t, hasTopP)
				})
			}
		})
	}
}

// The request ids of vLLM 0.32's spans (testdata/vllm/0.32.0/spans.json).
var (
	vllmChatID       = regexp.MustCompile(`^chatcmpl-[0-9a-f]{16}$`)
	vllmCompletionID = regexp.MustCompile(`^cmpl-[0-9a-f]{16}-0$`)
)

func TestRequestIDPrefixes(t *testing.T) {
	recs := generate(t, Config{Models: testModels, Seed: 4}, 4000)
	var chat, completion int
	for _, r := range recs {
		switch {
		case vllmChatID.MatchString(r.RequestID):
			chat++
		case vllmCompletionID.MatchString(r.RequestID):
			completion++
		default:
			t.Fatalf("unexpected request id %q", r.RequestID)
		}
	}
	assert.InDelta(t, completionPrefixShare, float64(chat)/float64(len(recs)), 0.03)
	assert.Positive(t, completion)
}

func TestOneTokenOutputs(t *testing.T) {
	for _, profile := range []Profile{ProfileChat, ProfileBatch} {
		recs := generate(t, Config{Profile: profile, Models: testModels, Seed: 8}, 5000)
		var oneToken int
		for _, r := range recs {
			if r.CompletionTokens == 1 {
				oneToken++
				assert.False(t, r.HasTPOT())
			}
		}
		assert.Positive(t, oneToken, profile.String())
	}
}

func quantile(values []float64, q float64) float64 {
	slices.Sort(values)
	return values[int(q*float64(len(values)-1))]
}

// The README documents these ranges.
func TestProfileDistributions(t *testing.T) {
	type ranges struct{ ttftP5, ttftP95, tpotP5, tpotP95 time.Duration }
	tests := []struct {
		profile Profile
		want    ranges
	}{
		{ProfileChat, ranges{40 * time.Millisecond, 400 * time.Millisecond, 10 * time.Millisecond, 60 * time.Millisecond}},
		{ProfileBatch, ranges{300 * time.Millisecond, 5 * time.Second, 20 * time.Millisecond, 150 * time.Millisecond}},
		{ProfileMixed, ranges{40 * time.Millisecond, 5 * time.Second, 10 * time.Millisecond, 150 * time.Millisecond}},
	}
	medianTTFT := map[Profile]float64{}
	for _, tt := range tests {
		t.Run(tt.profile.String(), func(t *testing.T) {
			recs := generate(t, Config{Profile: tt.profile, Models: testModels, Seed: 1}, 10000)
			var ttft, tpot []float64
			for _, r := range recs {
				ttft = append(ttft, float64(r.TTFTUS)/1e6)
				if r.HasTPOT() {
					tpot = append(tpot, float64(r.TPOTUS)/1e6)
				}
			}
			assert.GreaterOrEqual(t, quantile(ttft, 0.05), tt.want.ttftP5.Seconds())
			assert.LessOrEqual(t, quantile(ttft, 0.95), tt.want.ttftP95.Seconds())
			assert.GreaterOrEqual(t, quantile(tpot, 0.05), tt.want.tpotP5.Seconds())
			assert.LessOrEqual(t, quantile(tpot, 0.95), tt.want.tpotP95.Seconds())
			medianTTFT[tt.profile] = quantile(ttft, 0.5)
		})
	}
	assert.Less(t, medianTTFT[ProfileChat], medianTTFT[ProfileMixed])
	assert.Less(t, medianTTFT[ProfileMixed]*3, medianTTFT[ProfileBatch])
}

func TestAnchors(t *testing.T) {
	recs := generate(t, Config{Shape: ShapeV1, Models: testModels, Seed: 6, NProb: 1}, 1)
	require.Len(t, recs, 2)
	const released = int64(1_785_000_000_000_000_000)
	for i := range recs {
		recs[i].ReleasedUnixNano = released
	}
	longest := max(recs[0].SpanDurationUS, recs[1].SpanDurationUS) * 1000

	for _, tt := range []struct {
		anchor    Anchor
		wantStart int64
	}{
		{AnchorArrival, released},
		{AnchorFinish, released - longest},
	} {
		t.Run(tt.anchor.String(), func(t *testing.T) {
			td := NewSpanBuilder(ShapeV1, testModels, ResourceConfig{ServiceName: "s"}, tt.anchor).Build(recs)
			var latestEnd int64
			i := 0
			forEachSpan(td, func(_ string, span ptrace.Span) {
				assert.Equal(t, tt.wantStart, int64(span.StartTimestamp()), "children share the arrival time")
				assert.Equal(t, recs[i].SpanDurationUS*1000, int64(span.EndTimestamp()-span.StartTimestamp()))
				latestEnd = max(latestEnd, int64(span.EndTimestamp()))
				i++
			})
			if tt.anchor == AnchorFinish {
				assert.Equal(t, released, latestEnd)
			}
		})
	}
}

// TestTraceIDRandomness checks that every one of the lower 56 bits of the trace ids, where a consistent
// probability sampler takes its randomness, is set in half of the ids, and that the ids are unique and valid.
func TestTraceIDRandomness(t *testing.T) {
	recs := generate(t, Config{Shape: ShapeV1, Models: testModels, Seed: 99, NProb: 0.2}, 20_000)
	var setBits [56]int
	seen := make(map[[16]byte]bool, len(recs))
	for i := range recs {
		id := recs[i].TraceID
		require.False(t, id.IsEmpty())
		require.False(t, seen[id], "duplicate trace id %s", id)
		seen[id] = true
		lower := uint64(0)
		for _, b := range id[9:] {
			lower = lower<<8 | uint64(b)
		}
		for bit := range setBits {
			if lower&(1<<bit) != 0 {
				setBits[bit]++
			}
		}
	}
	n := float64(len(recs))
	for bit, c := range setBits {
		// 5 standard deviations of a fair coin over n ids
		assert.InDelta(t, 0.5, float64(c)/n, 5*0.5/math.Sqrt(n), "bit %d of the trace ids' randomness", bit)
	}
}

func TestSpanTraceState(t *testing.T) {
	recs := generate(t, Config{Shape: ShapeV1, Models: testModels, Seed: 8, NProb: 0.5}, 20)
	for _, tt := range []struct {
		name, traceState string
	}{
		{"none by default", ""},
		{"the sampler's entry", "ot=th:e666"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b := NewSpanBuilder(ShapeV1, testModels, ResourceConfig{ServiceName: "s"}, AnchorArrival)
			b.SetTraceState(tt.traceState)
			spans := 0
			forEachSpan(b.Build(recs), func(_ string, span ptrace.Span) {
				assert.Equal(t, tt.traceState, span.TraceState().AsRaw())
				spans++
			})
			assert.Equal(t, len(recs), spans)
		})
	}
}
