package vllmprocessor // import "github.com/otelcol-vllm/otelcol-vllm/processor/vllmprocessor"

import (
	"context"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/processor"
	"go.uber.org/zap"

	"github.com/otelcol-vllm/otelcol-vllm/internal/rejections"
	"github.com/otelcol-vllm/otelcol-vllm/internal/vllmrequest"
	"github.com/otelcol-vllm/otelcol-vllm/processor/vllmprocessor/internal/metadata"
)

// Span attributes the processor adds. vLLM's own attributes are never removed or changed.
const (
	AttrTimePerOutputToken = "vllm.request.time_per_output_token"
	AttrDecodeThroughput   = "vllm.request.decode.throughput"
	AttrPrefillDuration    = "vllm.request.prefill.duration"
	AttrDecodeDuration     = "vllm.request.decode.duration"
	AttrInferenceDuration  = "vllm.request.inference.duration"
	AttrSLOMet             = "vllm.slo.met"
	AttrSLOViolations      = "vllm.slo.violations"
	// AttrSamplingPriority is the attribute probabilistic_sampler (and OpenTracing-era samplers) read: a positive
	// value keeps the span whatever the sampling percentage.
	AttrSamplingPriority = "sampling.priority"
)

// derivedAttributes are written only when the core derived the value (V0 spans): V1 spans carry them already.
var derivedAttributes = [...]struct {
	latency vllmrequest.Latency
	key     string
}{
	{vllmrequest.Prefill, AttrPrefillDuration},
	{vllmrequest.Decode, AttrDecodeDuration},
	{vllmrequest.Inference, AttrInferenceDuration},
}

type spanEnricher struct {
	logger  *zap.Logger
	deriver *vllmrequest.Deriver
	slo     vllmrequest.SLOConfig
	// sloEnabled is slo.Enabled(), asked once
	sloEnabled bool
	// priority marks the requests that broke the SLO or failed with sampling.priority
	priority  bool
	telemetry *metadata.TelemetryBuilder
}

func newSpanEnricher(set processor.Settings, cfg *Config) (*spanEnricher, error) {
	tb, err := metadata.NewTelemetryBuilder(set.TelemetrySettings)
	if err != nil {
		return nil, err
	}
	return &spanEnricher{
		logger:     set.Logger,
		deriver:    vllmrequest.NewDeriver(cfg.Request),
		slo:        cfg.Request.SLO,
		sloEnabled: cfg.Request.SLO.Enabled(),
		priority:   cfg.SamplingPriority,
		telemetry:  tb,
	}, nil
}

func (p *spanEnricher) shutdown(context.Context) error {
	p.telemetry.Shutdown()
	return nil
}

func (p *spanEnricher) processTraces(ctx context.Context, td ptrace.Traces) (ptrace.Traces, error) {
	var rec vllmrequest.Record
	var recognised, unknownOperations int64
	var violations []string
	rss := td.ResourceSpans()
	for i := 0; i < rss.Len(); i++ {
		rs := rss.At(i)
		resource := vllmrequest.NewResource(rs.Resource().Attributes())
		sss := rs.ScopeSpans()
		for j := 0; j < sss.Len(); j++ {
			spans := sss.At(j).Spans()
			for k := 0; k < spans.Len(); k++ {
				span := spans.At(k)
				if !p.deriver.Derive(span, &resource, &rec) {
					continue
				}
				recognised++
				if !rec.OperationKnown {
					// enrich writes the fallback operation onto the span: a connector after us cannot tell
					unknownOperations++
				}
				rejections.Count(ctx, p.telemetry.ProcessorVllmFieldsRejected, &rec)
				violations = p.enrich(span.Attributes(), &rec, violations[:0])
			}
		}
	}
	p.telemetry.ProcessorVllmSpansRecognized.Add(ctx, recognised)
	if unknownOperations > 0 {
		p.telemetry.ProcessorVllmOperationsUnknown.Add(ctx, unknownOperations)
	}
	return td, nil
}

// added counts the attributes enrich will add to a span (an upper bound: some may exist already).
func (p *spanEnricher) added(rec *vllmrequest.Record, verdict vllmrequest.SLOResult) int {
	n := 0
	_, hasTPOT := rec.TimePerOutputToken()
	_, hasThroughput := rec.DecodeThroughput()
	for _, add := range [...]bool{
		!rec.ProviderOnSpan, !rec.OperationOnSpan, true, // gen_ai.request.model, unless the span has it
		hasTPOT, hasThroughput, p.sloEnabled, p.sloEnabled && !verdict.AllMet,
		p.priority && !verdict.AllMet,
	} {
		if add {
			n++
		}
	}
	for _, d := range derivedAttributes {
		if rec.Derived(d.latency) {
			n++
		}
	}
	return n
}

// enrich writes the record's derived values onto the span. It returns the violations buffer for reuse.
func (p *spanEnricher) enrich(attrs pcommon.Map, rec *vllmrequest.Record, violations []string) []string {
	// without objectives only an error breaks the verdict, which sampling_priority still needs; with neither,
	// nothing reads it
	var verdict vllmrequest.SLOResult
	if p.sloEnabled || p.priority {
		verdict = p.slo.EvaluateSLO(rec)
	}
	// Grow the attribute slice once, to its final size: a vLLM span's slice has no room for what we add, and
	// growing it (copying every attribute) is most of what enriching costs.
	attrs.EnsureCapacity(attrs.Len() + p.added(rec, verdict))
	if !rec.ProviderOnSpan {
		attrs.PutStr(vllmrequest.AttrProviderName, rec.Provider)
	}
	if !rec.OperationOnSpan {
		attrs.PutStr(vllmrequest.AttrOperationName, rec.Operation)
	}
	// V1 spans carry no model: the one the metrics carry makes the span searchable by model in Jaeger.
	if !rec.RequestModelKeyOnSpan {
		attrs.PutStr(vllmrequest.AttrRequestModel, rec.Model)
	}
	if tpot, ok := rec.TimePerOutputToken(); ok {
		attrs.PutDouble(AttrTimePerOutputToken, tpot)
	}
	if throughput, ok := rec.DecodeThroughput(); ok {
		attrs.PutDouble(AttrDecodeThroughput, throughput)
	}
	for _, d := range derivedAttributes {
		if v, ok := rec.Latency(d.latency); ok && rec.Derived(d.latency) {
			attrs.PutDouble(d.key, v)
		}
	}
	if p.priority && !verdict.AllMet {
		attrs.PutInt(AttrSamplingPriority, 1)
	}
	if !p.sloEnabled {
		return violations
	}
	attrs.PutBool(AttrSLOMet, verdict.AllMet)
	violations = verdict.Violations(violations)
	if len(violations) == 0 {
		return violations
	}
	slice := attrs.PutEmptySlice(AttrSLOViolations)
	slice.EnsureCapacity(len(violations))
	for _, v := range violations {
		slice.AppendEmpty().SetStr(v)
	}
	return violations
}
