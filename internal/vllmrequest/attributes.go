package vllmrequest // import "github.com/otelcol-vllm/otelcol-vllm/internal/vllmrequest"

// Span attribute keys vLLM sets on its request span (every version uses the same keys; see the README).
const (
	AttrQueue            = "gen_ai.latency.time_in_queue"
	AttrPrefill          = "gen_ai.latency.time_in_model_prefill"
	AttrDecode           = "gen_ai.latency.time_in_model_decode"
	AttrInference        = "gen_ai.latency.time_in_model_inference"
	AttrTimeToFirstToken = "gen_ai.latency.time_to_first_token"
	AttrEndToEnd         = "gen_ai.latency.e2e"
	AttrScheduler        = "gen_ai.latency.time_in_scheduler"
	AttrModelForward     = "gen_ai.latency.time_in_model_forward"
	AttrModelExecute     = "gen_ai.latency.time_in_model_execute"

	AttrPromptTokens     = "gen_ai.usage.prompt_tokens"
	AttrCompletionTokens = "gen_ai.usage.completion_tokens"
	AttrRequestID        = "gen_ai.request.id"

	latencyPrefix = "gen_ai.latency."
)

// Attribute keys of the OpenTelemetry GenAI semantic conventions that this package reads or produces.
const (
	AttrProviderName  = "gen_ai.provider.name"
	AttrOperationName = "gen_ai.operation.name"
	AttrResponseModel = "gen_ai.response.model"
	AttrRequestModel  = "gen_ai.request.model"
)

// Operation names of the GenAI semantic conventions inferred from vLLM's request id.
const (
	OperationChat           = "chat"
	OperationTextCompletion = "text_completion"
	OperationEmbeddings     = "embeddings"
)
