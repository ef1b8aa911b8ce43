package vllmconnector // import "github.com/otelcol-vllm/otelcol-vllm/connector/vllmconnector"

import (
	"github.com/open-telemetry/opentelemetry-collector-contrib/pkg/sampling"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// weigher finds what each span stands for: its adjusted count, 1 / the probability it was sampled with. The
// OTEP 235 threshold in the W3C tracestate (`ot=th:…`) says it where a sampler wrote one; a span without one
// counts with the configured ratio of its service (sampling.ratio, sampling.service_ratios). It is owned by the
// connector and used under its lock.
type weigher struct {
	defaultWeight  float64
	serviceWeights map[string]float64
	// the last tracestate parsed and what it gave: a batch's spans mostly share one, so it is parsed once
	lastState     string
	lastWeight    float64
	lastThreshold sampling.Threshold
	hasThreshold  bool
	lastRValue    sampling.Randomness // the explicit randomness (ot=rv:…), when hasRValue
	hasRValue     bool
	lastMalformed bool
}

func newWeigher(cfg SamplingConfig) weigher {
	w := weigher{defaultWeight: 1 / cfg.Ratio, serviceWeights: make(map[string]float64, len(cfg.ServiceRatios))}
	for service, ratio := range cfg.ServiceRatios {
		w.serviceWeights[service] = 1 / ratio
	}
	return w
}

// resourceWeight is the weight of the resource's spans that carry no threshold.
func (w *weigher) resourceWeight(attrs pcommon.Map) float64 {
	if len(w.serviceWeights) > 0 {
		if name, ok := attrs.Get("service.name"); ok && name.Type() == pcommon.ValueTypeStr {
			if weight, ok := w.serviceWeights[name.Str()]; ok {
				return weight
			}
		}
	}
	return w.defaultWeight
}

// spanWeight is the adjusted count of span, fallback when its tracestate carries no threshold; malformed is true
// when the tracestate could not be parsed or its threshold is inconsistent with the span's randomness (the span
// then counts with fallback, it is never dropped).
//
// A threshold is consistent when the span's randomness — the explicit `rv` value, else the trace id's last 56
// bits — is at least the threshold: a consistent sampler keeps a span only then. contrib's probabilistic_sampler
// refuses an inconsistent threshold the same way (and rewrites it), so metrics and trace-based estimates agree;
// trusting it would let one span claim up to 2^56 requests.
func (w *weigher) spanWeight(span ptrace.Span, fallback float64) (weight float64, malformed bool) {
	state := span.TraceState().AsRaw()
	if state == "" {
		return fallback, false
	}
	if state != w.lastState {
		w.parse(state)
	}
	if w.hasThreshold {
		randomness := w.lastRValue
		if !w.hasRValue {
			randomness = sampling.TraceIDToRandomness(span.TraceID())
		}
		if !w.lastThreshold.ShouldSample(randomness) {
			return fallback, true
		}
		return w.lastWeight, false
	}
	return fallback, w.lastMalformed
}

// parse reads the OTEP 235 values of a tracestate into the weigher's cache.
func (w *weigher) parse(state string) {
	w.lastState = state
	w.lastWeight, w.hasThreshold, w.hasRValue, w.lastMalformed = 0, false, false, false
	ts, err := sampling.NewW3CTraceState(state)
	if err != nil {
		w.lastMalformed = true
		return
	}
	otel := ts.OTelValue()
	threshold, ok := otel.TValueThreshold()
	if !ok {
		return
	}
	// a threshold that samples nothing (adjusted count 0) cannot be on a span that arrived
	if count := otel.AdjustedCount(); count >= 1 {
		w.lastWeight, w.lastThreshold, w.hasThreshold = count, threshold, true
		w.lastRValue, w.hasRValue = otel.RValueRandomness()
	} else {
		w.lastMalformed = true
	}
}
