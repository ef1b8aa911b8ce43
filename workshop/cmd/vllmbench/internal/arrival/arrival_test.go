package arrival

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestInfiniteRateSendsAtOnce(t *testing.T) {
	got, err := Schedule(4, math.Inf(1), 1, 0)
	require.NoError(t, err)
	assert.Equal(t, make([]time.Duration, 4), got)
}

func TestScheduleMeanRateAndShape(t *testing.T) {
	const n = 8000
	for _, burstiness := range []float64{0.5, 1, 4} {
		got, err := Schedule(n, 100, burstiness, 7)
		require.NoError(t, err)
		require.True(t, slices.IsSorted(got))
		assert.Zero(t, got[0], "the first request goes at once")
		gaps := make([]float64, n-1)
		var sum float64
		for i := 1; i < n; i++ {
			gaps[i-1] = (got[i] - got[i-1]).Seconds()
			sum += gaps[i-1]
		}
		mean := sum / float64(n-1)
		var sq float64
		for _, g := range gaps {
			sq += (g - mean) * (g - mean)
		}
		cv2 := sq / float64(n-1) / (mean * mean)
		// gamma(k, θ): mean kθ = 1/rate, squared coefficient of variation 1/k
		assert.InEpsilon(t, 0.01, mean, 0.03, "burstiness %v", burstiness)
		assert.InEpsilon(t, 1/burstiness, cv2, 0.08, "burstiness %v", burstiness)
	}
}

func TestScheduleReproducible(t *testing.T) {
	a, _ := Schedule(10, 5, 1, 3)
	b, _ := Schedule(10, 5, 1, 3)
	c, _ := Schedule(10, 5, 1, 4)
	assert.Equal(t, a, b)
	assert.NotEqual(t, a, c)
}

func TestScheduleRejects(t *testing.T) {
	for _, tt := range []struct{ rate, burst float64 }{{0, 1}, {-1, 1}, {math.NaN(), 1}, {1, 0}, {1, math.Inf(1)}, {1, math.NaN()}} {
		_, err := Schedule(1, tt.rate, tt.burst, 0)
		assert.Error(t, err, "%+v", tt)
	}
	_, err := Schedule(-1, 1, 1, 0)
	assert.Error(t, err)
}

func TestGammaMean(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, k := range []float64{0.3, 1, 2.5} {
		var sum float64
		const n = 20000
		for range n {
			v := Gamma(r, k)
			require.GreaterOrEqual(t, v, 0.0)
			sum += v
		}
		assert.InEpsilon(t, k, sum/n, 0.03, "shape %v", k)
	}
}
