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
	// AttrInputTokens and AttrOutputTokens are the GenAI conventions' names for the same counts, which a proposed
	// vLLM change (PR #40799) sends instead; both spellings are read, the conventions' winning when a span has both.
	AttrInputTokens  = "gen_ai.usage.input_tokens"
	AttrOutputTokens = "gen_ai.usage.output_tokens"
	// AttrCacheReadInputTokens counts the prompt tokens served from the prefix cache (the conventions' name; a
	// proposed vLLM change, PR #54476). They are part of the input tokens.
	AttrCacheReadInputTokens = "gen_ai.usage.cache_read.input_tokens"
	AttrRequestID            = "gen_ai.request.id"
	// AttrFinishReasons is not sent by mainline vLLM; a proposed change (vLLM PR #32162) sends it for aborted
	// requests as a JSON string ('["abort"]'), the conventions as a string array: both are read.
	AttrFinishReasons = "gen_ai.response.finish_reasons"

	latencyPrefix = "gen_ai.latency."
)

// Attribute keys of the OpenTelemetry GenAI semantic conventions that this package reads or produces.
const (
	AttrProviderName  = "gen_ai.provider.name"
	AttrOperationName = "gen_ai.operation.name"
	AttrResponseModel = "gen_ai.response.model"
	AttrRequestModel  = "gen_ai.request.model"
	AttrErrorType     = "error.type"
)

// Values of error.type the derivation core sets: the conventions' fallback for an error of unknown class, and
// a request the client or vLLM aborted.
const (
	ErrorTypeOther = "_OTHER"
	ErrorTypeAbort = "abort"
)

// Operation names inferred from vLLM's request id: the GenAI conventions' names where they have one (chat,
// text_completion, embeddings), vLLM's API name otherwise.
const (
	OperationChat           = "chat"
	OperationTextCompletion = "text_completion"
	OperationEmbeddings     = "embeddings"
	OperationClassify       = "classify"
	OperationScore          = "score"
	OperationPooling        = "pooling"
	OperationTranscription  = "transcription"
	OperationTranslation    = "translation"
)

// requestIDPrefixes maps the request id prefix of each vLLM API (vllm/entrypoints/**/serving.py) to its
// operation. Longer prefixes come first where one starts another.
var requestIDPrefixes = [...]struct{ prefix, operation string }{
	{"chatcmpl-", OperationChat},
	{"cmpl-", OperationTextCompletion},
	{"embd-", OperationEmbeddings},
	{"resp_", OperationChat}, // the Responses API
	{"classify-", OperationClassify},
	{"score-", OperationScore}, // also rerank
	{"generative-scoring-", OperationScore},
	{"pooling-", OperationPooling},
	{"transcribe-", OperationTranscription},
	{"rt-", OperationTranscription}, // realtime transcription
	{"translate-", OperationTranslation},
	{"generate-tokens-", OperationTextCompletion},
}

// IsGenerative says whether an operation generates output tokens: the others (embeddings, classify, score,
// pooling) have no first token and no decode, so TTFT, TPOT, decode and output tokens mean nothing for them.
func IsGenerative(operation string) bool {
	switch operation {
	case OperationEmbeddings, OperationClassify, OperationScore, OperationPooling:
		return false
	}
	return true
}
