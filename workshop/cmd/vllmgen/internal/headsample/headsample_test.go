package headsample

import (
	"math"
	"testing"

	"github.com/open-telemetry/opentelemetry-collector-contrib/pkg/sampling"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"

	"github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmgen/internal/workload"
)

func TestThresholds(t *testing.T) {
	tests := []struct {
		ratio         float64
		tvalue        string
		adjustedCount float64
	}{
		{0.5, "8", 2},
		{0.25, "c", 4},
		{0.125, "e", 8},
		{1, "0", 1},
		{0.75, "4", 4.0 / 3},
		{0.1, "e666", 65536.0 / 6554}, // 4 hex digits: the probability is (0x10000 − 0xe666) / 0x10000
	}
	for _, tt := range tests {
		t.Run(tt.tvalue, func(t *testing.T) {
			s, err := New(tt.ratio, ModeThreshold)
			require.NoError(t, err)
			assert.Equal(t, tt.tvalue, s.TValue())
			assert.Equal(t, "ot=th:"+tt.tvalue, s.TraceState())
			assert.Equal(t, tt.adjustedCount, s.AdjustedCount())
			assert.Equal(t, tt.ratio, s.Ratio())

			// What a consumer reads back from the written tracestate is the same adjusted count.
			w3c, err := sampling.NewW3CTraceState(s.TraceState())
			require.NoError(t, err)
			th, ok := w3c.OTelValue().TValueThreshold()
			require.True(t, ok)
			assert.Equal(t, tt.adjustedCount, th.AdjustedCount())

			none, err := New(tt.ratio, ModeNone)
			require.NoError(t, err)
			assert.Empty(t, none.TraceState(), "the Python SDK's ratio sampler writes no tracestate")
			assert.Equal(t, 1/tt.ratio, none.AdjustedCount())
			assert.Equal(t, tt.tvalue, none.TValue(), "the same decision in both modes")
		})
	}
}

func TestWeigh(t *testing.T) {
	s, err := New(0.75, ModeThreshold)
	require.NoError(t, err)
	assert.Equal(t, 400.0, s.Weigh(300), "300 spans at th:4 stand for 400 requests")
	n, err := New(0.1, ModeNone)
	require.NoError(t, err)
	assert.Equal(t, 20_000.0, n.Weigh(2000))
}

func TestBadRatios(t *testing.T) {
	for _, ratio := range []float64{0, -0.1, 1.0000001, 2, math.NaN(), math.Inf(1), math.Inf(-1)} {
		_, err := New(ratio, ModeThreshold)
		assert.ErrorContains(t, err, "sampling ratio must be within (0, 1]", "%v", ratio)
		assert.Error(t, ValidateRatio(ratio))
	}
	_, err := New(1e-20, ModeThreshold)
	assert.ErrorContains(t, err, "sampling ratio 1e-20", "below the smallest OTEP 235 probability, 2^-56")
	_, err = New(0.5, Mode(7))
	assert.ErrorContains(t, err, "invalid tracestate mode")
}

func TestParseMode(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want Mode
	}{{"threshold", ModeThreshold}, {"none", ModeNone}} {
		got, err := ParseMode(tt.in)
		require.NoError(t, err)
		assert.Equal(t, tt.want, got)
		assert.Equal(t, tt.in, got.String())
	}
	_, err := ParseMode("rv")
	assert.ErrorContains(t, err, `unknown tracestate mode "rv"`)
}

// traceIDs are the trace ids vllmgen generates for a seed.
func traceIDs(t *testing.T, seed uint64, requests int) []pcommon.TraceID {
	t.Helper()
	g, err := workload.NewGenerator(workload.Config{Shape: workload.ShapeV1, Models: []string{"m"}, Seed: seed, NProb: 0.1})
	require.NoError(t, err)
	var recs []workload.Record
	for range requests {
		recs = g.Next(recs)
	}
	ids := make([]pcommon.TraceID, len(recs))
	for i := range recs {
		ids[i] = recs[i].TraceID
	}
	return ids
}

func TestSentShare(t *testing.T) {
	for _, tt := range []struct {
		ratio float64
		seed  uint64
	}{{0.1, 1}, {0.1, 2}, {0.1, 77}, {0.5, 3}, {0.25, 4}} {
		ids := traceIDs(t, tt.seed, 20_000)
		s, err := New(tt.ratio, ModeThreshold)
		require.NoError(t, err)
		sent := 0
		for _, id := range ids {
			if s.Sample(id) {
				sent++
			}
		}
		share := float64(sent) / float64(len(ids))
		assert.InDelta(t, tt.ratio, share, 0.015, "ratio %v seed %d: sent %d of %d", tt.ratio, tt.seed, sent, len(ids))
	}
}

func TestDecisionIsDeterministic(t *testing.T) {
	decide := func(seed uint64, mode Mode) []bool {
		s, err := New(0.1, mode)
		require.NoError(t, err)
		ids := traceIDs(t, seed, 2000)
		out := make([]bool, len(ids))
		for i, id := range ids {
			out[i] = s.Sample(id)
		}
		return out
	}
	a := decide(11, ModeThreshold)
	assert.Equal(t, a, decide(11, ModeThreshold), "same seed, same decisions")
	assert.Equal(t, a, decide(11, ModeNone), "the tracestate mode does not change the decision")
	assert.NotEqual(t, a, decide(12, ModeThreshold), "another seed, other decisions")
}

func TestDecisionFollowsRandomness(t *testing.T) {
	s, err := New(0.5, ModeThreshold) // th:8: sampled when the 56-bit randomness ≥ 0x80000000000000
	require.NoError(t, err)
	id := func(lower7 ...byte) pcommon.TraceID {
		var t pcommon.TraceID
		t[0] = 0xff // the upper bits are not randomness
		copy(t[9:], lower7)
		return t
	}
	assert.True(t, s.Sample(id(0x80, 0, 0, 0, 0, 0, 0)))
	assert.True(t, s.Sample(id(0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)))
	assert.False(t, s.Sample(id(0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)))
	assert.False(t, s.Sample(id()))
	all, err := New(1, ModeThreshold)
	require.NoError(t, err)
	assert.True(t, all.Sample(id()), "100 % samples every id")
}
