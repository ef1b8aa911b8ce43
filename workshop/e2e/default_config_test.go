package e2e

import (
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-vllm/otelcol-vllm/workshop/testkit"
	"github.com/otelcol-vllm/otelcol-vllm/workshop/testkit/otlpsink"
)

// The embedded default listens on fixed ports (4317, 4318, 13133, 8888). The running tests layer loopback ports
// over it with yaml: sources, which read the same E2E_* variables as testdata/collector.yaml.
var defaultConfigOverrides = []string{
	"embedded:default",
	"yaml:receivers::otlp::protocols::grpc::endpoint: ${env:E2E_OTLP_GRPC_ENDPOINT}",
	"yaml:receivers::otlp::protocols::http::endpoint: ${env:E2E_OTLP_HTTP_ENDPOINT}",
	"yaml:extensions::health_check::endpoint: ${env:E2E_HEALTH_ENDPOINT}",
	"yaml:service::telemetry::metrics::readers:\n  - pull:\n      exporter:\n        prometheus:\n          host: 127.0.0.1\n          port: ${env:E2E_TELEMETRY_PORT}",
	"yaml:connectors::vllm::metrics_flush_interval: 1s",
}

// defaultSLO are the objectives of the embedded default, as vllmgen flags.
var defaultSLO = []string{"--slo-ttft=200ms", "--slo-tpot=50ms", "--slo-e2e=5s"}

// noBackends blanks the switches, whatever the environment of the test run holds.
var noBackends = map[string]string{"OTELCOL_VLLM_JAEGER_ENDPOINT": "", "OTELCOL_VLLM_REMOTE_WRITE_ENDPOINT": ""}

func TestDefaultConfigValidate(t *testing.T) {
	bin := testkit.Tool(t, testkit.CollectorBin)
	for _, tt := range []struct {
		name string
		env  []string
	}{
		{"no backends", []string{"OTELCOL_VLLM_JAEGER_ENDPOINT=", "OTELCOL_VLLM_REMOTE_WRITE_ENDPOINT="}},
		{"jaeger and remote write", []string{"OTELCOL_VLLM_JAEGER_ENDPOINT=localhost:14317", "OTELCOL_VLLM_REMOTE_WRITE_ENDPOINT=http://localhost:9090/api/v1/write"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			// no --config at all: the binary must fall back to embedded:default
			cmd := exec.Command(bin, "validate")
			cmd.Env = append(os.Environ(), tt.env...)
			out, err := cmd.CombinedOutput()
			require.NoError(t, err, "%s", out)
		})
	}
	// a source the embedded provider does not have is an error, not a silent default
	out, err := exec.Command(bin, "validate", "--config", "embedded:production").CombinedOutput()
	require.Error(t, err)
	assert.Contains(t, string(out), "unknown embedded configuration")
}

func TestDefaultConfigWithoutBackends(t *testing.T) {
	c := startCollector(t, "default-config", defaultConfigOverrides, noBackends)
	s := sendRun(t, genRun{seed: 21, count: 20, protocol: "grpc", shape: "v1", models: "llama-8b", resource: "service.instance.id=vllm-0", slo: defaultSLO},
		c.otlpGRPC, c.otlpHTTP)
	require.Positive(t, s.Total.Spans)

	// the status API shows the derived metrics, SLO counters included
	st := waitStatus(t, c, func(st statusDoc) bool {
		return len(st.Models) == 1 && st.Models[0].RequestsTotal == float64(s.Total.Spans)
	})
	assert.Equal(t, "llama-8b", st.Models[0].Model)
	assert.NotEmpty(t, st.Models[0].SLO)
	assert.EqualValues(t, s.Total.Spans, c.telemetryValue(t, "otelcol_receiver_accepted_spans"))

	// no error spam: no error-level line at all, and no warning repeated; only the nvml receiver may warn (on a
	// host without a GPU it says once that NVML is not usable)
	seen := map[string]bool{}
	for _, line := range strings.Split(c.proc.Output.String(), "\n") {
		// console encoding: time, level, caller, message, fields
		fields := strings.SplitN(line, "\t", 5)
		if len(fields) < 4 {
			continue
		}
		switch fields[1] {
		case "error":
			t.Errorf("error logged with no backend configured: %s", line)
		case "warn":
			assert.Contains(t, line, `"otelcol.component.id": "nvml"`, "unexpected warning: %s", line)
			assert.False(t, seen[fields[3]], "warning repeated: %s", line)
			seen[fields[3]] = true
		}
	}
}

func TestDefaultConfigWithBackends(t *testing.T) {
	prom := startPrometheus(t)
	sink := &otlpsink.Sink{}
	c := startCollector(t, "default-config", defaultConfigOverrides, map[string]string{
		"OTELCOL_VLLM_JAEGER_ENDPOINT":       otlpsink.StartGRPC(t, sink),
		"OTELCOL_VLLM_REMOTE_WRITE_ENDPOINT": prom.remoteWriteURL(),
	})
	s := sendRun(t, genRun{seed: 22, count: 40, protocol: "http/protobuf", shape: "v1", models: "llama-8b,qwen-7b", resource: "service.instance.id=vllm-0", slo: defaultSLO},
		c.otlpGRPC, c.otlpHTTP)
	sink.WaitForSpans(t, int(s.Total.Spans), 30*time.Second)
	prom.waitScalar(t, "sum("+promRequests+")", float64(s.Total.Spans), 60*time.Second)
	checkExpectations(t, prom, modelExpectations(s))
}
