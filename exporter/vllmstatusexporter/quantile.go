package vllmstatusexporter // import "github.com/otelcol-vllm/otelcol-vllm/exporter/vllmstatusexporter"

import "math"

// quantile estimates the q-quantile (0 ≤ q ≤ 1) of the observations in h the way Prometheus'
// histogram_quantile does: find the bucket that holds rank q·count and interpolate linearly inside it,
// assuming the observations are spread evenly between its lower and upper bound. The lowest bucket's lower
// bound is 0 (or its upper bound when that is ≤ 0); a rank in the +Inf bucket answers the highest finite bound.
// The answer is therefore within the bucket that holds the true quantile: its error is at most that bucket's
// width. ok is false when h holds no observation.
func quantile(q float64, h hist) (float64, bool) {
	if h.count <= 0 || len(h.counts) == 0 || len(h.counts) != len(h.bounds)+1 || math.IsNaN(q) {
		return 0, false
	}
	total := 0.0
	for _, c := range h.counts {
		total += c
	}
	if total <= 0 {
		return 0, false
	}
	if q <= 0 {
		q = 0
	}
	if q >= 1 {
		q = 1
	}
	rank := q * total
	cum := 0.0
	for i, c := range h.counts {
		if c <= 0 {
			continue
		}
		if cum+c < rank && i < len(h.counts)-1 {
			cum += c
			continue
		}
		if i == len(h.bounds) { // +Inf bucket
			if len(h.bounds) == 0 {
				return 0, false
			}
			return h.bounds[len(h.bounds)-1], true
		}
		upper := h.bounds[i]
		lower := 0.0
		if i > 0 {
			lower = h.bounds[i-1]
		} else if upper <= 0 {
			return upper, true
		}
		return lower + (upper-lower)*(rank-cum)/c, true
	}
	return h.bounds[len(h.bounds)-1], true
}
