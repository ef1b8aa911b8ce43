package vllmgen

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmgen/internal/cli"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestMainDispatches(t *testing.T) {
	dryRun := []string{"--dry-run", "--seed", "5", "--count", "20", "--summary", "json"}
	var implicit, explicit bytes.Buffer
	require.Equal(t, cli.ExitOK, Main(context.Background(), dryRun, &implicit, io.Discard))
	require.Equal(t, cli.ExitOK, Main(context.Background(), append([]string{"send"}, dryRun...), &explicit, io.Discard))
	var a, b map[string]any
	require.NoError(t, json.Unmarshal(implicit.Bytes(), &a))
	require.NoError(t, json.Unmarshal(explicit.Bytes(), &b))
	assert.EqualValues(t, 5, a["seed"])
	assert.Equal(t, a["total"], b["total"], "vllmgen and vllmgen send are the same command")

	var stderr strings.Builder
	assert.Equal(t, cli.ExitUsage, Main(context.Background(), []string{"serve", "--otlp-endpoint", "x:1"}, io.Discard, &stderr),
		"serve keeps vLLM's --otlp-traces-endpoint")
	assert.Contains(t, stderr.String(), "vllmgen serve: flag provided but not defined: -otlp-endpoint")
	stderr.Reset()
	assert.Equal(t, cli.ExitUsage, Main(context.Background(), []string{"--endpoint", "x:1"}, io.Discard, &stderr))
	assert.Contains(t, stderr.String(), "vllmgen: flag provided but not defined: -endpoint")
	assert.Equal(t, cli.ExitOK, Main(context.Background(), []string{"-h"}, io.Discard, io.Discard))
	assert.Equal(t, cli.ExitOK, Main(context.Background(), []string{"serve", "-h"}, io.Discard, io.Discard))
}
