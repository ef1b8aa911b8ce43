package workload

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestDrawServing(t *testing.T) {
	for _, tt := range []struct {
		profile Profile
		d       *distributions
	}{{ProfileChat, &chatDistributions}, {ProfileBatch, &batchDistributions}} {
		t.Run(tt.profile.String(), func(t *testing.T) {
			r := rand.New(rand.NewPCG(1, 2))
			us := func(v float64) time.Duration { return time.Duration(v) * time.Microsecond }
			for range 2000 {
				st := tt.profile.DrawServing(r, 500, 64)
				assert.GreaterOrEqual(t, st.Queue, us(tt.d.queueUS.min))
				assert.LessOrEqual(t, st.Queue, us(tt.d.queueUS.max))
				assert.GreaterOrEqual(t, st.Prefill, us(tt.d.prefillClampUS[0]))
				assert.LessOrEqual(t, st.Prefill, us(tt.d.prefillClampUS[1]))
				assert.GreaterOrEqual(t, st.Frontend, us(float64(tt.d.frontendUS.lo)))
				assert.LessOrEqual(t, st.Frontend, us(float64(tt.d.frontendUS.hi)))
				assert.GreaterOrEqual(t, st.TPOT, us(tt.d.tpotUS.min))
				assert.LessOrEqual(t, st.TPOT, us(tt.d.tpotUS.max))
				assert.GreaterOrEqual(t, st.OutputTokens, int64(1))
				assert.LessOrEqual(t, st.OutputTokens, int64(64), "capped at max_tokens")
			}
		})
	}
	a := ProfileMixed.DrawServing(rand.New(rand.NewPCG(3, 4)), 100, 10)
	b := ProfileMixed.DrawServing(rand.New(rand.NewPCG(3, 4)), 100, 10)
	assert.Equal(t, a, b, "the same seed draws the same timing")
	assert.Equal(t, int64(1), ProfileChat.DrawServing(rand.New(rand.NewPCG(1, 1)), 10, 0).OutputTokens, "max_tokens below 1 is treated as 1")
}
