package workload // import "github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmgen/internal/workload"

import (
	"fmt"
	"strconv"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/otelcol-vllm/otelcol-vllm/internal/vllmrequest/vllmrequesttest"
)

// Anchor says which span timestamp the release time becomes.
type Anchor int

const (
	// AnchorArrival: span start = release time (the request arrives now; its end lies e2e ahead).
	AnchorArrival Anchor = iota
	// AnchorFinish: the request's last span ends at the release time, as when vLLM exports a finished request.
	AnchorFinish
)

// ParseAnchor converts an --anchor value.
func ParseAnchor(s string) (Anchor, error) {
	switch s {
	case "arrival":
		return AnchorArrival, nil
	case "finish":
		return AnchorFinish, nil
	}
	return 0, fmt.Errorf("unknown anchor %q (want arrival or finish)", s)
}

func (a Anchor) String() string {
	if a == AnchorFinish {
		return "finish"
	}
	return "arrival"
}

// ResourceConfig describes the resource each model's spans are exported under.
type ResourceConfig struct {
	ServiceName string
	// Extra attributes are added last and replace generated ones with the same key.
	Extra []KeyValue
	// ProcessIDBase seeds the vllm.process_id of each model's server (V1 shape).
	ProcessIDBase int
}

// KeyValue is one string resource attribute.
type KeyValue struct{ Key, Value string }

// SpanBuilder turns Records into OTLP trace data. One builder per goroutine: it keeps scratch state.
type SpanBuilder struct {
	shape     Shape
	models    []string
	anchor    Anchor
	resources []pcommon.Resource
	slots     []ptrace.SpanSlice
	used      []bool
	// traceState is written on every span when not empty (the head sampler's ot=th:… entry).
	traceState string
}

// NewSpanBuilder prepares one resource per model.
func NewSpanBuilder(shape Shape, models []string, res ResourceConfig, anchor Anchor) *SpanBuilder {
	b := &SpanBuilder{
		shape:     shape,
		models:    append([]string(nil), models...),
		anchor:    anchor,
		resources: make([]pcommon.Resource, len(models)),
		slots:     make([]ptrace.SpanSlice, len(models)),
		used:      make([]bool, len(models)),
	}
	for i, model := range models {
		r := pcommon.NewResource()
		attrs := r.Attributes()
		vllmrequesttest.WriteResource(attrs, vllmrequesttest.Resource{
			ServiceName: res.ServiceName, ProcessID: strconv.Itoa(res.ProcessIDBase + i), Model: model,
		}, shape.Dialect())
		for _, kv := range res.Extra {
			attrs.PutStr(kv.Key, kv.Value)
		}
		b.resources[i] = r
	}
	return b
}

// SetTraceState makes every span built from now on carry this W3C tracestate ("" writes none, as vLLM's spans
// without a sampler carry none).
func (b *SpanBuilder) SetTraceState(ts string) { b.traceState = ts }

// Build returns one export's worth of trace data: a resource per model present in recs, each with one
// scope, spans in the order of recs.
func (b *SpanBuilder) Build(recs []Record) ptrace.Traces {
	td := ptrace.NewTraces()
	b.AppendTo(td, recs)
	return td
}

// AppendTo adds recs to td (see Build).
func (b *SpanBuilder) AppendTo(td ptrace.Traces, recs []Record) {
	clear(b.used)
	rss := td.ResourceSpans()
	for i := range recs {
		rec := &recs[i]
		if !b.used[rec.Model] {
			rs := rss.AppendEmpty()
			b.resources[rec.Model].CopyTo(rs.Resource())
			ss := rs.ScopeSpans().AppendEmpty()
			ss.Scope().SetName(b.shape.ScopeName())
			b.slots[rec.Model] = ss.Spans()
			b.used[rec.Model] = true
		}
		b.fill(b.slots[rec.Model].AppendEmpty(), rec)
	}
}

func seconds(us int64) float64 { return float64(us) / 1e6 }

func (b *SpanBuilder) fill(span ptrace.Span, rec *Record) {
	start := rec.ReleasedUnixNano
	if b.anchor == AnchorFinish {
		start -= rec.RequestDurationUS * 1000
	}
	r := vllmrequesttest.Request{
		TraceID:          rec.TraceID,
		SpanID:           rec.SpanID,
		ParentSpanID:     rec.ParentSpanID,
		TraceState:       b.traceState,
		Start:            pcommon.Timestamp(start),
		End:              pcommon.Timestamp(start + rec.SpanDurationUS*1000),
		Model:            b.models[rec.Model],
		RequestID:        rec.RequestID,
		Temperature:      rec.Temperature,
		TopP:             rec.TopP,
		MaxTokens:        rec.MaxTokens,
		N:                rec.N,
		BestOf:           rec.BestOf,
		NumSequences:     rec.NumSequences,
		PromptTokens:     rec.PromptTokens,
		CompletionTokens: rec.CompletionTokens,
		Queue:            seconds(rec.QueueUS),
		TTFT:             seconds(rec.TTFTUS),
		E2E:              seconds(rec.E2EUS),
		Prefill:          seconds(rec.PrefillUS),
		Decode:           seconds(rec.DecodeUS),
		Inference:        seconds(rec.InferenceUS()),
		Scheduler:        seconds(rec.SchedulerUS),
		Forward:          seconds(rec.ForwardUS),
		Execute:          seconds(rec.ExecuteUS),
	}
	vllmrequesttest.WriteSpan(span, &r, b.shape.Dialect())
}
