// Package metrics computes vllmbench's summary from per-request records with the rules of vLLM's serving
// benchmark (percentiles, goodput), adds the client − server gap of joined requests, and prints the
// benchmark's result layout.
package metrics // import "github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmbench/internal/metrics"

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// Goodput objectives, by the benchmark's names.
//
// These are kept apart from the product's SLO objectives (internal/vllmrequest/slo.go) on purpose: they
// mirror vLLM's benchmark_serving --goodput, so that vllmbench's goodput is comparable with that
// benchmark's, and the two disagree where the product's may not change:
//   - the keys and syntax are the benchmark's (ttft, tpot, e2el as KEY:MS); the product's are ttft, tpot,
//     e2e and queue (durations in the collector's config), and a client cannot see the queue time;
//   - the values are the client's (send → first chunk, send → end of stream, TPOT = (E2EL − TTFT) /
//     (output − 1)), not the server's span timings the product judges;
//   - a failed request is left out of goodput here (as in the benchmark), while the product counts an
//     errored request as not meeting its SLO;
//   - goodput is good requests per second of the run, not a ratio of requests.
//
// The product's verdict on the server side comes back through the Jaeger join (record.Server.SLOMet).
const (
	ObjectiveTTFT = "ttft"
	ObjectiveTPOT = "tpot"
	ObjectiveE2EL = "e2el"
)

// Goodput is a set of objectives in milliseconds; a request is good when every value ≤ its threshold.
type Goodput map[string]float64

// ParseGoodput reads "KEY:MS" pairs (ttft, tpot, e2el), separated by spaces or commas.
func ParseGoodput(s string) (Goodput, error) {
	g := Goodput{}
	for _, item := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' }) {
		key, value, ok := strings.Cut(item, ":")
		if !ok {
			return nil, fmt.Errorf("%q: want KEY:MS", item)
		}
		if key != ObjectiveTTFT && key != ObjectiveTPOT && key != ObjectiveE2EL {
			return nil, fmt.Errorf("%q: unknown objective %q (want ttft, tpot or e2el)", item, key)
		}
		ms, err := strconv.ParseFloat(value, 64)
		if err != nil || math.IsNaN(ms) || math.IsInf(ms, 0) || ms < 0 {
			return nil, fmt.Errorf("%q: threshold must be a non-negative number of milliseconds", item)
		}
		g[key] = ms
	}
	if len(g) == 0 {
		return nil, fmt.Errorf("no objectives in %q", s)
	}
	return g, nil
}

// Metric names of --percentile-metrics, in print order.
var AllMetrics = []string{"ttft", "tpot", "itl", "e2el"}

// ParseMetrics reads a comma-separated --percentile-metrics value.
func ParseMetrics(s string) ([]string, error) {
	var out []string
	for _, m := range strings.Split(s, ",") {
		m = strings.TrimSpace(m)
		if !slices.Contains(AllMetrics, m) {
			return nil, fmt.Errorf("unknown metric %q (want ttft, tpot, itl, e2el)", m)
		}
		if !slices.Contains(out, m) {
			out = append(out, m)
		}
	}
	return out, nil
}

// ParsePercentiles reads a comma-separated --metric-percentiles value (each in (0, 100]).
func ParsePercentiles(s string) ([]float64, error) {
	var out []float64
	for _, p := range strings.Split(s, ",") {
		v, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
		if err != nil || !(v > 0 && v <= 100) {
			return nil, fmt.Errorf("percentile %q must be a number in (0, 100]", p)
		}
		out = append(out, v)
	}
	return out, nil
}

// PercentileWord is how the benchmark names a percentile in keys and labels: 99 → "99", 99.9 → "99.9".
func PercentileWord(p float64) string { return strconv.FormatFloat(p, 'f', -1, 64) }
