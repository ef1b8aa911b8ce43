package send // import "github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmgen/internal/send"

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmgen/internal/workload"
)

// Summary is the JSON summary. Expected values (sums, counts, SLO outcomes) cover every span handed to an
// exporter; when failed_spans is 0 they are exactly what a receiver got.
type Summary struct {
	Shape       string  `json:"shape"`
	Protocol    string  `json:"protocol"`
	Endpoint    string  `json:"endpoint"`
	Profile     string  `json:"profile"`
	Anchor      string  `json:"anchor"`
	Seed        uint64  `json:"seed"`
	DryRun      bool    `json:"dry_run"`
	Rate        float64 `json:"rate"`
	Batch       int     `json:"batch"`
	Workers     int     `json:"workers"`
	Interrupted bool    `json:"interrupted"`

	ElapsedSeconds    float64 `json:"elapsed_seconds"`
	RequestsPerSecond float64 `json:"requests_per_second"`
	SpansPerSecond    float64 `json:"spans_per_second"`

	SLOThresholdsSeconds map[string]float64 `json:"slo_thresholds_seconds,omitempty"`

	Total  workload.Report            `json:"total"`
	Models map[string]workload.Report `json:"models"`

	FailedExports int64    `json:"failed_exports"`
	ExportErrors  []string `json:"export_errors,omitempty"`

	// VLLM is what the emulated vLLM server counted on its own /metrics: every finished request (whether its
	// span was sent or lost) and every aborted one (no span). Total.Spans / VLLM.Total.Finished is the span
	// coverage a collector should see.
	VLLM VLLMSummary `json:"vllm"`

	// Sampling describes the head sampling of --sample-ratio; absent without it. The reports then carry the
	// adjusted expected totals (total.adjusted, models.<model>.adjusted).
	Sampling *SamplingSummary `json:"sampling,omitempty"`
	// SLOViolators lists the spans handed to an exporter that broke a set objective; absent without --slo-*.
	SLOViolators *SLOViolators `json:"slo_violators,omitempty"`
}

// SamplingSummary is the head sampling of a run.
type SamplingSummary struct {
	Ratio float64 `json:"ratio"`
	// TraceState is the --sample-tracestate mode: threshold or none.
	TraceState string `json:"tracestate"`
	// SpanTraceState is the W3C tracestate written on every sent span ("" in mode none).
	SpanTraceState string `json:"span_tracestate"`
	// Threshold is the OTEP 235 threshold of the decision (written only in mode threshold) and Probability the
	// exact probability it samples with.
	Threshold   string  `json:"threshold"`
	Probability float64 `json:"probability"`
	// AdjustedCount is what each sent span stands for, as a collector counts it: the threshold's adjusted count
	// (mode threshold) or 1 / ratio (mode none).
	AdjustedCount float64 `json:"adjusted_count"`
	// SentSpans = total.spans; UnsampledSpans = vllm.total.unsampled_spans.
	SentSpans      int64 `json:"sent_spans"`
	UnsampledSpans int64 `json:"unsampled_spans"`
}

// SLOViolators are the spans that violated at least one set objective (did not meet "all").
type SLOViolators struct {
	// Spans = total.slo.all.violated.
	Spans int64 `json:"spans"`
	// SpanIDs are their span ids in hex, sorted; Truncated says that the list stopped at its bound.
	SpanIDs   []string `json:"span_ids"`
	Truncated bool     `json:"truncated"`
}

// VLLMSummary is vLLM's side of the run.
type VLLMSummary struct {
	MetricsListen string                   `json:"metrics_listen,omitempty"`
	SpanLoss      float64                  `json:"span_loss"`
	AbortFraction float64                  `json:"abort_fraction"`
	Total         ModelCoverage            `json:"total"`
	Models        map[string]ModelCoverage `json:"models"`
}

// NewSummary converts a Result.
func NewSummary(r *Result) Summary {
	o := r.Options
	s := Summary{
		Shape: o.Shape.String(), Protocol: string(o.Protocol), Endpoint: o.Endpoint, Profile: o.Profile.String(),
		Anchor: o.Anchor.String(), Seed: o.Seed, DryRun: o.DryRun, Rate: o.Rate, Batch: o.Batch, Workers: o.Workers,
		Interrupted:    r.Interrupted,
		ElapsedSeconds: r.Elapsed.Seconds(),
		Total:          r.Tally.Total.Report(o.SLO),
		Models:         map[string]workload.Report{},
		FailedExports:  r.FailedExports,
		ExportErrors:   r.Errors,
	}
	s.VLLM = VLLMSummary{MetricsListen: r.MetricsAddr(), SpanLoss: o.VLLM.SpanLoss, AbortFraction: o.VLLM.AbortFraction,
		Total: r.VLLM, Models: r.VLLMModels}
	if secs := r.Elapsed.Seconds(); secs > 0 {
		s.RequestsPerSecond = float64(s.Total.Requests) / secs
		s.SpansPerSecond = float64(s.Total.Spans) / secs
	}
	if o.SLO.Any() {
		s.SLOThresholdsSeconds = map[string]float64{}
		for name, d := range o.SLO.Thresholds() {
			s.SLOThresholdsSeconds[name] = d.Seconds()
		}
	}
	for i, model := range o.Models {
		s.Models[model] = r.Tally.Models[i].Report(o.SLO)
	}
	if sm := r.Sampler; sm != nil {
		s.Sampling = &SamplingSummary{
			Ratio: sm.Ratio(), TraceState: sm.Mode().String(), SpanTraceState: sm.TraceState(),
			Threshold: sm.TValue(), Probability: sm.Probability(), AdjustedCount: sm.AdjustedCount(),
			SentSpans: s.Total.Spans, UnsampledSpans: r.VLLM.UnsampledSpans,
		}
		s.Total.Adjusted = r.Tally.Total.Adjusted(o.SLO, sm.Weigh)
		for i, model := range o.Models {
			m := s.Models[model]
			m.Adjusted = r.Tally.Models[i].Adjusted(o.SLO, sm.Weigh)
			s.Models[model] = m
		}
	}
	if o.SLO.Any() {
		s.SLOViolators = &SLOViolators{Spans: s.Total.SLO[workload.ObjectiveAll].Violated, SpanIDs: []string{}}
		if v := r.Violators; v != nil {
			for _, id := range v.ids {
				s.SLOViolators.SpanIDs = append(s.SLOViolators.SpanIDs, id.String())
			}
			slices.Sort(s.SLOViolators.SpanIDs)
			s.SLOViolators.Truncated = v.truncated
		}
	}
	return s
}

// WriteJSON writes the summary as one indented JSON document.
func (s Summary) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(s)
}

// WriteText writes a human-readable summary.
func (s Summary) WriteText(w io.Writer) error {
	var b strings.Builder
	mode := "sent to " + s.Protocol + " " + s.Endpoint
	if s.DryRun {
		mode = "dry run, nothing sent"
	}
	fmt.Fprintf(&b, "vllmgen: shape=%s profile=%s seed=%d (%s)\n", s.Shape, s.Profile, s.Seed, mode)
	if s.Interrupted {
		b.WriteString("interrupted: the counts below cover what was handed to exporters before the stop\n")
	}
	fmt.Fprintf(&b, "%d requests, %d spans in %.3fs (%.1f requests/s, %.1f spans/s); exported %d, failed %d spans\n\n",
		s.Total.Requests, s.Total.Spans, s.ElapsedSeconds, s.RequestsPerSecond, s.SpansPerSecond,
		s.Total.ExportedSpans, s.Total.FailedSpans)

	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "model\trequests\tspans\texported\tfailed\tprompt tokens\tcompletion tokens\t")
	for _, name := range sortedKeys(s.Models) {
		m := s.Models[name]
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t\n", name, m.Requests, m.Spans, m.ExportedSpans, m.FailedSpans, m.PromptTokens, m.CompletionTokens)
	}
	_ = tw.Flush()
	b.WriteString("\nexpected latencies (all models)\n")
	tw = tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "latency\tcount\tsum (s)\tsum (µs)\tmean (s)\t")
	for _, l := range []struct {
		name string
		stat workload.StatReport
	}{
		{"ttft", s.Total.TTFT}, {"tpot", s.Total.TPOT}, {"e2e", s.Total.E2E}, {"queue", s.Total.Queue},
		{"prefill", s.Total.Prefill}, {"decode", s.Total.Decode}, {"inference", s.Total.Inference},
	} {
		fmt.Fprintf(tw, "%s\t%d\t%.6f\t%d\t%.6f\t\n", l.name, l.stat.Count, l.stat.SumSeconds, l.stat.SumUS, l.stat.MeanSeconds)
	}
	_ = tw.Flush()
	if len(s.SLOThresholdsSeconds) > 0 {
		b.WriteString("\nexpected SLO outcomes (all models; per span)\n")
		tw = tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "objective\tthreshold (s)\tmet\tviolated\t")
		for _, name := range []string{"ttft", "tpot", "e2e", "queue", workload.ObjectiveAll} {
			outcome, ok := s.Total.SLO[name]
			if !ok {
				continue
			}
			threshold := "-"
			if t, ok := s.SLOThresholdsSeconds[name]; ok {
				threshold = fmt.Sprintf("%g", t)
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t\n", name, threshold, outcome.Met, outcome.Violated)
		}
		_ = tw.Flush()
	}
	s.writeSampling(&b)
	s.writeVLLM(&b)
	if s.FailedExports > 0 || len(s.ExportErrors) > 0 {
		fmt.Fprintf(&b, "\n%d export requests failed; first errors:\n", s.FailedExports)
		for _, e := range s.ExportErrors {
			fmt.Fprintf(&b, "  %s\n", e)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// writeVLLM says what was sent against what vLLM's own /metrics counted.
func (s Summary) writeVLLM(b *strings.Builder) {
	v := s.VLLM.Total
	b.WriteString("\nsent vs counted by vLLM's /metrics")
	if s.VLLM.MetricsListen != "" {
		fmt.Fprintf(b, " (served on http://%s/metrics)", s.VLLM.MetricsListen)
	}
	b.WriteString("\n")
	tw := tabwriter.NewWriter(b, 0, 0, 2, ' ', 0)
	unsampledColumn := ""
	if s.Sampling != nil {
		unsampledColumn = "spans unsampled\t"
	}
	fmt.Fprintln(tw, "model\tfinished (vllm:request_success_total)\tstop\tlength\taborted (no span)\tspans sent\tspans lost\t"+unsampledColumn+"span coverage\t")
	row := func(name string, c ModelCoverage, spans int64) {
		coverage := "-"
		if c.Finished > 0 {
			coverage = fmt.Sprintf("%.4f", float64(spans)/float64(c.Finished))
		}
		unsampled := ""
		if s.Sampling != nil {
			unsampled = fmt.Sprintf("%d\t", c.UnsampledSpans)
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%s%s\t\n", name, c.Finished,
			c.RequestSuccess["stop"], c.RequestSuccess["length"], c.Aborted, spans, c.LostSpans, unsampled, coverage)
	}
	for _, name := range sortedKeys(s.VLLM.Models) {
		row(name, s.VLLM.Models[name], s.Models[name].Spans)
	}
	if len(s.VLLM.Models) > 1 {
		row("(all)", v, s.Total.Spans)
	}
	_ = tw.Flush()
	fmt.Fprintf(b, "vLLM also counted %d prompt and %d generation tokens (aborted requests' processed tokens included), %d TTFT and %d e2e observations\n",
		v.PromptTokens, v.GenerationTokens, v.TTFTCount, v.E2ECount)
}

// writeSampling prints the head sampling and the adjusted expected totals of the sent spans.
func (s Summary) writeSampling(b *strings.Builder) {
	sm := s.Sampling
	if sm == nil {
		return
	}
	ts := "no tracestate (the collector must be told the ratio)"
	if sm.SpanTraceState != "" {
		ts = "tracestate " + sm.SpanTraceState
	}
	fmt.Fprintf(b, "\nhead sampling at %g (threshold %s, probability %.6g), %s: sent %d spans, %d unsampled; each sent span counts %.6g\n",
		sm.Ratio, sm.Threshold, sm.Probability, ts, sm.SentSpans, sm.UnsampledSpans, sm.AdjustedCount)
	b.WriteString("adjusted expected totals (what a collector that weighs the sent spans counts)\n")
	tw := tabwriter.NewWriter(b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "model\tspans\tprompt tokens\tcompletion tokens\tSLO all met\tSLO all violated\t")
	row := func(name string, r workload.Report) {
		a := r.Adjusted
		if a == nil {
			return
		}
		all := a.SLO[workload.ObjectiveAll]
		fmt.Fprintf(tw, "%s\t%.6f\t%.6f\t%.6f\t%.6f\t%.6f\t\n", name, a.Spans, a.PromptTokens, a.CompletionTokens, all.Met, all.Violated)
	}
	for _, name := range sortedKeys(s.Models) {
		row(name, s.Models[name])
	}
	if len(s.Models) > 1 {
		row("(all)", s.Total)
	}
	_ = tw.Flush()
}
