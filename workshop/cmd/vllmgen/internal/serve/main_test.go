package serve

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmgen/internal/otlpsend"
	"github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmgen/internal/workload"
)

func TestParseFlags(t *testing.T) {
	t.Setenv("OTEL_SERVICE_NAME", "")
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "")
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "")
	o, err := ParseFlags(nil, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, "127.0.0.1:8000", o.Listen)
	assert.Equal(t, DefaultMaxNumSeqs, o.Config.MaxNumSeqs)
	assert.Equal(t, workload.ProfileChat, o.Config.Profile)
	assert.Equal(t, otlpsend.ProtocolGRPC, o.Protocol)
	assert.Empty(t, o.Endpoint, "no tracing unless asked for, as vLLM")
	assert.Equal(t, "unknown_service", o.SpanConfig.ServiceName)
	assert.Equal(t, 5*time.Second, o.SpanConfig.ExportDelay)
	assert.NotZero(t, o.Config.Seed)
	assert.Nil(t, o.Config.Timing)

	o, err = ParseFlags([]string{"--port", "0", "--otlp-traces-endpoint", "grpc://otelcol:4317", "--profile", "batch",
		"--max-num-seqs", "4", "--straggler-every", "3", "--fixed-prefill", "5ms", "--fixed-tpot", "1ms", "--seed", "7"}, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, "otelcol:4317", o.Endpoint)
	assert.Equal(t, 4, o.Config.MaxNumSeqs)
	assert.Equal(t, 3, o.Config.StragglerEvery)
	assert.Equal(t, uint64(7), o.Config.Seed)
	require.NotNil(t, o.Config.Timing)
	assert.Equal(t, workload.ServingTiming{Prefill: 5 * time.Millisecond, TPOT: time.Millisecond, OutputTokens: 9}, o.Config.Timing(nil, 3, 9))

	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf")
	t.Setenv("OTEL_SERVICE_NAME", "vllm-a")
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "250")
	o, err = ParseFlags([]string{"--otlp-traces-endpoint", "http://otelcol:4318"}, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, otlpsend.ProtocolHTTP, o.Protocol)
	assert.Equal(t, "http://otelcol:4318/v1/traces", o.Endpoint)
	assert.Equal(t, "vllm-a", o.SpanConfig.ServiceName)
	assert.Equal(t, 250*time.Millisecond, o.SpanConfig.ExportDelay)
}

func TestParseFlagsNamesTheKey(t *testing.T) {
	for key, args := range map[string][]string{
		"--profile":              {"--profile", "gpu"},
		"--port":                 {"--port", "70000"},
		"--max-num-seqs":         {"--max-num-seqs", "0"},
		"--default-max-tokens":   {"--default-max-tokens", "0"},
		"--straggler-every":      {"--straggler-every", "-1"},
		"--fixed-prefill":        {"--fixed-prefill", "-1ms"},
		"--otlp-protocol":        {"--otlp-protocol", "http/json"},
		"--otlp-traces-endpoint": {"--otlp-traces-endpoint", "nohost"},
		"--otlp-export-delay":    {"--otlp-export-delay", "0s"},
	} {
		t.Run(key, func(t *testing.T) {
			_, err := ParseFlags(args, io.Discard)
			require.Error(t, err)
			assert.Contains(t, err.Error(), key)
		})
	}
}

func TestMainServesUntilCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var stderr syncBuffer
	done := make(chan int)
	go func() { done <- Main(ctx, []string{"--port", "0", "--fixed-tpot", "1ms"}, io.Discard, &stderr) }()
	require.Eventually(t, func() bool { return strings.Contains(stderr.String(), "on http://127.0.0.1:") }, 10*time.Second, 5*time.Millisecond)
	assert.Contains(t, stderr.String(), "fixed: prefill 0s, 1ms per token")
	_, rest, _ := strings.Cut(stderr.String(), "on http://")
	addr, _, _ := strings.Cut(rest, " ")
	resp, err := http.Post("http://"+addr+"/v1/completions", "application/json",
		strings.NewReader(`{"model":"meta-llama/Llama-3.1-8B-Instruct","prompt":"a","max_tokens":2,"stream":true}`))
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	metrics, err := http.Get("http://" + addr + "/metrics")
	require.NoError(t, err)
	text, err := io.ReadAll(metrics.Body)
	metrics.Body.Close()
	require.NoError(t, err)
	assert.Contains(t, string(text), `vllm:request_success_total{model_name="meta-llama/Llama-3.1-8B-Instruct",engine="0",finished_reason="length"} 1.0`+"\n",
		"/metrics on the API listener")
	cancel()
	assert.Equal(t, 0, <-done)
	assert.Contains(t, stderr.String(), "vllmgen serve: requests finished 1, aborted 0\n")
	assert.Equal(t, 2, Main(context.Background(), []string{"--bogus"}, io.Discard, io.Discard))
}
