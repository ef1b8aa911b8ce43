package vllmrequesttest // import "github.com/otelcol-vllm/otelcol-vllm/internal/vllmrequest/vllmrequesttest"

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// Histogram is one histogram merged over series: its count, sum and cumulative count at each bound.
type Histogram struct {
	Count      uint64
	Sum        float64
	Cumulative map[float64]uint64
}

// HistogramPair names a histogram of vLLM's /metrics and the vllm connector's histogram that observes the same
// per-request value (TokenType selects the connector's vllm.request.tokens series).
type HistogramPair struct {
	VLLM      string
	Connector string
	TokenType string
}

// HistogramPairs are the histograms vLLM and the connector both keep, observed from the same span values.
var HistogramPairs = []HistogramPair{
	{VLLM: "vllm:time_to_first_token_seconds", Connector: "gen_ai.server.time_to_first_token"},
	{VLLM: "vllm:e2e_request_latency_seconds", Connector: "gen_ai.server.request.duration"},
	{VLLM: "vllm:request_queue_time_seconds", Connector: "vllm.request.queue.duration"},
	{VLLM: "vllm:request_prefill_time_seconds", Connector: "vllm.request.prefill.duration"},
	{VLLM: "vllm:request_decode_time_seconds", Connector: "vllm.request.decode.duration"},
	{VLLM: "vllm:request_inference_time_seconds", Connector: "vllm.request.inference.duration"},
	{VLLM: "vllm:request_time_per_output_token_seconds", Connector: "gen_ai.server.time_per_output_token"},
	{VLLM: "vllm:request_prompt_tokens", Connector: "vllm.request.tokens", TokenType: "input"},
	{VLLM: "vllm:request_generation_tokens", Connector: "vllm.request.tokens", TokenType: "output"},
}

// ParseVLLMMetrics parses vLLM's /metrics text (Prometheus text format; vLLM's names have colons).
func ParseVLLMMetrics(r io.Reader) (map[string]*dto.MetricFamily, error) {
	parser := expfmt.NewTextParser(model.LegacyValidation)
	return parser.TextToMetricFamilies(r)
}

// VLLMHistogram merges a histogram family of vLLM's /metrics over its series.
func VLLMHistogram(families map[string]*dto.MetricFamily, name string) (Histogram, bool) {
	f, ok := families[name]
	if !ok || f.GetType() != dto.MetricType_HISTOGRAM {
		return Histogram{}, false
	}
	h := Histogram{Cumulative: map[float64]uint64{}}
	for _, m := range f.GetMetric() {
		hist := m.GetHistogram()
		h.Count += hist.GetSampleCount()
		h.Sum += hist.GetSampleSum()
		for _, b := range hist.GetBucket() {
			if !math.IsInf(b.GetUpperBound(), 1) {
				h.Cumulative[b.GetUpperBound()] += b.GetCumulativeCount()
			}
		}
	}
	return h, true
}

// VLLMCounter sums a counter family of vLLM's /metrics over the series whose labels include match.
func VLLMCounter(families map[string]*dto.MetricFamily, name string, match map[string]string) float64 {
	f, ok := families[name]
	if !ok {
		return 0
	}
	var total float64
	for _, m := range f.GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		matches := true
		for k, v := range match {
			matches = matches && labels[k] == v
		}
		if matches {
			total += m.GetCounter().GetValue()
		}
	}
	return total
}

// VLLMGauge sums a gauge family of vLLM's /metrics over its series.
func VLLMGauge(families map[string]*dto.MetricFamily, name string) float64 {
	var total float64
	if f, ok := families[name]; ok {
		for _, m := range f.GetMetric() {
			total += m.GetGauge().GetValue()
		}
	}
	return total
}

// ConnectorHistogram merges the connector's explicit-bucket histogram points of a metric (of one token type, when
// tokenType is set) over all series. Bounds that only some series have (an inserted SLO threshold) are left out.
func ConnectorHistogram(md pmetric.Metrics, name, tokenType string) Histogram {
	h := Histogram{Cumulative: map[float64]uint64{}}
	var perSeries []map[float64]uint64
	rms := md.ResourceMetrics()
	for i := 0; i < rms.Len(); i++ {
		sms := rms.At(i).ScopeMetrics()
		for j := 0; j < sms.Len(); j++ {
			ms := sms.At(j).Metrics()
			for k := 0; k < ms.Len(); k++ {
				m := ms.At(k)
				if m.Name() != name || m.Type() != pmetric.MetricTypeHistogram {
					continue
				}
				for p := 0; p < m.Histogram().DataPoints().Len(); p++ {
					dp := m.Histogram().DataPoints().At(p)
					if tokenType != "" {
						if v, ok := dp.Attributes().Get("gen_ai.token.type"); !ok || v.Str() != tokenType {
							continue
						}
					}
					h.Count += dp.Count()
					h.Sum += dp.Sum()
					perSeries = append(perSeries, Cumulative(dp.ExplicitBounds().AsRaw(), dp.BucketCounts().AsRaw()))
				}
			}
		}
	}
	h.Cumulative = MergeShared(perSeries)
	return h
}

// Cumulative turns a histogram point's explicit bounds and per-bucket counts into the cumulative count at each
// bound (Prometheus' le buckets; the +Inf bucket is left out).
func Cumulative(bounds []float64, buckets []uint64) map[float64]uint64 {
	cum := make(map[float64]uint64, len(bounds))
	var running uint64
	for i, b := range bounds {
		running += buckets[i]
		cum[b] = running
	}
	return cum
}

// MergeShared adds cumulative counts over series at the bounds every series has.
func MergeShared(perSeries []map[float64]uint64) map[float64]uint64 {
	out := map[float64]uint64{}
	if len(perSeries) == 0 {
		return out
	}
	for bound := range perSeries[0] {
		var total uint64
		shared := true
		for _, cum := range perSeries {
			v, ok := cum[bound]
			shared = shared && ok
			total += v
		}
		if shared {
			out[bound] = total
		}
	}
	return out
}

// Differences lists how the connector's histogram differs from vLLM's: count, sum beyond sumTolerance per
// observation, and the cumulative count at every bound both lists have. Empty means they agree.
func Differences(vllm, connector Histogram, sumTolerance float64) []string {
	var out []string
	if vllm.Count != connector.Count {
		out = append(out, fmt.Sprintf("count: vLLM %d, connector %d", vllm.Count, connector.Count))
	}
	if math.Abs(vllm.Sum-connector.Sum) > sumTolerance*float64(max(vllm.Count, 1)) {
		out = append(out, fmt.Sprintf("sum: vLLM %g, connector %g", vllm.Sum, connector.Sum))
	}
	bounds := make([]float64, 0, len(vllm.Cumulative))
	for b := range vllm.Cumulative {
		if _, ok := connector.Cumulative[b]; ok {
			bounds = append(bounds, b)
		}
	}
	sort.Float64s(bounds)
	for _, b := range bounds {
		if vllm.Cumulative[b] != connector.Cumulative[b] {
			out = append(out, fmt.Sprintf("le=%g: vLLM %d, connector %d", b, vllm.Cumulative[b], connector.Cumulative[b]))
		}
	}
	if len(bounds) == 0 && len(vllm.Cumulative) > 0 {
		out = append(out, "no bound in common")
	}
	return out
}

// RealVLLMFixture is what a real vLLM sent, recorded by the end-to-end test (testdata/vllm/<version>/): its spans
// (request spans and startup spans, OTLP JSON) and its /metrics at the same moment.
type RealVLLMFixture struct {
	Spans   ptrace.Traces
	Metrics map[string]*dto.MetricFamily
}

// ReadRealVLLMFixture reads a recorded fixture folder.
func ReadRealVLLMFixture(dir string) (RealVLLMFixture, error) {
	spans, err := os.ReadFile(filepath.Join(dir, "spans.json"))
	if err != nil {
		return RealVLLMFixture{}, err
	}
	td, err := (&ptrace.JSONUnmarshaler{}).UnmarshalTraces(spans)
	if err != nil {
		return RealVLLMFixture{}, fmt.Errorf("%s/spans.json: %w", dir, err)
	}
	text, err := os.ReadFile(filepath.Join(dir, "metrics.txt"))
	if err != nil {
		return RealVLLMFixture{}, err
	}
	families, err := ParseVLLMMetrics(bytes.NewReader(text))
	if err != nil {
		return RealVLLMFixture{}, fmt.Errorf("%s/metrics.txt: %w", dir, err)
	}
	return RealVLLMFixture{Spans: td, Metrics: families}, nil
}

// RequestSpans returns the fixture's llm_request spans, and how many other spans (vLLM's startup spans) it has.
func (f RealVLLMFixture) RequestSpans() (spans []ptrace.Span, others int) {
	for i := 0; i < f.Spans.ResourceSpans().Len(); i++ {
		sss := f.Spans.ResourceSpans().At(i).ScopeSpans()
		for j := 0; j < sss.Len(); j++ {
			for k := 0; k < sss.At(j).Spans().Len(); k++ {
				if s := sss.At(j).Spans().At(k); s.Name() == "llm_request" {
					spans = append(spans, s)
				} else {
					others++
				}
			}
		}
	}
	return spans, others
}
