//go:build cgo

package nvmlreceiver

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"
	"github.com/jonboulle/clockwork"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/metric/metricdata/metricdatatest"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/otelcol-vllm/otelcol-vllm/receiver/nvmlreceiver/internal/metadatatest"
)

// newTelemetryScraper is newTestScraper with the receiver's internal telemetry recorded in tt.
func newTelemetryScraper(t *testing.T, lib nvml.Interface, procRoot string, mutate func(*Config)) (*testScraper, *componenttest.Telemetry) {
	t.Helper()
	tt := componenttest.NewTelemetry()
	t.Cleanup(func() { require.NoError(t, tt.Shutdown(context.Background())) })
	cfg := createDefaultConfig().(*Config)
	if mutate != nil {
		mutate(cfg)
	}
	core, logs := observer.New(zap.DebugLevel)
	set := metadatatest.NewSettings(tt)
	set.Logger = zap.New(core)
	s, err := newNVMLScraper(cfg, set, lib)
	require.NoError(t, err)
	clock := clockwork.NewFakeClockAt(testStart)
	s.clock = clock
	s.procs = newProcessNames(procRoot)
	return &testScraper{nvmlScraper: s, clock: clock, logs: logs}, tt
}

// counterValue sums an int64 telemetry counter's points whose attributes include match.
func counterValue(t *testing.T, tt *componenttest.Telemetry, name string, match ...attribute.KeyValue) int64 {
	t.Helper()
	m, err := tt.GetMetric(name)
	if err != nil {
		return 0
	}
	var dps []metricdata.DataPoint[int64]
	switch d := m.Data.(type) {
	case metricdata.Sum[int64]:
		dps = d.DataPoints
	default:
		t.Fatalf("%s: unexpected data %T", name, m.Data)
	}
	var sum int64
	for _, dp := range dps {
		ok := true
		for _, kv := range match {
			if v, found := dp.Attributes.Value(kv.Key); !found || v != kv.Value {
				ok = false
			}
		}
		if ok {
			sum += dp.Value
		}
	}
	return sum
}

func TestInternalTelemetry(t *testing.T) {
	t.Parallel()
	f := newFakeNVML(t, 2)
	f.gpus[1].fail["GetPowerUsage"] = nvml.ERROR_UNKNOWN
	s, tt := newTelemetryScraper(t, f, f.procRoot, func(cfg *Config) {
		cfg.Kubernetes.PodResourcesSocket = filepath.Join(t.TempDir(), "absent.sock")
		cfg.Kubernetes.RefreshInterval = time.Second
	})
	s.mustStart(t)
	for range 2 {
		md := s.scrapeFailing(t, 1, "nvidia1 ("+testUUID(1)+"): nvmlDeviceGetPowerUsage: ERROR_UNKNOWN")
		assert.Len(t, findPoints(md, "hw.power", gpuAttrs(0)), 1, "the metrics read come with the error")
		assert.Empty(t, findPoints(md, "hw.power", gpuAttrs(1)))
	}

	assert.Equal(t, int64(2), counterValue(t, tt, "otelcol_receiver_nvml_failed_calls",
		attribute.String("call", "nvmlDeviceGetPowerUsage"), attribute.String("error", "ERROR_UNKNOWN")), "retried, so counted every scrape")
	metadatatest.AssertEqualReceiverNvmlGpusAttached(t, tt, []metricdata.DataPoint[int64]{{Value: 2}}, metricdatatestIgnoreTime()...)
	assert.Positive(t, counterValue(t, tt, "otelcol_receiver_nvml_pod_resources_refresh_failures", attribute.String("reason", "no_socket")))

	// An XID event from a handle the receiver did not register is dropped and counted.
	f.events <- nvml.EventData{Device: &mock.Device{}, EventType: nvml.EventTypeXidCriticalError, EventData: 13}
	require.Eventually(t, func() bool {
		return counterValue(t, tt, "otelcol_receiver_nvml_xid_events_dropped") == 1
	}, 5*time.Second, 10*time.Millisecond)

	require.NoError(t, s.shutdown(context.Background()))
	metadatatest.AssertEqualReceiverNvmlGpusAttached(t, tt, []metricdata.DataPoint[int64]{{Value: 0}}, metricdatatestIgnoreTime()...)
}

func TestGPMAbsentWhereUnsupported(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		setup   func(f *fakeNVML)
		logPart string
	}{
		{"pre-Hopper GPU", func(f *fakeNVML) { f.gpus[0].gpmSupported = false }, "GPU performance monitoring"},
		{"GPM query not supported", func(f *fakeNVML) { f.gpus[0].fail["GpmQueryDeviceSupport"] = nvml.ERROR_NOT_SUPPORTED }, "GPU performance monitoring"},
		{"driver before R520", func(f *fakeNVML) { f.missing["nvmlGpmMetricsGet"] = true }, "no GPU performance monitoring"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFakeNVML(t, 1)
			tc.setup(f)
			s := newTestScraper(t, f, f.procRoot, nil)
			s.mustStart(t)
			var names []string
			for range 3 {
				s.clock.Advance(10 * time.Second)
				names = metricNames(s.mustScrape(t))
			}
			for _, gpm := range []string{"nvidia.gpu.sm.activity", "nvidia.gpu.pipe.activity", "nvidia.gpu.dram.activity"} {
				assert.NotContains(t, names, gpm)
			}
			assert.Contains(t, names, "hw.power", "the other metrics are still reported")
			assert.Empty(t, f.gpus[0].dev.GpmSampleGetCalls(), "no sample is taken")
			assert.Zero(t, f.gpmAllocated)
			assert.Len(t, logsContaining(s.logs, zapcore.InfoLevel, tc.logPart), 1, "logged once")
			assert.Empty(t, s.logs.FilterLevelExact(zapcore.WarnLevel).FilterMessageSnippet("NVML call failed").All())
		})
	}
}

func TestGPMSamplesAreFreed(t *testing.T) {
	t.Parallel()
	f := newFakeNVML(t, 2)
	s := newTestScraper(t, f, f.procRoot, nil)
	s.mustStart(t)
	s.mustScrape(t)
	assert.Len(t, metricPoints(s.mustScrape(t), "nvidia.gpu.sm.activity"), 2, "two GPUs")
	assert.Equal(t, 4, f.gpmAllocated, "two samples per GPU, reused every scrape")
	require.NoError(t, s.shutdown(context.Background()))
	assert.Zero(t, f.gpmAllocated, "all handed back at shutdown")
}

func TestCounterFieldsNotSupportedAreNotAskedAgain(t *testing.T) {
	t.Parallel()
	f := newFakeNVML(t, 1) // a PCIe card: no NVLink, no throttle counters
	f.gpus[0].counterFields = map[uint32]uint64{}
	s := newTestScraper(t, f, f.procRoot, nil)
	s.mustStart(t)
	md := s.mustScrape(t)
	for _, name := range []string{"nvidia.gpu.nvlink.io", "nvidia.gpu.nvlink.errors", "nvidia.gpu.clock_event.duration"} {
		assert.Empty(t, metricPoints(md, name), name)
	}
	s.mustScrape(t)
	calls := f.gpus[0].dev.GetFieldValuesCalls()
	for _, fv := range calls[len(calls)-1].FieldValues {
		assert.Equal(t, -1, counterFieldIndex(fv.FieldId), "field %d asked again", fv.FieldId)
	}
	assert.Empty(t, s.logs.FilterLevelExact(zapcore.WarnLevel).All())
}

func TestRescanFindsNewGPUs(t *testing.T) {
	t.Parallel()
	f := newFakeNVML(t, 2)
	visible := 1
	f.DeviceGetCountFunc = func() (int, nvml.Return) { return visible, nvml.SUCCESS }
	s := newTestScraper(t, f, f.procRoot, nil)
	s.mustStart(t)
	require.Len(t, metricPoints(s.mustScrape(t), "hw.power"), 1)

	visible = 2 // the device plugin or driver brings a second GPU
	s.clock.Advance(30 * time.Second)
	require.Len(t, metricPoints(s.mustScrape(t), "hw.power"), 1, "not before the re-scan interval")
	s.clock.Advance(31 * time.Second)
	md := s.mustScrape(t)
	require.Len(t, metricPoints(md, "hw.power"), 2)
	onePoint(t, md, "hw.power", map[string]any{"hw.id": testUUID(1)})
	assert.Len(t, logsContaining(s.logs, zapcore.InfoLevel, "new GPU found", testUUID(1)), 1)
}

func metricdatatestIgnoreTime() []metricdatatest.Option {
	return []metricdatatest.Option{metricdatatest.IgnoreTimestamp()}
}
