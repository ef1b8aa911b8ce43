package vllmprocessor

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/confmaptest"

	"github.com/otelcol-vllm/otelcol-vllm/internal/vllmrequest"
	"github.com/otelcol-vllm/otelcol-vllm/processor/vllmprocessor/internal/metadata"
)

func dur(d time.Duration) *time.Duration { return &d }

func TestLoadConfig(t *testing.T) {
	cm, err := confmaptest.LoadConf(filepath.Join("testdata", "config.yaml"))
	require.NoError(t, err)
	tests := []struct {
		id           component.ID
		expected     *Config
		unmarshalErr string
		validateErr  string
	}{
		{id: component.NewID(metadata.Type), expected: &Config{Request: vllmrequest.NewDefaultConfig()}},
		{
			id: component.NewIDWithName(metadata.Type, "full"),
			expected: &Config{Request: vllmrequest.Config{
				SpanNames:  []string{"llm_request", "generate"},
				Model:      vllmrequest.ModelConfig{Attributes: []string{"gen_ai.request.model"}, Default: "my-model"},
				Provider:   "vllm-prod",
				MaxLatency: time.Hour,
				SLO: vllmrequest.SLOConfig{
					TTFT: dur(200 * time.Millisecond), TPOT: dur(50 * time.Millisecond), E2E: dur(5 * time.Second), Queue: dur(time.Second),
				},
			}, SamplingPriority: true},
		},
		{id: component.NewIDWithName(metadata.Type, "zero_slo"), validateErr: "slo.ttft: must be positive, got 0s"},
		{id: component.NewIDWithName(metadata.Type, "no_span_names"), validateErr: "span_names: must list at least one span name"},
		{id: component.NewIDWithName(metadata.Type, "typo"), unmarshalErr: "spam_names"},
		{id: component.NewIDWithName(metadata.Type, "nested_typo"), unmarshalErr: "ttf"},
	}
	for _, tt := range tests {
		t.Run(tt.id.String(), func(t *testing.T) {
			cfg := NewFactory().CreateDefaultConfig()
			sub, err := cm.Sub(tt.id.String())
			require.NoError(t, err)
			err = sub.Unmarshal(cfg)
			if tt.unmarshalErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), "has invalid keys: "+tt.unmarshalErr)
				return
			}
			require.NoError(t, err)
			err = confmap.Validate(cfg)
			if tt.validateErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.validateErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.expected, cfg)
		})
	}
}
