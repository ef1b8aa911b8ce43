package vllmprocessor

import (
	"context"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/otelcol-vllm/otelcol-vllm/internal/vllmrequest/vllmrequesttest"
	"github.com/otelcol-vllm/otelcol-vllm/processor/vllmprocessor/internal/metadatatest"
)

// TestReplayRealVLLM replays what a real vLLM sent (testdata/vllm/<version>/) through the processor: every
// llm_request span gets the operation its request id names, the model of its resource, TPOT from its own decode
// time, and the SLO verdict its values imply (computed here from the raw values); vLLM's startup spans and every
// attribute vLLM set are left as they were.
func TestReplayRealVLLM(t *testing.T) {
	for _, version := range []string{"0.32.0"} {
		t.Run(version, func(t *testing.T) {
			fixture, err := vllmrequesttest.ReadRealVLLMFixture(filepath.Join("..", "..", "testdata", "vllm", version))
			require.NoError(t, err)
			sent, startup := fixture.RequestSpans()
			require.NotEmpty(t, sent)
			require.Positive(t, startup, "vLLM %s sends startup spans too", version)
			before := map[string]map[string]any{}
			for _, s := range sent {
				before[s.SpanID().String()] = s.Attributes().AsRaw()
			}
			tel := componenttest.NewTelemetry()
			sink := new(consumertest.TracesSink)
			p, err := NewFactory().CreateTraces(context.Background(), metadatatest.NewSettings(tel), seedSLOConfig(), sink)
			require.NoError(t, err)
			require.NoError(t, p.ConsumeTraces(context.Background(), fixture.Spans))
			require.Len(t, sink.AllTraces(), 1)

			out := vllmrequesttest.RealVLLMFixture{Spans: sink.AllTraces()[0]}
			enriched, others := out.RequestSpans()
			require.Len(t, enriched, len(sent))
			assert.Equal(t, startup, others)
			for _, s := range enriched {
				attrs := s.Attributes().AsRaw()
				for k, v := range before[s.SpanID().String()] {
					assert.Equal(t, v, attrs[k], "vLLM's %s unchanged", k)
				}
				id := attrs["gen_ai.request.id"].(string)
				wantOp := "text_completion"
				if strings.HasPrefix(id, "chatcmpl-") {
					wantOp = "chat"
				}
				assert.Equal(t, wantOp, attrs["gen_ai.operation.name"], id)
				assert.Equal(t, "tiny-llama", attrs["gen_ai.request.model"], id)
				completion := attrs["gen_ai.usage.completion_tokens"].(int64)
				decode := attrs["gen_ai.latency.time_in_model_decode"].(float64)
				var violations []any
				if attrs["gen_ai.latency.time_to_first_token"].(float64) > 0.2 {
					violations = append(violations, "ttft")
				}
				if completion >= 2 {
					assert.InDelta(t, decode/float64(completion-1), attrs[AttrTimePerOutputToken], 1e-12, id)
					if decode/float64(completion-1) > 0.05 {
						violations = append(violations, "tpot")
					}
				} else {
					assert.NotContains(t, attrs, AttrTimePerOutputToken, id)
				}
				if attrs["gen_ai.latency.e2e"].(float64) > 5 {
					violations = append(violations, "e2e")
				}
				assert.Equal(t, len(violations) == 0, attrs[AttrSLOMet], id)
				if len(violations) > 0 {
					assert.Equal(t, violations, attrs[AttrSLOViolations], id)
				}
			}
			for i := 0; i < out.Spans.ResourceSpans().Len(); i++ {
				sss := out.Spans.ResourceSpans().At(i).ScopeSpans()
				for j := 0; j < sss.Len(); j++ {
					for k := 0; k < sss.At(j).Spans().Len(); k++ {
						if s := sss.At(j).Spans().At(k); s.Name() != "llm_request" {
							assert.NotContains(t, s.Attributes().AsRaw(), AttrSLOMet, "startup span %q untouched", s.Name())
							assert.Equal(t, ptrace.SpanKindInternal, s.Kind())
						}
					}
				}
			}
		})
	}
}

// TestRealVLLMSpanAllocations: spans real vLLM sent, unmarshalled from OTLP protobuf as the otlp receiver does,
// are enriched with pdata's allocations only: one box per value added (provider, operation, model, TPOT, decode
// throughput), and one growth of the attribute slice for each span that gets all five: vLLM's 13 attributes
// arrive in a slice with room for four more, not five. The README's performance section and the processor's
// README say so.
func TestRealVLLMSpanAllocations(t *testing.T) {
	fixture, err := vllmrequesttest.ReadRealVLLMFixture(filepath.Join("..", "..", "testdata", "vllm", "0.32.0"))
	require.NoError(t, err)
	wire, err := (&ptrace.ProtoMarshaler{}).MarshalTraces(fixture.Spans)
	require.NoError(t, err)
	p, err := newSpanEnricher(metadatatest.NewSettings(componenttest.NewTelemetry()), createDefaultConfig().(*Config))
	require.NoError(t, err)

	enrich := func() (allocs uint64, added, fullyEnriched int) {
		td, err := (&ptrace.ProtoUnmarshaler{}).UnmarshalTraces(wire)
		require.NoError(t, err)
		const vllmAttributes = 13 // what vLLM 0.32 puts on a request span
		sent, _ := vllmrequesttest.RealVLLMFixture{Spans: td}.RequestSpans()
		for _, s := range sent {
			require.Equal(t, vllmAttributes, s.Attributes().Len(), "vLLM 0.32's request span attributes")
		}
		var m0, m1 runtime.MemStats
		runtime.ReadMemStats(&m0)
		_, _ = p.processTraces(context.Background(), td)
		runtime.ReadMemStats(&m1)
		for _, s := range sent {
			n := s.Attributes().Len() - vllmAttributes
			added += n
			if n == 5 {
				fullyEnriched++
			}
		}
		return m1.Mallocs - m0.Mallocs, added, fullyEnriched
	}
	enrich() // the telemetry's first use
	allocs, added, fullyEnriched := enrich()
	require.Positive(t, fullyEnriched, "spans that get TPOT and decode throughput too")
	assert.Equal(t, uint64(added+fullyEnriched), allocs, "%d values added, %d spans with all five", added, fullyEnriched)
}
