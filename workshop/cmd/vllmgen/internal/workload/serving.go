package workload // import "github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmgen/internal/workload"

import (
	"math"
	"math/rand/v2"
	"time"
)

// ServingTiming is the engine timing of one request served live (vllmgen serve): how long each phase takes,
// drawn from a profile's distributions for a given prompt and output length. The emulator sleeps these
// durations and measures the span values from its own clock, as vLLM does.
type ServingTiming struct {
	// Queue is the scheduler wait on top of any wait for a free sequence slot.
	Queue   time.Duration
	Prefill time.Duration
	// Frontend is the engine-to-frontend delay of an output batch (IPC + output processing).
	Frontend time.Duration
	// TPOT is the engine time between two output tokens.
	TPOT time.Duration
	// OutputTokens is the natural output length (the request stops at EOS), capped at max_tokens.
	OutputTokens int64
}

// DrawServing draws the timing of one request with promptTokens prompt tokens and a max_tokens of maxTokens
// (≥ 1) from the profile p.
func (p Profile) DrawServing(r *rand.Rand, promptTokens, maxTokens int64) ServingTiming {
	d := p.pick(r)
	us := func(v float64) time.Duration { return time.Duration(math.Round(v)) * time.Microsecond }
	return ServingTiming{
		Queue:    us(d.queueUS.draw(r)),
		Prefill:  time.Duration(prefillUS(r, d, promptTokens)) * time.Microsecond,
		Frontend: time.Duration(d.frontendUS.draw(r)) * time.Microsecond,
		TPOT:     us(d.tpotUS.draw(r)),

		OutputTokens: outputTokens(r, d, max(1, maxTokens)),
	}
}
