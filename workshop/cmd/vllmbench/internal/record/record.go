// Package record is vllmbench's per-request record: what the client measured, and the server's values
// joined from the request's trace.
package record // import "github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmbench/internal/record"

import "time"

// Record is one request. Latencies are seconds, as vLLM's benchmark writes them.
type Record struct {
	Index int `json:"index"`
	// SendTime is when the request was sent (just before the HTTP request is written).
	SendTime time.Time `json:"send_time"`
	// InputLen is the prompt length the dataset asked for (words of a random prompt; 0 when unknown).
	InputLen int `json:"input_len"`
	// PromptTokens and OutputTokens come from the last chunk of the stream that carries usage. Without one,
	// OutputTokens is counted (OutputTokensSource says how) and PromptTokens is the dataset's count.
	PromptTokens int64 `json:"prompt_tokens"`
	OutputTokens int64 `json:"output_tokens"`
	// OutputTokensSource is OutputTokensUsage when the server reported the count, else how vllmbench
	// counted it: OutputTokensTokenizer (--tokenizer on the streamed text) or OutputTokensChunks (one token
	// per content chunk). Empty for a failed request.
	OutputTokensSource string `json:"output_tokens_source"`
	// TTFT is send → first chunk with a choice; ITL the gaps between the following chunks; E2EL send → end
	// of stream; TPOT = (E2EL − TTFT) / (OutputTokens − 1), 0 for one output token.
	TTFT float64   `json:"ttft"`
	ITL  []float64 `json:"itl"`
	TPOT float64   `json:"tpot"`
	E2EL float64   `json:"e2el"`

	Success    bool   `json:"success"`
	HTTPStatus int    `json:"http_status"`
	Error      string `json:"error"`
	// ResponseID is the id of the response chunks (vLLM's gen_ai.request.id).
	ResponseID string `json:"response_id"`
	TraceID    string `json:"trace_id"`
	// SpanID is the client's span id, the parent vLLM's llm_request span must point to.
	SpanID string `json:"span_id"`

	// Server holds the llm_request span's values after a Jaeger join; ServerError says why a join failed.
	Server      *Server `json:"server,omitempty"`
	ServerError string  `json:"server_error,omitempty"`

	// Elapsed is how long the request took until it ended, successfully or not (for the client span).
	Elapsed time.Duration `json:"-"`
	// Sent is false for requests that never left (the run was interrupted first).
	Sent bool `json:"-"`
}

// Values of Record.OutputTokensSource.
const (
	OutputTokensUsage     = "usage"
	OutputTokensTokenizer = "tokenizer"
	OutputTokensChunks    = "chunks"
)

// Server is what the server's llm_request span says about the request. Latencies are seconds; TPOT and the
// SLO verdict are set by otelcol-vllm's vllm processor and absent when the span did not pass through it.
type Server struct {
	Queue         float64  `json:"queue"`
	Prefill       float64  `json:"prefill"`
	Decode        float64  `json:"decode"`
	Inference     float64  `json:"inference"`
	E2E           float64  `json:"e2e"`
	TTFT          float64  `json:"ttft"`
	PromptTokens  int64    `json:"prompt_tokens"`
	OutputTokens  int64    `json:"output_tokens"`
	TPOT          *float64 `json:"tpot,omitempty"`
	SLOMet        *bool    `json:"slo_met,omitempty"`
	SLOViolations []string `json:"slo_violations,omitempty"`
	RequestID     string   `json:"request_id"`
}

// TTFTGap is client TTFT − server TTFT: network, HTTP handling and tokenisation before vLLM's arrival time.
func (r *Record) TTFTGap() float64 { return r.TTFT - r.Server.TTFT }

// E2EGap is client E2EL − server e2e.
func (r *Record) E2EGap() float64 { return r.E2EL - r.Server.E2E }
