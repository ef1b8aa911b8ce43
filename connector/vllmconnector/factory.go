package vllmconnector // import "github.com/otelcol-vllm/otelcol-vllm/connector/vllmconnector"

import (
	"context"
	"time"

	"github.com/jonboulle/clockwork"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/connector"
	"go.opentelemetry.io/collector/consumer"

	"github.com/otelcol-vllm/otelcol-vllm/connector/vllmconnector/internal/metadata"
	"github.com/otelcol-vllm/otelcol-vllm/internal/vllmrequest"
)

// NewFactory returns the factory of the vllm connector (traces → metrics).
func NewFactory() connector.Factory {
	return connector.NewFactory(metadata.Type, createDefaultConfig,
		connector.WithTracesToMetrics(createTracesToMetrics, metadata.TracesToMetricsStability))
}

func createDefaultConfig() component.Config {
	return &Config{
		Request:                vllmrequest.NewDefaultConfig(),
		ResourceAttributes:     []string{"service.name", "service.namespace", "service.instance.id", "k8s.pod.name", "k8s.namespace.name"},
		Histograms:             HistogramsConfig{Type: HistogramExplicit, MaxSize: 160, Preset: PresetVLLM, SingleTokenTPOT: SingleTokenTPOTOmit},
		Exemplars:              ExemplarsConfig{MaxPerDataPoint: 5},
		AggregationTemporality: TemporalityCumulative,
		MetricsFlushInterval:   15 * time.Second,
		MetricsExpiration:      10 * time.Minute,
		CardinalityLimit:       5000,
		MaxAttributeLength:     256,
		MaxRequestBytes:        1 << 20,
		DuplicateWindow:        65536,
		Sampling:               SamplingConfig{Ratio: 1},
	}
}

func createTracesToMetrics(_ context.Context, set connector.Settings, cfg component.Config, next consumer.Metrics) (connector.Traces, error) {
	return newConnector(set, cfg.(*Config), next, clockwork.NewRealClock())
}
