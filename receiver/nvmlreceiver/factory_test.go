//go:build cgo

package nvmlreceiver

import (
	"context"
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/receiver/receivertest"

	"github.com/otelcol-vllm/otelcol-vllm/receiver/nvmlreceiver/internal/metadata"
)

func TestFactoryType(t *testing.T) {
	t.Parallel()
	f := NewFactory()
	assert.Equal(t, metadata.Type, f.Type())
	assert.Equal(t, "nvml", f.Type().String())
	assert.Equal(t, metadata.MetricsStability, f.MetricsStability())
}

// TestReceiverEndToEnd runs the receiver as the collector does: factory, scraper controller, consumer.
func TestReceiverEndToEnd(t *testing.T) {
	t.Parallel()
	lib := newFakeNVML(t, 8)
	factory := newFactory(func(*Config) nvml.Interface { return lib })
	cfg := factory.CreateDefaultConfig().(*Config)
	cfg.CollectionInterval = 10 * time.Millisecond
	cfg.InitialDelay = 0
	sink := &consumertest.MetricsSink{}
	rcv, err := factory.CreateMetrics(context.Background(), receivertest.NewNopSettings(metadata.Type), cfg, sink)
	require.NoError(t, err)
	require.NoError(t, rcv.Start(context.Background(), componenttest.NewNopHost()))
	require.Eventually(t, func() bool { return sink.DataPointCount() > 0 }, 5*time.Second, 5*time.Millisecond)
	require.NoError(t, rcv.Shutdown(context.Background()))

	md := sink.AllMetrics()[0]
	assert.Len(t, metricPoints(md, "hw.power"), 8)
	assert.Len(t, lib.InitCalls(), 1)
	assert.Len(t, lib.ShutdownCalls(), 1)
}

// TestScrapeFailuresReachTheScraperTelemetry: the collector's own scraper telemetry counts the receiver's
// partial scrape errors (errored metric points) beside the metrics that still reach the pipeline.
func TestScrapeFailuresReachTheScraperTelemetry(t *testing.T) {
	t.Parallel()
	lib := newFakeNVML(t, 2)
	lib.gpus[1].fail["GetTemperature"] = nvml.ERROR_UNKNOWN
	lib.gpus[1].fail["GetPowerUsage"] = nvml.ERROR_UNKNOWN
	factory := newFactory(func(*Config) nvml.Interface { return lib })
	cfg := factory.CreateDefaultConfig().(*Config)
	cfg.CollectionInterval = 10 * time.Millisecond
	cfg.InitialDelay = 0
	tt := componenttest.NewTelemetry()
	t.Cleanup(func() { require.NoError(t, tt.Shutdown(context.Background())) })
	set := receivertest.NewNopSettings(metadata.Type)
	set.TelemetrySettings = tt.NewTelemetrySettings()
	sink := &consumertest.MetricsSink{}
	rcv, err := factory.CreateMetrics(context.Background(), set, cfg, sink)
	require.NoError(t, err)
	require.NoError(t, rcv.Start(context.Background(), componenttest.NewNopHost()))
	require.Eventually(t, func() bool { return len(sink.AllMetrics()) >= 2 }, 5*time.Second, 5*time.Millisecond)
	require.NoError(t, rcv.Shutdown(context.Background()))

	md := sink.AllMetrics()[0]
	assert.Len(t, metricPoints(md, "hw.power"), 1, "the healthy GPU's power comes with the failures")
	assert.Len(t, findPoints(md, "hw.power", gpuAttrs(0)), 1)
	scrapes := int64(len(sink.AllMetrics()))
	errored := counterValue(t, tt, "otelcol_scraper_errored_metric_points")
	assert.GreaterOrEqual(t, errored, 2*scrapes, "two failed calls per scrape")
	assert.Zero(t, errored%2)
	assert.Positive(t, counterValue(t, tt, "otelcol_scraper_scraped_metric_points"))
}

func TestReceiverStartsWithoutLibrary(t *testing.T) {
	t.Parallel()
	factory := NewFactory()
	cfg := factory.CreateDefaultConfig().(*Config)
	cfg.LibraryPath = "/nonexistent/libnvidia-ml.so.1"
	cfg.CollectionInterval = 10 * time.Millisecond
	cfg.InitialDelay = 0
	sink := &consumertest.MetricsSink{}
	rcv, err := factory.CreateMetrics(context.Background(), receivertest.NewNopSettings(metadata.Type), cfg, sink)
	require.NoError(t, err)
	require.NoError(t, rcv.Start(context.Background(), componenttest.NewNopHost()))
	require.Eventually(t, func() bool { return len(sink.AllMetrics()) >= 3 }, 5*time.Second, 5*time.Millisecond)
	require.NoError(t, rcv.Shutdown(context.Background()))
	assert.Zero(t, sink.DataPointCount())
}
