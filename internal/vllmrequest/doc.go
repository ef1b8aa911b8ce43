// Package vllmrequest turns one vLLM `llm_request` span into a request record: the latencies, token counts,
// derived values (TPOT, decode throughput, V0 prefill/decode) and labels (model, provider, operation) that the
// vllm processor writes onto spans and the vllm connector aggregates into metrics. It has one job and no
// collector dependencies beyond pdata, so both components share exactly the same numbers.
package vllmrequest // import "github.com/otelcol-vllm/otelcol-vllm/internal/vllmrequest"
