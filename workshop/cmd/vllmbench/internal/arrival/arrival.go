// Package arrival computes when vllmbench sends each request: all at once for an infinite rate, otherwise
// gamma-distributed gaps with mean 1/rate (burstiness 1 = a Poisson process), as vLLM's benchmark does.
package arrival // import "github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmbench/internal/arrival"

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"
)

// Schedule returns n send offsets from the start. rate is requests per second (+Inf: every offset is 0);
// burstiness is the gamma shape (< 1 burstier, > 1 more regular).
func Schedule(n int, rate, burstiness float64, seed uint64) ([]time.Duration, error) {
	if n < 0 {
		return nil, fmt.Errorf("negative request count %d", n)
	}
	if math.IsNaN(rate) || rate <= 0 {
		return nil, fmt.Errorf("request rate must be positive or inf, got %v", rate)
	}
	if math.IsNaN(burstiness) || math.IsInf(burstiness, 0) || burstiness <= 0 {
		return nil, fmt.Errorf("burstiness must be a positive number, got %v", burstiness)
	}
	offsets := make([]time.Duration, n)
	if math.IsInf(rate, 1) {
		return offsets, nil
	}
	r := rand.New(rand.NewPCG(seed, seed^0x2545f4914f6cdd1d))
	scale := 1 / (rate * burstiness) // mean gap = shape · scale = 1/rate
	var t float64
	for i := range offsets {
		offsets[i] = time.Duration(t * float64(time.Second))
		t += Gamma(r, burstiness) * scale
	}
	return offsets, nil
}

// Gamma draws from the gamma distribution with the given shape and scale 1 (Marsaglia and Tsang's method;
// shapes below 1 use the boost Gamma(k) = Gamma(k+1)·U^(1/k)).
func Gamma(r *rand.Rand, shape float64) float64 {
	if shape < 1 {
		u := r.Float64()
		for u == 0 {
			u = r.Float64()
		}
		return Gamma(r, shape+1) * math.Pow(u, 1/shape)
	}
	d := shape - 1.0/3
	c := 1 / math.Sqrt(9*d)
	for {
		x := r.NormFloat64()
		v := 1 + c*x
		if v <= 0 {
			continue
		}
		v = v * v * v
		u := r.Float64()
		if u < 1-0.0331*x*x*x*x || math.Log(u) < 0.5*x*x+d*(1-v+math.Log(v)) {
			return d * v
		}
	}
}
