package vllmstatusexporter

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/confmaptest"

	"github.com/otelcol-vllm/otelcol-vllm/exporter/vllmstatusexporter/internal/metadata"
)

func TestLoadConfig(t *testing.T) {
	t.Parallel()
	cm, err := confmaptest.LoadConf(filepath.Join("testdata", "config.yaml"))
	require.NoError(t, err)
	load := func(name string) (*Config, error) {
		cfg := createDefaultConfig().(*Config)
		sub, err := cm.Sub(component.NewIDWithName(metadata.Type, name).String())
		require.NoError(t, err)
		require.NoError(t, sub.Unmarshal(cfg))
		return cfg, confmap.Validate(cfg)
	}

	def, err := load("")
	require.NoError(t, err)
	assert.Equal(t, "localhost:8899", def.ServerConfig.NetAddr.Endpoint)
	assert.Equal(t, 5*time.Minute, def.Window)
	assert.Equal(t, AlertRule{Enabled: true, Threshold: 5, For: time.Minute}, def.Alerts.Queue)
	assert.Equal(t, AlertRule{Enabled: true, Threshold: 3, For: 5 * time.Minute}, def.Alerts.TTFTP95)
	assert.Equal(t, AlertRule{Enabled: true, Threshold: 0.1, For: 5 * time.Minute}, def.Alerts.ErrorRate)
	assert.Equal(t, AlertRule{Enabled: true, Threshold: 0.9, For: 5 * time.Minute}, def.Alerts.Goodput)

	custom, err := load("custom")
	require.NoError(t, err)
	assert.Equal(t, "0.0.0.0:9999", custom.ServerConfig.NetAddr.Endpoint)
	assert.Equal(t, []time.Duration{time.Minute, 10 * time.Minute}, custom.Windows)
	assert.Equal(t, 8, custom.MaxModels)
	assert.Equal(t, AlertRule{Enabled: true, Threshold: 10, For: 30 * time.Second}, custom.Alerts.Queue)
	assert.False(t, custom.Alerts.Goodput.Enabled)
	assert.InDelta(t, 0.9, custom.Alerts.Goodput.Threshold, 0, "an omitted key keeps its default")

	for name, want := range map[string]string{
		"bad_window": "window 2m0s must be one of windows",
		"bad_jaeger": "jaeger_url must be an absolute http(s) URL",
		"bad_ratio":  "thresholds are ratios",
	} {
		_, err := load(name)
		assert.ErrorContains(t, err, want, name)
	}
}
