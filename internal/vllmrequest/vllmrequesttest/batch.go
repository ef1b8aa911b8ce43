// Package vllmrequesttest helps the product's own tests, as the collector's consumertest and componenttest do:
// realistic batches of vLLM request spans (one shape for every benchmark, here and in the workshop's comparison
// with span_metrics) and the reader of a real vLLM's recorded spans and /metrics (testdata/vllm/). Tests import
// it; no component does.
package vllmrequesttest // import "github.com/otelcol-vllm/otelcol-vllm/internal/vllmrequest/vllmrequesttest"

import (
	"encoding/binary"
	"fmt"
	"sync/atomic"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// V1Batch returns n V1 request spans (newest scope) spread over models resources, shaped exactly like vLLM's:
// consistent latencies (inference = prefill + decode, ttft ≥ queue + prefill, e2e ≥ ttft + decode), 1 to 512
// output tokens, mostly chat and some text completion requests.
func V1Batch(n, models int) ptrace.Traces {
	td := ptrace.NewTraces()
	for m := 0; m < models; m++ {
		rs := td.ResourceSpans().AppendEmpty()
		res := rs.Resource().Attributes()
		res.PutStr("service.name", "vllm-server")
		res.PutStr("telemetry.sdk.language", "python")
		res.PutStr("telemetry.sdk.name", "opentelemetry")
		res.PutStr("telemetry.sdk.version", "1.38.0")
		res.PutStr("vllm.instrumenting_module_name", "vllm.llm_engine")
		res.PutStr("vllm.process_id", "4711")
		res.PutStr("gen_ai.request.model", fmt.Sprintf("model-%d", m))
		ss := rs.ScopeSpans().AppendEmpty()
		ss.Scope().SetName("vllm.tracing.otel")
		for i := m; i < n; i += models {
			appendV1Span(ss.Spans().AppendEmpty(), i)
		}
	}
	return td
}

func appendV1Span(s ptrace.Span, i int) {
	s.SetName("llm_request")
	s.SetKind(ptrace.SpanKindServer)
	// the last 56 bits are the trace's randomness (OTEP 235): high enough for a consistent 12.5% threshold (th:e)
	s.SetTraceID(pcommon.TraceID{0x4b, 0xf9, byte(i), byte(i >> 8), byte(i >> 16), 1, 9: 0xf7, byte(i), byte(i >> 8), byte(i >> 16)})
	s.SetSpanID(pcommon.SpanID{0x7a, byte(i), byte(i >> 8), byte(i >> 16), 1})
	f := float64(i%100) / 100
	queue, prefill, decode := 0.01+f/10, 0.04+f/5, 0.5+3*f
	start := pcommon.Timestamp(1785000000000000000 + uint64(i)*1000000)
	s.SetStartTimestamp(start)
	s.SetEndTimestamp(start + pcommon.Timestamp((queue+prefill+decode+0.005)*1e9))
	a := s.Attributes()
	a.EnsureCapacity(13)
	a.PutDouble("gen_ai.latency.time_to_first_token", queue+prefill+0.002)
	a.PutDouble("gen_ai.latency.e2e", queue+prefill+decode+0.004)
	a.PutDouble("gen_ai.latency.time_in_queue", queue)
	a.PutInt("gen_ai.usage.prompt_tokens", int64(100+i%2000))
	a.PutInt("gen_ai.usage.completion_tokens", int64(1+i%512))
	a.PutDouble("gen_ai.latency.time_in_model_prefill", prefill)
	a.PutDouble("gen_ai.latency.time_in_model_decode", decode)
	a.PutDouble("gen_ai.latency.time_in_model_inference", prefill+decode)
	if i%3 == 0 {
		a.PutStr("gen_ai.request.id", fmt.Sprintf("cmpl-%08x", i))
	} else {
		a.PutStr("gen_ai.request.id", fmt.Sprintf("chatcmpl-%08x", i))
	}
	a.PutDouble("gen_ai.request.top_p", 0.9)
	a.PutInt("gen_ai.request.max_tokens", 512)
	a.PutDouble("gen_ai.request.temperature", 0.7)
	a.PutInt("gen_ai.request.n", 1)
}

// ForEachSpan calls fn for every span of td.
func ForEachSpan(td ptrace.Traces, fn func(ptrace.Span)) {
	rss := td.ResourceSpans()
	for i := 0; i < rss.Len(); i++ {
		sss := rss.At(i).ScopeSpans()
		for j := 0; j < sss.Len(); j++ {
			spans := sss.At(j).Spans()
			for k := 0; k < spans.Len(); k++ {
				fn(spans.At(k))
			}
		}
	}
}

var lastSpanID atomic.Uint64

// UniqueSpanIDs gives every span of td a span id no other call gave in this process, so that a batch built
// again from the same template, or consumed again, counts as new requests and not as a retry's duplicates.
func UniqueSpanIDs(td ptrace.Traces) {
	ForEachSpan(td, func(s ptrace.Span) {
		var id pcommon.SpanID
		binary.BigEndian.PutUint64(id[:], 1<<63|lastSpanID.Add(1))
		s.SetSpanID(id)
	})
}

// SumTotal adds the integer values of every data point of the named sum metric across requests.
func SumTotal(requests []pmetric.Metrics, name string) int64 {
	var total int64
	for _, md := range requests {
		rms := md.ResourceMetrics()
		for i := 0; i < rms.Len(); i++ {
			sms := rms.At(i).ScopeMetrics()
			for j := 0; j < sms.Len(); j++ {
				ms := sms.At(j).Metrics()
				for k := 0; k < ms.Len(); k++ {
					if m := ms.At(k); m.Name() == name && m.Type() == pmetric.MetricTypeSum {
						for p := 0; p < m.Sum().DataPoints().Len(); p++ {
							total += m.Sum().DataPoints().At(p).IntValue()
						}
					}
				}
			}
		}
	}
	return total
}
