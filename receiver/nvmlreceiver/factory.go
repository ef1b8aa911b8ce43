//go:build cgo

package nvmlreceiver // import "github.com/otelcol-vllm/otelcol-vllm/receiver/nvmlreceiver"

import (
	"context"
	"errors"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/receiver"
	"go.opentelemetry.io/collector/scraper"
	"go.opentelemetry.io/collector/scraper/scraperhelper"

	"github.com/otelcol-vllm/otelcol-vllm/receiver/nvmlreceiver/internal/metadata"
)

// libraryFactory returns the NVML binding for a configuration. Tests swap it for go-nvml's mocks.
type libraryFactory func(cfg *Config) nvml.Interface

// NewFactory creates the factory of the nvml receiver.
func NewFactory() receiver.Factory {
	return newFactory(systemLibrary)
}

func newFactory(newLibrary libraryFactory) receiver.Factory {
	return receiver.NewFactory(
		metadata.Type,
		createDefaultConfig,
		receiver.WithMetrics(func(ctx context.Context, set receiver.Settings, cfg component.Config, next consumer.Metrics) (receiver.Metrics, error) {
			return createMetricsReceiver(ctx, set, cfg, next, newLibrary)
		}, metadata.MetricsStability),
	)
}

// systemLibrary binds to libnvidia-ml lazily: nothing is loaded until Init.
func systemLibrary(cfg *Config) nvml.Interface {
	if cfg.LibraryPath == "" {
		return nvml.New()
	}
	return nvml.New(nvml.WithLibraryPath(cfg.LibraryPath))
}

func createMetricsReceiver(
	_ context.Context,
	set receiver.Settings,
	baseCfg component.Config,
	next consumer.Metrics,
	newLibrary libraryFactory,
) (receiver.Metrics, error) {
	cfg, ok := baseCfg.(*Config)
	if !ok {
		return nil, errors.New("nvml receiver: unexpected config type")
	}
	s, err := newNVMLScraper(cfg, set, newLibrary(cfg))
	if err != nil {
		return nil, err
	}
	sc, err := scraper.NewMetrics(s.scrape, scraper.WithStart(s.start), scraper.WithShutdown(s.shutdown))
	if err != nil {
		return nil, err
	}
	return scraperhelper.NewMetricsController(&cfg.ControllerConfig, set, next, scraperhelper.AddMetricsScraper(metadata.Type, sc))
}
