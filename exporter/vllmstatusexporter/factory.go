package vllmstatusexporter // import "github.com/otelcol-vllm/otelcol-vllm/exporter/vllmstatusexporter"

import (
	"context"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/config/confighttp"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/exporter/exporterhelper"

	"github.com/otelcol-vllm/otelcol-vllm/exporter/vllmstatusexporter/internal/metadata"
)

// defaultEndpoint is loopback: the page and the API show model names and trace ids to whoever can connect.
const defaultEndpoint = "localhost:8899"

// NewFactory returns the factory of the vllm_status exporter.
func NewFactory() exporter.Factory {
	return exporter.NewFactory(metadata.Type, createDefaultConfig,
		exporter.WithMetrics(createMetrics, metadata.MetricsStability))
}

func createDefaultConfig() component.Config {
	server := confighttp.NewDefaultServerConfig()
	server.NetAddr.Endpoint = defaultEndpoint
	return &Config{
		ServerConfig:     server,
		Window:           5 * time.Minute,
		Windows:          []time.Duration{time.Minute, 5 * time.Minute, 15 * time.Minute},
		SnapshotInterval: 5 * time.Second,
		MaxModels:        64,
		MaxGPUs:          64,
		MaxSeries:        20000,
		Stale:            5 * time.Minute,
		SlowestRequests:  10,
		Alerts: AlertsConfig{
			Queue:     AlertRule{Enabled: true, Threshold: 5, For: time.Minute},
			TTFTP95:   AlertRule{Enabled: true, Threshold: 3, For: 5 * time.Minute},
			ErrorRate: AlertRule{Enabled: true, Threshold: 0.1, For: 5 * time.Minute},
			Goodput:   AlertRule{Enabled: true, Threshold: 0.9, For: 5 * time.Minute},
		},
	}
}

func createMetrics(ctx context.Context, set exporter.Settings, cfg component.Config) (exporter.Metrics, error) {
	e := newStatusExporter(cfg.(*Config), set.TelemetrySettings)
	return exporterhelper.NewMetrics(ctx, set, cfg, e.consumeMetrics,
		exporterhelper.WithStart(e.start),
		exporterhelper.WithShutdown(e.shutdown),
		exporterhelper.WithCapabilities(consumer.Capabilities{MutatesData: false}),
	)
}
