// Package headsample is vllmgen's head sampler: the OTEP 235 consistent probability decision a vLLM server's
// SDK makes at the source, and what each sent span then stands for.
package headsample // import "github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmgen/internal/headsample"

import (
	"fmt"
	"strings"

	"github.com/open-telemetry/opentelemetry-collector-contrib/pkg/sampling"
	"go.opentelemetry.io/collector/pdata/pcommon"
)

// Precision is the number of significant hex digits of the threshold. Contrib's probabilistic_sampler writes 4
// by default, so a head-sampled stream carries the same th values as one that collector sampled at the same
// ratio; the sampling probability it encodes is within 0.01 % of the ratio asked for.
const Precision = 4

// Mode says what a sent span records of its sampling.
type Mode int

const (
	// ModeThreshold writes the W3C tracestate entry ot=th:<threshold>, as an OTEP 235 sampler does.
	ModeThreshold Mode = iota
	// ModeNone writes no tracestate, as the Python SDK's TraceIdRatioBased sampler sends spans: the consumer
	// must be told the ratio.
	ModeNone
)

// ParseMode converts a --sample-tracestate value.
func ParseMode(s string) (Mode, error) {
	switch s {
	case "threshold":
		return ModeThreshold, nil
	case "none":
		return ModeNone, nil
	}
	return 0, fmt.Errorf("unknown tracestate mode %q (want threshold or none)", s)
}

func (m Mode) String() string {
	if m == ModeNone {
		return "none"
	}
	return "threshold"
}

// Sampler decides, per trace id, whether a span is sent. It is immutable and safe for concurrent use.
type Sampler struct {
	ratio         float64
	mode          Mode
	threshold     sampling.Threshold
	traceState    string
	adjustedCount float64
}

// ValidateRatio rejects ratios outside (0, 1], NaN included.
func ValidateRatio(ratio float64) error {
	if !(ratio > 0 && ratio <= 1) {
		return fmt.Errorf("sampling ratio must be within (0, 1], got %v", ratio)
	}
	return nil
}

// New returns the sampler for ratio (0 < ratio ≤ 1).
func New(ratio float64, mode Mode) (*Sampler, error) {
	if err := ValidateRatio(ratio); err != nil {
		return nil, err
	}
	if mode != ModeThreshold && mode != ModeNone {
		return nil, fmt.Errorf("invalid tracestate mode %d", int(mode))
	}
	th, err := sampling.ProbabilityToThresholdWithPrecision(ratio, Precision)
	if err != nil {
		return nil, fmt.Errorf("sampling ratio %v: %w", ratio, err)
	}
	s := &Sampler{ratio: ratio, mode: mode, threshold: th}
	switch mode {
	case ModeThreshold:
		s.adjustedCount = th.AdjustedCount()
		if s.traceState, err = serializeThreshold(th); err != nil {
			return nil, err
		}
	case ModeNone:
		// What a consumer configured with the ratio counts for each span.
		s.adjustedCount = 1 / ratio
	}
	return s, nil
}

// serializeThreshold writes the tracestate an OTEP 235 sampler leaves on a root span it sampled.
func serializeThreshold(th sampling.Threshold) (string, error) {
	w3c, err := sampling.NewW3CTraceState("")
	if err != nil {
		return "", err
	}
	if err := w3c.OTelValue().UpdateTValueWithSampling(th); err != nil {
		return "", err
	}
	var b strings.Builder
	if err := w3c.Serialize(&b); err != nil {
		return "", err
	}
	return b.String(), nil
}

// Sample reports whether the span of a trace with this id is sampled: the threshold is at most the trace id's
// randomness (its lower 56 bits, W3C random trace ids).
func (s *Sampler) Sample(id pcommon.TraceID) bool {
	return s.threshold.ShouldSample(sampling.TraceIDToRandomness(id))
}

// Ratio is the configured sampling ratio.
func (s *Sampler) Ratio() float64 { return s.ratio }

// Mode is the tracestate mode.
func (s *Sampler) Mode() Mode { return s.mode }

// TValue is the threshold of the decision in OTEP 235 hex form (e.g. "e666" for 10 %); in ModeNone it is
// used for the decision but not written.
func (s *Sampler) TValue() string { return s.threshold.TValue() }

// Probability is the exact probability the decision samples with (the threshold's, within 0.01 % of Ratio).
func (s *Sampler) Probability() float64 { return s.threshold.Probability() }

// TraceState is the W3C tracestate of every sent span: "ot=th:<tvalue>" in ModeThreshold, "" in ModeNone.
func (s *Sampler) TraceState() string { return s.traceState }

// AdjustedCount is how many requests each sent span stands for, as a consumer computes it: the threshold's
// adjusted count in ModeThreshold, 1/ratio in ModeNone.
func (s *Sampler) AdjustedCount() float64 { return s.adjustedCount }

// Weigh multiplies an exact integer total of sent spans by the adjusted count, rounding once, so that the
// result does not depend on the order spans were counted in.
func (s *Sampler) Weigh(total int64) float64 {
	return float64(total) * s.adjustedCount
}
