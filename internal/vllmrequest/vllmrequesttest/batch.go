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
		WriteResource(rs.Resource().Attributes(), Resource{
			ServiceName: "vllm-server", SDKVersion: "1.38.0", ProcessID: "4711", Model: fmt.Sprintf("model-%d", m),
		}, DialectV1)
		ss := rs.ScopeSpans().AppendEmpty()
		ss.Scope().SetName(DialectV1.ScopeName())
		for i := m; i < n; i += models {
			r := v1Request(i)
			WriteSpan(ss.Spans().AppendEmpty(), &r, DialectV1)
		}
	}
	return td
}

// v1Request is V1Batch's i-th request.
func v1Request(i int) Request {
	f := float64(i%100) / 100
	queue, prefill, decode := 0.01+f/10, 0.04+f/5, 0.5+3*f
	start := pcommon.Timestamp(1785000000000000000 + uint64(i)*1000000)
	prefix := "chatcmpl-" // mostly chat, every third a text completion
	if i%3 == 0 {
		prefix = "cmpl-"
	}
	return Request{
		// the last 56 bits are the trace's randomness (OTEP 235): high enough for a consistent 12.5% threshold (th:e)
		TraceID:          pcommon.TraceID{0x4b, 0xf9, byte(i), byte(i >> 8), byte(i >> 16), 1, 9: 0xf7, byte(i), byte(i >> 8), byte(i >> 16)},
		SpanID:           pcommon.SpanID{0x7a, byte(i), byte(i >> 8), byte(i >> 16), 1},
		Start:            start,
		End:              start + pcommon.Timestamp((queue+prefill+decode+0.005)*1e9),
		RequestID:        fmt.Sprintf("%s%08x", prefix, i),
		Temperature:      0.7,
		TopP:             0.9,
		MaxTokens:        512,
		N:                1,
		PromptTokens:     int64(100 + i%2000),
		CompletionTokens: int64(1 + i%512),
		Queue:            queue,
		TTFT:             queue + prefill + 0.002,
		E2E:              queue + prefill + decode + 0.004,
		Prefill:          prefill,
		Decode:           decode,
		Inference:        prefill + decode,
	}
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
