package send

import (
	"errors"
	"flag"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmgen/internal/headsample"
	"github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmgen/internal/otlpsend"
	"github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmgen/internal/workload"
)

func TestParseFlagsDefaults(t *testing.T) {
	o, err := ParseFlags(nil, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, otlpsend.ProtocolGRPC, o.Protocol)
	assert.Equal(t, "127.0.0.1:4317", o.Endpoint)
	assert.Equal(t, workload.ShapeV1, o.Shape)
	assert.Equal(t, workload.ProfileChat, o.Profile)
	assert.Equal(t, workload.AnchorArrival, o.Anchor)
	assert.Equal(t, int64(100), o.Count)
	assert.Zero(t, o.Duration)
	assert.Zero(t, o.Rate)
	assert.Equal(t, []string{defaultModel}, o.Models)
	assert.Equal(t, "vllm-server", o.ServiceName)
	assert.True(t, o.SeedFromClock)
	assert.NotZero(t, o.Seed)
	assert.Equal(t, 100, o.Batch)
	assert.GreaterOrEqual(t, o.Workers, 1)
	assert.LessOrEqual(t, o.Workers, 4)
	assert.False(t, o.SLO.Any())
	assert.False(t, o.JSONSummary)
	assert.False(t, o.DryRun)
	assert.Equal(t, VLLMOptions{MetricsLinger: 30 * time.Second}, o.VLLM)
	assert.Equal(t, SamplingOptions{Ratio: 1, TraceState: headsample.ModeThreshold}, o.Sampling, "no sampling")
}

func TestParseFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		check   func(t *testing.T, o Options)
		wantErr string
	}{
		{
			name: "http default endpoint",
			args: []string{"--otlp-protocol", "http"},
			check: func(t *testing.T, o Options) {
				assert.Equal(t, otlpsend.ProtocolHTTP, o.Protocol)
				assert.Equal(t, "http://127.0.0.1:4318/v1/traces", o.Endpoint)
			},
		},
		{
			name: "http/protobuf with a URL without path",
			args: []string{"--otlp-protocol", "http/protobuf", "--otlp-endpoint", "https://otelcol.example:4318"},
			check: func(t *testing.T, o Options) {
				assert.Equal(t, otlpsend.ProtocolHTTP, o.Protocol)
				assert.Equal(t, "https://otelcol.example:4318/v1/traces", o.Endpoint)
			},
		},
		{
			name: "grpc dns target",
			args: []string{"--otlp-endpoint", "dns:///otelcol:4317"},
			check: func(t *testing.T, o Options) {
				assert.Equal(t, otlpsend.ProtocolGRPC, o.Protocol)
				assert.Equal(t, "otelcol:4317", o.Endpoint)
			},
		},
		{
			name: "everything set",
			args: []string{
				"--otlp-endpoint", "collector:4317", "--shape", "v0-detailed", "--count", "5", "--duration", "30s",
				"--rate", "250.5", "--models", "a, b ,,c", "--service-name", "svc", "--resource", "service.instance.id=gen-a, k=v=w",
				"--seed", "42", "--profile", "mixed", "--n-prob", "0.5", "--greedy-prob", "1", "--batch", "7", "--workers", "3",
				"--slo-ttft", "200ms", "--slo-tpot", "50ms", "--slo-e2e", "5s", "--slo-queue", "1s", "--summary", "json",
				"--dry-run", "--anchor", "finish", "--timeout", "2s",
			},
			check: func(t *testing.T, o Options) {
				assert.Equal(t, "collector:4317", o.Endpoint)
				assert.Equal(t, workload.ShapeV0Detailed, o.Shape)
				assert.Equal(t, int64(5), o.Count)
				assert.Equal(t, 30*time.Second, o.Duration)
				assert.Equal(t, 250.5, o.Rate)
				assert.Equal(t, []string{"a", "b", "c"}, o.Models)
				assert.Equal(t, "svc", o.ServiceName)
				assert.Equal(t, []workload.KeyValue{{Key: "service.instance.id", Value: "gen-a"}, {Key: "k", Value: "v=w"}}, o.Resource)
				assert.Equal(t, uint64(42), o.Seed)
				assert.False(t, o.SeedFromClock)
				assert.Equal(t, workload.ProfileMixed, o.Profile)
				assert.Equal(t, 0.5, o.NProb)
				assert.Equal(t, 1.0, o.GreedyProb)
				assert.Equal(t, 7, o.Batch)
				assert.Equal(t, 3, o.Workers)
				assert.Equal(t, workload.SLO{TTFT: 200 * time.Millisecond, TPOT: 50 * time.Millisecond, E2E: 5 * time.Second, Queue: time.Second}, o.SLO)
				assert.True(t, o.JSONSummary)
				assert.True(t, o.DryRun)
				assert.Equal(t, workload.AnchorFinish, o.Anchor)
				assert.Equal(t, 2*time.Second, o.Timeout)
			},
		},
		{
			name: "duration alone means no count limit",
			args: []string{"--duration", "1m"},
			check: func(t *testing.T, o Options) {
				assert.Zero(t, o.Count)
				assert.Equal(t, time.Minute, o.Duration)
			},
		},
		{
			name: "vLLM side",
			args: []string{"--metrics-listen", "127.0.0.1:8000", "--metrics-linger", "0", "--span-loss", "0.1", "--abort-fraction", "0.05"},
			check: func(t *testing.T, o Options) {
				assert.Equal(t, VLLMOptions{MetricsListen: "127.0.0.1:8000", SpanLoss: 0.1, AbortFraction: 0.05}, o.VLLM)
			},
		},
		{
			name: "head sampling with thresholds",
			args: []string{"--sample-ratio", "0.1"},
			check: func(t *testing.T, o Options) {
				assert.Equal(t, SamplingOptions{Enabled: true, Ratio: 0.1, TraceState: headsample.ModeThreshold}, o.Sampling)
			},
		},
		{
			name: "head sampling without tracestate",
			args: []string{"--sample-ratio", "0.25", "--sample-tracestate", "none"},
			check: func(t *testing.T, o Options) {
				assert.Equal(t, SamplingOptions{Enabled: true, Ratio: 0.25, TraceState: headsample.ModeNone}, o.Sampling)
			},
		},
		{
			name: "sample ratio 1 given samples everything",
			args: []string{"--sample-ratio", "1"},
			check: func(t *testing.T, o Options) {
				assert.Equal(t, SamplingOptions{Enabled: true, Ratio: 1, TraceState: headsample.ModeThreshold}, o.Sampling)
			},
		},
		{name: "sample ratio zero", args: []string{"--sample-ratio", "0"}, wantErr: "--sample-ratio: sampling ratio must be within (0, 1], got 0"},
		{name: "sample ratio above one", args: []string{"--sample-ratio", "1.5"}, wantErr: "--sample-ratio: sampling ratio must be within (0, 1], got 1.5"},
		{name: "sample ratio NaN", args: []string{"--sample-ratio", "NaN"}, wantErr: "--sample-ratio: sampling ratio must be within (0, 1], got NaN"},
		{name: "sample ratio negative", args: []string{"--sample-ratio", "-0.1"}, wantErr: "--sample-ratio: sampling ratio must be within (0, 1]"},
		{name: "sample ratio below 2^-56", args: []string{"--sample-ratio", "1e-30"}, wantErr: "--sample-ratio: sampling ratio 1e-30"},
		{name: "sample tracestate", args: []string{"--sample-ratio", "0.5", "--sample-tracestate", "rv"}, wantErr: `--sample-tracestate: unknown tracestate mode "rv"`},
		{name: "sample tracestate alone", args: []string{"--sample-tracestate", "none"}, wantErr: "--sample-tracestate needs --sample-ratio"},
		{name: "metrics listen", args: []string{"--metrics-listen", "8000"}, wantErr: `--metrics-listen: want host:port, got "8000"`},
		{name: "negative linger", args: []string{"--metrics-linger", "-1s"}, wantErr: "--metrics-linger must not be negative"},
		{name: "span loss", args: []string{"--span-loss", "1.5"}, wantErr: "--span-loss must be within [0, 1]"},
		{name: "abort fraction", args: []string{"--abort-fraction", "NaN"}, wantErr: "--abort-fraction must be within [0, 1]"},
		{name: "unknown shape", args: []string{"--shape", "v2"}, wantErr: `unknown shape "v2"`},
		{name: "unknown protocol", args: []string{"--otlp-protocol", "http/json"}, wantErr: `unknown protocol`},
		{name: "bad endpoint", args: []string{"--otlp-endpoint", "nohostport"}, wantErr: "--otlp-endpoint: gRPC endpoint \"nohostport\": want host:port"},
		{name: "old endpoint flag", args: []string{"--endpoint", "collector:4317"}, wantErr: "flag provided but not defined: -endpoint"},
		{name: "unknown profile", args: []string{"--profile", "bursty"}, wantErr: `unknown profile "bursty"`},
		{name: "negative count", args: []string{"--count", "-1"}, wantErr: "--count must not be negative"},
		{name: "negative duration", args: []string{"--duration", "-1s"}, wantErr: "--duration must not be negative"},
		{name: "negative rate", args: []string{"--rate", "-5"}, wantErr: "--rate must be a non-negative number"},
		{name: "infinite rate", args: []string{"--rate", "+Inf"}, wantErr: "--rate must be a non-negative number"},
		{name: "no models", args: []string{"--models", " , "}, wantErr: "--models needs at least one model"},
		{name: "bad resource", args: []string{"--resource", "novalue"}, wantErr: `"novalue" is not key=value`},
		{name: "n prob", args: []string{"--n-prob", "2"}, wantErr: "--n-prob must be within [0, 1]"},
		{name: "greedy prob", args: []string{"--greedy-prob", "-0.1"}, wantErr: "--greedy-prob must be within [0, 1]"},
		{name: "batch zero", args: []string{"--batch", "0"}, wantErr: "--batch must be within"},
		{name: "workers zero", args: []string{"--workers", "0"}, wantErr: "--workers must be within"},
		{name: "timeout zero", args: []string{"--timeout", "0s"}, wantErr: "--timeout must be positive"},
		{name: "negative slo", args: []string{"--slo-ttft", "-1s"}, wantErr: "must not be negative"},
		{name: "summary format", args: []string{"--summary", "yaml"}, wantErr: "--summary must be text or json"},
		{name: "anchor", args: []string{"--anchor", "middle"}, wantErr: `unknown anchor "middle"`},
		{name: "dry run duration without rate", args: []string{"--dry-run", "--duration", "5s"}, wantErr: "needs --rate"},
		{name: "positional argument", args: []string{"extra"}, wantErr: "unexpected arguments"},
		{name: "unknown flag", args: []string{"--qps", "5"}, wantErr: "flag provided but not defined: -qps"},
		{name: "several errors at once", args: []string{"--batch", "0", "--workers", "0"}, wantErr: "--workers must be within"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := ParseFlags(tt.args, io.Discard)
			if tt.wantErr != "" {
				assert.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			tt.check(t, o)
		})
	}
}

func TestParseFlagsHelp(t *testing.T) {
	_, err := ParseFlags([]string{"-h"}, io.Discard)
	assert.True(t, errors.Is(err, flag.ErrHelp))
}
