package vllmrequesttest_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/otelcol-vllm/otelcol-vllm/internal/vllmrequest"
	"github.com/otelcol-vllm/otelcol-vllm/internal/vllmrequest/vllmrequesttest"
)

// The writer's keys are the ones the derivation reads.
func TestKeysAreTheDerivations(t *testing.T) {
	for writer, reader := range map[string]string{
		vllmrequesttest.AttrResponseModel:    vllmrequest.AttrResponseModel,
		vllmrequesttest.AttrRequestModel:     vllmrequest.AttrRequestModel,
		vllmrequesttest.AttrRequestID:        vllmrequest.AttrRequestID,
		vllmrequesttest.AttrPromptTokens:     vllmrequest.AttrPromptTokens,
		vllmrequesttest.AttrCompletionTokens: vllmrequest.AttrCompletionTokens,
		vllmrequesttest.AttrQueue:            vllmrequest.AttrQueue,
		vllmrequesttest.AttrTTFT:             vllmrequest.AttrTimeToFirstToken,
		vllmrequesttest.AttrE2E:              vllmrequest.AttrEndToEnd,
		vllmrequesttest.AttrPrefill:          vllmrequest.AttrPrefill,
		vllmrequesttest.AttrDecode:           vllmrequest.AttrDecode,
		vllmrequesttest.AttrInference:        vllmrequest.AttrInference,
		vllmrequesttest.AttrScheduler:        vllmrequest.AttrScheduler,
		vllmrequesttest.AttrForward:          vllmrequest.AttrModelForward,
		vllmrequesttest.AttrExecute:          vllmrequest.AttrModelExecute,
	} {
		assert.Equal(t, reader, writer)
	}
}

func keys(s ptrace.Span) []string {
	var out []string
	s.Attributes().Range(func(k string, _ pcommon.Value) bool { out = append(out, k); return true })
	return out
}

// V1 writes the sampling attributes only when they are truthy, V0 always; each dialect in vLLM's order.
func TestWriteSpanKeys(t *testing.T) {
	greedy := vllmrequesttest.Request{TopP: 1, MaxTokens: 16, N: 1}
	for _, tt := range []struct {
		dialect vllmrequesttest.Dialect
		want    []string
	}{
		{vllmrequesttest.DialectV1, []string{"gen_ai.latency.time_to_first_token", "gen_ai.latency.e2e", "gen_ai.latency.time_in_queue",
			"gen_ai.usage.prompt_tokens", "gen_ai.usage.completion_tokens", "gen_ai.latency.time_in_model_prefill",
			"gen_ai.latency.time_in_model_decode", "gen_ai.latency.time_in_model_inference", "gen_ai.request.id",
			"gen_ai.request.top_p", "gen_ai.request.max_tokens", "gen_ai.request.n"}},
		{vllmrequesttest.DialectV0, []string{"gen_ai.response.model", "gen_ai.request.id", "gen_ai.request.temperature",
			"gen_ai.request.top_p", "gen_ai.request.max_tokens", "gen_ai.request.n", "gen_ai.usage.num_sequences",
			"gen_ai.usage.prompt_tokens", "gen_ai.usage.completion_tokens", "gen_ai.latency.time_in_queue",
			"gen_ai.latency.time_to_first_token", "gen_ai.latency.e2e", "gen_ai.latency.time_in_scheduler"}},
		{vllmrequesttest.DialectV0Detailed, []string{"gen_ai.response.model", "gen_ai.request.id", "gen_ai.request.temperature",
			"gen_ai.request.top_p", "gen_ai.request.max_tokens", "gen_ai.request.best_of", "gen_ai.request.n",
			"gen_ai.usage.num_sequences", "gen_ai.usage.prompt_tokens", "gen_ai.usage.completion_tokens",
			"gen_ai.latency.time_in_queue", "gen_ai.latency.time_to_first_token", "gen_ai.latency.e2e",
			"gen_ai.latency.time_in_scheduler", "gen_ai.latency.time_in_model_forward", "gen_ai.latency.time_in_model_execute"}},
	} {
		s := ptrace.NewSpan()
		vllmrequesttest.WriteSpan(s, &greedy, tt.dialect)
		assert.Equal(t, tt.want, keys(s), "dialect %d", tt.dialect)
		assert.Equal(t, vllmrequesttest.SpanName, s.Name())
		assert.Equal(t, ptrace.SpanKindServer, s.Kind())
		assert.True(t, s.ParentSpanID().IsEmpty())
	}
}
