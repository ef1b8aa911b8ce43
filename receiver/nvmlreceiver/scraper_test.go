//go:build cgo

package nvmlreceiver

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxh100"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/gpus"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/server"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/scraper/scrapererror"
	"go.uber.org/zap/zapcore"
)

func TestScrapeReportsEveryMetric(t *testing.T) {
	t.Parallel()
	f := newFakeNVML(t, 2)
	s := newTestScraper(t, f, f.procRoot, enableAllMetrics)
	s.mustStart(t)
	md := s.mustScrape(t)

	tsFirst := pcommon.NewTimestampFromTime(testStart)
	attached := tsFirst
	for i := range 2 {
		u := float64(i)
		type want struct {
			metric string
			match  map[string]any
			value  float64
		}
		for _, w := range []want{
			// First scrape: the oldest sample only opens the first period, so the mean is of base+10 and base+20.
			{"hw.gpu.utilization", gpuAttrs(i, "hw.gpu.task", "general"), (55 + u) / 100},
			{"hw.gpu.utilization", gpuAttrs(i, "hw.gpu.task", "encoder"), (17 + u) / 100},
			{"hw.gpu.utilization", gpuAttrs(i, "hw.gpu.task", "decoder"), (18 + u) / 100},
			{"nvidia.gpu.memory.bandwidth.utilization", gpuAttrs(i), (35 + u) / 100},
			{"hw.gpu.memory.usage", gpuAttrs(i), float64((i + 1) * int(gib))},
			{"hw.gpu.memory.limit", gpuAttrs(i), float64(81920 * mib)},
			{"hw.gpu.memory.utilization", gpuAttrs(i), float64(i+1) / 80},
			{"hw.power", gpuAttrs(i, "hw.type", "gpu"), 300 + u},
			{"nvidia.gpu.power.limit", gpuAttrs(i), 700},
			{"hw.energy", gpuAttrs(i, "hw.type", "gpu"), 1000 * (u + 1)},
			{"hw.temperature", gpuAttrs(i, "hw.sensor_location", "gpu"), 40 + u},
			{"hw.temperature", gpuAttrs(i, "hw.sensor_location", "memory"), 50 + u},
			{"nvidia.gpu.clock.frequency", gpuAttrs(i, "nvidia.gpu.clock.type", "graphics"), 1980e6},
			{"nvidia.gpu.clock.frequency", gpuAttrs(i, "nvidia.gpu.clock.type", "sm"), 1980e6},
			{"nvidia.gpu.clock.frequency", gpuAttrs(i, "nvidia.gpu.clock.type", "memory"), 2619e6},
			{"nvidia.gpu.clock_event.active", gpuAttrs(i, "nvidia.gpu.clock_event.reason", "sw_power_cap"), 1},
			{"nvidia.gpu.clock_event.active", gpuAttrs(i, "nvidia.gpu.clock_event.reason", "gpu_idle"), 0},
			{"nvidia.gpu.clock_event.active", gpuAttrs(i, "nvidia.gpu.clock_event.reason", "hw_slowdown"), 0},
			{"nvidia.gpu.clock_event.active", gpuAttrs(i, "nvidia.gpu.clock_event.reason", "hw_thermal_slowdown"), 0},
			{"hw.gpu.io", gpuAttrs(i, "network.io.direction", "transmit"), 1e9 * (u + 1)},
			{"hw.gpu.io", gpuAttrs(i, "network.io.direction", "receive"), 2e9 * (u + 1)},
			{"hw.errors", gpuAttrs(i, "error.type", "corrected", "hw.type", "gpu"), 10 * u},
			{"hw.errors", gpuAttrs(i, "error.type", "uncorrected", "hw.type", "gpu"), u},
			{"nvidia.gpu.remapped_rows", gpuAttrs(i, "nvidia.gpu.remap.cause", "correctable"), u},
			{"nvidia.gpu.remapped_rows", gpuAttrs(i, "nvidia.gpu.remap.cause", "uncorrectable"), 0},
			{"nvidia.gpu.process.memory.usage", gpuAttrs(i, "process.pid", int64(1000+10*i), "process.executable.name", "VLLM::EngineCor"), float64(60 * gib)},
			{"nvidia.gpu.process.memory.usage", gpuAttrs(i, "process.pid", int64(1001+10*i), "process.executable.name", "python3"), float64(512 * mib)},
			{"nvidia.gpu.process.utilization", gpuAttrs(i, "process.pid", int64(1000+10*i), "process.executable.name", "VLLM::EngineCor"), 0.85},
			{"nvidia.gpu.process.utilization", gpuAttrs(i, "process.pid", int64(1001+10*i)), 0.04},
			{"hw.status", gpuAttrs(i, "hw.state", "ok", "hw.type", "gpu"), 1},
			{"hw.status", gpuAttrs(i, "hw.state", "degraded"), 0},
			{"hw.status", gpuAttrs(i, "hw.state", "failed"), 0},
		} {
			p := onePoint(t, md, w.metric, w.match)
			assert.InDeltaf(t, w.value, p.value, 1e-9, "%s %v", w.metric, w.match)
			assert.Equalf(t, tsFirst, p.ts, "%s timestamp", w.metric)
			// Identity on every point; hw.parent only on MIG points.
			assert.Equal(t, "nvidia"+string(rune('0'+i)), p.attrs["hw.name"], w.metric)
			assert.Equal(t, "NVIDIA H100 80GB HBM3", p.attrs["hw.model"], w.metric)
			assert.Equal(t, "NVIDIA", p.attrs["hw.vendor"], w.metric)
			assert.Equal(t, testDriver, p.attrs["hw.driver_version"], w.metric)
			assert.Equal(t, int64(i), p.attrs["nvidia.gpu.index"], w.metric)
			assert.NotContains(t, p.attrs, "hw.parent", w.metric)
		}
		// Only the reasons the GPU supports get a series.
		assert.Len(t, findPoints(md, "nvidia.gpu.clock_event.active", gpuAttrs(i)), 4)
		// Counters start when the receiver attached.
		assert.Equal(t, attached, onePoint(t, md, "hw.energy", gpuAttrs(i)).start)
	}
	assert.Empty(t, metricPoints(md, "nvidia.gpu.xid.errors"), "no XID event was sent")

	// Second scrape: three new samples, all with a full period, and no new per-process samples.
	s.clock.Advance(10 * time.Second)
	md = s.mustScrape(t)
	assert.InDelta(t, 0.50, onePoint(t, md, "hw.gpu.utilization", gpuAttrs(0, "hw.gpu.task", "general")).value, 1e-9)
	assert.InDelta(t, 0.30, onePoint(t, md, "nvidia.gpu.memory.bandwidth.utilization", gpuAttrs(0)).value, 1e-9)
	assert.Empty(t, metricPoints(md, "nvidia.gpu.process.utilization"))
	assert.Equal(t, attached, onePoint(t, md, "hw.energy", gpuAttrs(1)).start)
	assert.Equal(t, pcommon.NewTimestampFromTime(testStart.Add(10*time.Second)), onePoint(t, md, "hw.energy", gpuAttrs(1)).ts)
}

func TestMetricShapes(t *testing.T) {
	t.Parallel()
	f := newFakeNVML(t, 1)
	s := newTestScraper(t, f, f.procRoot, enableAllMetrics)
	s.mustStart(t)

	type shape struct {
		unit      string
		typ       pmetric.MetricType
		monotonic bool
	}
	got := map[string]shape{}
	collect := func(md pmetric.Metrics) {
		require.Equal(t, 1, md.ResourceMetrics().Len())
		assert.Empty(t, md.ResourceMetrics().At(0).Resource().Attributes().AsRaw(), "GPU identity is on data points, not the resource")
		ms := md.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics()
		for i := 0; i < ms.Len(); i++ {
			m := ms.At(i)
			sh := shape{unit: m.Unit(), typ: m.Type()}
			if m.Type() == pmetric.MetricTypeSum {
				sh.monotonic = m.Sum().IsMonotonic()
				assert.Equal(t, pmetric.AggregationTemporalityCumulative, m.Sum().AggregationTemporality(), m.Name())
			}
			got[m.Name()] = sh
		}
	}
	collect(s.mustScrape(t))
	f.events <- nvml.EventData{Device: f.gpus[0].dev, EventType: nvml.EventTypeXidCriticalError, EventData: 13}
	require.Eventually(t, func() bool {
		md := s.mustScrape(t)
		collect(md)
		return len(metricPoints(md, "nvidia.gpu.xid.errors")) == 1
	}, 5*time.Second, 10*time.Millisecond)

	assert.Equal(t, map[string]shape{
		"hw.energy":                               {"J", pmetric.MetricTypeSum, true},
		"hw.errors":                               {"{error}", pmetric.MetricTypeSum, true},
		"hw.gpu.io":                               {"By", pmetric.MetricTypeSum, true},
		"hw.gpu.memory.limit":                     {"By", pmetric.MetricTypeSum, false},
		"hw.gpu.memory.usage":                     {"By", pmetric.MetricTypeSum, false},
		"hw.gpu.memory.utilization":               {"1", pmetric.MetricTypeGauge, false},
		"hw.gpu.utilization":                      {"1", pmetric.MetricTypeGauge, false},
		"hw.power":                                {"W", pmetric.MetricTypeGauge, false},
		"hw.status":                               {"1", pmetric.MetricTypeSum, false},
		"hw.temperature":                          {"Cel", pmetric.MetricTypeGauge, false},
		"nvidia.gpu.clock.frequency":              {"Hz", pmetric.MetricTypeGauge, false},
		"nvidia.gpu.clock_event.active":           {"1", pmetric.MetricTypeGauge, false},
		"nvidia.gpu.clock_event.duration":         {"s", pmetric.MetricTypeSum, true},
		"nvidia.gpu.dram.activity":                {"1", pmetric.MetricTypeGauge, false},
		"nvidia.gpu.graphics_engine.activity":     {"1", pmetric.MetricTypeGauge, false},
		"nvidia.gpu.memory.reserved":              {"By", pmetric.MetricTypeSum, false},
		"nvidia.gpu.nvlink.bandwidth":             {"By/s", pmetric.MetricTypeGauge, false},
		"nvidia.gpu.nvlink.errors":                {"{error}", pmetric.MetricTypeSum, true},
		"nvidia.gpu.nvlink.io":                    {"By", pmetric.MetricTypeSum, true},
		"nvidia.gpu.pcie.bandwidth":               {"By/s", pmetric.MetricTypeGauge, false},
		"nvidia.gpu.pcie.replays":                 {"{replay}", pmetric.MetricTypeSum, true},
		"nvidia.gpu.pipe.activity":                {"1", pmetric.MetricTypeGauge, false},
		"nvidia.gpu.sm.activity":                  {"1", pmetric.MetricTypeGauge, false},
		"nvidia.gpu.sm.occupancy":                 {"1", pmetric.MetricTypeGauge, false},
		"nvidia.gpu.memory.bandwidth.utilization": {"1", pmetric.MetricTypeGauge, false},
		"nvidia.gpu.power.limit":                  {"W", pmetric.MetricTypeGauge, false},
		"nvidia.gpu.process.memory.usage":         {"By", pmetric.MetricTypeGauge, false},
		"nvidia.gpu.process.utilization":          {"1", pmetric.MetricTypeGauge, false},
		"nvidia.gpu.remapped_rows":                {"{row}", pmetric.MetricTypeSum, true},
		"nvidia.gpu.xid.errors":                   {"{error}", pmetric.MetricTypeSum, true},
	}, got)
}

func TestDefaultConfigMetricSet(t *testing.T) {
	t.Parallel()
	f := newFakeNVML(t, 1)
	s := newTestScraper(t, f, f.procRoot, nil)
	s.mustStart(t)
	md := s.mustScrape(t)
	assert.Equal(t, []string{
		"hw.energy", "hw.errors", "hw.gpu.io", "hw.gpu.memory.limit", "hw.gpu.memory.usage",
		"hw.gpu.memory.utilization", "hw.gpu.utilization", "hw.power", "hw.temperature",
		"nvidia.gpu.clock.frequency", "nvidia.gpu.clock_event.active", "nvidia.gpu.clock_event.duration",
		"nvidia.gpu.memory.bandwidth.utilization", "nvidia.gpu.memory.reserved", "nvidia.gpu.nvlink.errors", "nvidia.gpu.nvlink.io",
		"nvidia.gpu.pcie.replays", "nvidia.gpu.power.limit", "nvidia.gpu.process.memory.usage",
	}, metricNames(md), "off by default: hw.status, nvidia.gpu.process.utilization, nvidia.gpu.remapped_rows; xid appears with the "+
		"first event, GPM with the second scrape, nvidia.gpu.allocation with a pod")
	// Remapped rows are neither reported nor read when neither it nor hw.status is on.
	assert.Empty(t, f.gpus[0].dev.GetRemappedRowsCalls())
	assert.Empty(t, f.gpus[0].dev.GetProcessUtilizationCalls())
}

func TestUtilizationFallsBackToInstantRates(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name          string
		samplesReturn nvml.Return
		wantGeneral   float64
		wantEncoder   float64
		wantBandwidth float64
		// second scrape: whether GetSamples is asked again
		samplesAgain bool
	}{
		{"no new samples", nvml.ERROR_NOT_FOUND, 0.70, 0.05, 0.30, true},
		{"sampling not supported", nvml.ERROR_NOT_SUPPORTED, 0.70, 0.05, 0.30, false},
		{"sampling failed", nvml.ERROR_UNKNOWN, 0.70, 0.05, 0.30, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFakeNVML(t, 1)
			g := f.gpus[0]
			g.fail["GetSamples"] = tt.samplesReturn
			s := newTestScraper(t, f, f.procRoot, nil)
			s.mustStart(t)
			md := s.mustScrape(t)
			assert.InDelta(t, tt.wantGeneral, onePoint(t, md, "hw.gpu.utilization", gpuAttrs(0, "hw.gpu.task", "general")).value, 1e-9)
			assert.InDelta(t, tt.wantEncoder, onePoint(t, md, "hw.gpu.utilization", gpuAttrs(0, "hw.gpu.task", "encoder")).value, 1e-9)
			assert.InDelta(t, 0.07, onePoint(t, md, "hw.gpu.utilization", gpuAttrs(0, "hw.gpu.task", "decoder")).value, 1e-9)
			assert.InDelta(t, tt.wantBandwidth, onePoint(t, md, "nvidia.gpu.memory.bandwidth.utilization", gpuAttrs(0)).value, 1e-9)
			assert.Len(t, g.dev.GetUtilizationRatesCalls(), 1, "one instantaneous read serves both general and memory bandwidth")
			callsAfterFirst := len(g.dev.GetSamplesCalls())
			assert.Equal(t, 4, callsAfterFirst)

			s.mustScrape(t)
			if tt.samplesAgain {
				assert.Len(t, g.dev.GetSamplesCalls(), 2*callsAfterFirst)
			} else {
				assert.Len(t, g.dev.GetSamplesCalls(), callsAfterFirst)
			}
		})
	}
}

func TestSamplesPassLastSeenTimestamp(t *testing.T) {
	t.Parallel()
	f := newFakeNVML(t, 1)
	s := newTestScraper(t, f, f.procRoot, nil)
	s.mustStart(t)
	s.mustScrape(t)
	s.mustScrape(t)
	var general []uint64
	for _, c := range f.gpus[0].dev.GetSamplesCalls() {
		if c.SamplingType == nvml.GPU_UTILIZATION_SAMPLES {
			general = append(general, c.V)
		}
	}
	assert.Equal(t, []uint64{0, sampleBaseUS + samplesPerCall*sampleStepUS}, general)
}

func TestMemoryInfoV1WhenV2SymbolIsMissing(t *testing.T) {
	t.Parallel()
	f := newFakeNVML(t, 1)
	f.missing["nvmlDeviceGetMemoryInfo_v2"] = true
	f.gpus[0].dev.GetMemoryInfo_v2Func = nil // would panic if called
	s := newTestScraper(t, f, f.procRoot, nil)
	s.mustStart(t)
	md := s.mustScrape(t)
	// v1 counts the driver's reservation as used.
	want := float64(gib + 512*mib)
	assert.InDelta(t, want, onePoint(t, md, "hw.gpu.memory.usage", gpuAttrs(0)).value, 0)
	assert.InDelta(t, want/float64(81920*mib), onePoint(t, md, "hw.gpu.memory.utilization", gpuAttrs(0)).value, 1e-12)
}

func TestMemoryInfoV1WhenV2IsRejected(t *testing.T) {
	t.Parallel()
	f := newFakeNVML(t, 1)
	f.gpus[0].fail["GetMemoryInfo_v2"] = nvml.ERROR_ARGUMENT_VERSION_MISMATCH
	s := newTestScraper(t, f, f.procRoot, nil)
	s.mustStart(t)
	s.mustScrape(t)
	md := s.mustScrape(t)
	assert.InDelta(t, float64(gib+512*mib), onePoint(t, md, "hw.gpu.memory.usage", gpuAttrs(0)).value, 0)
	assert.Len(t, f.gpus[0].dev.GetMemoryInfo_v2Calls(), 1, "v2 is not asked again")
	assert.Len(t, f.gpus[0].dev.GetMemoryInfoCalls(), 2)
}

// An older driver: the library exports only what is needed to find GPUs. The mocked devices have no
// telemetry function at all, so calling any of them would panic.
func TestOldDriverWithoutOptionalSymbols(t *testing.T) {
	t.Parallel()
	srv := dgxh100.NewWithGPUs(gpus.Multiple(2, gpus.H100_SXM5_80GB)...)
	exported := map[string]bool{}
	for _, fn := range requiredFuncs {
		for _, n := range nvmlSymbols[fn] {
			exported[n] = true
		}
	}
	srv.LookupSymbolFunc = func(name string) error {
		if exported[name] {
			return nil
		}
		return errors.New("undefined symbol: " + name)
	}
	s := newTestScraper(t, srv, t.TempDir(), enableAllMetrics)
	s.mustStart(t)
	md := s.mustScrape(t)
	// Only hw.status needs no optional call.
	assert.Equal(t, []string{"hw.status"}, metricNames(md))
	uuid := srv.Devices[1].(*server.Device).UUID
	p := onePoint(t, md, "hw.status", map[string]any{"hw.id": uuid, "hw.state": "ok"})
	assert.Equal(t, "gpu1", p.attrs["hw.name"], "without nvmlDeviceGetMinorNumber the name comes from the index")
	assert.Empty(t, p.attrs["hw.model"])
	assert.Empty(t, p.attrs["hw.driver_version"])
	assert.Nil(t, s.xid, "no XID watcher without the event symbols")
	assert.Empty(t, srv.SystemGetDriverVersionCalls())
}

func TestNotSupportedIsSkippedAndLoggedOnce(t *testing.T) {
	t.Parallel()
	f := newFakeNVML(t, 2)
	f.gpus[0].fail["GetPowerUsage"] = nvml.ERROR_NOT_SUPPORTED
	f.gpus[0].fieldFail[nvml.FI_DEV_MEMORY_TEMP] = nvml.ERROR_NOT_SUPPORTED
	s := newTestScraper(t, f, f.procRoot, nil)
	s.mustStart(t)
	var md pmetric.Metrics
	for range 3 {
		md = s.mustScrape(t)
	}
	assert.Empty(t, findPoints(md, "hw.power", gpuAttrs(0)))
	assert.Len(t, findPoints(md, "hw.power", gpuAttrs(1)), 1, "the other GPU still reports")
	assert.Len(t, findPoints(md, "hw.temperature", gpuAttrs(0)), 1, "only the GPU sensor")
	assert.Len(t, findPoints(md, "hw.temperature", gpuAttrs(1)), 2)
	assert.Len(t, f.gpus[0].dev.GetPowerUsageCalls(), 1, "not asked again")
	assert.Len(t, f.gpus[1].dev.GetPowerUsageCalls(), 3)
	assert.Len(t, logsContaining(s.logs, zapcore.InfoLevel, "nvmlDeviceGetPowerUsage", "ERROR_NOT_SUPPORTED", testUUID(0)), 1)
	assert.Len(t, logsContaining(s.logs, zapcore.InfoLevel, "NVML_FI_DEV_MEMORY_TEMP", "ERROR_NOT_SUPPORTED"), 1)
}

func TestOtherErrorsAreRetriedAndWarnedOnce(t *testing.T) {
	t.Parallel()
	f := newFakeNVML(t, 1)
	f.gpus[0].fail["GetTemperature"] = nvml.ERROR_UNKNOWN
	s := newTestScraper(t, f, f.procRoot, nil)
	s.mustStart(t)
	for range 2 { // a failure of every scrape it happens in, though logged once
		md := s.scrapeFailing(t, 1, "nvmlDeviceGetTemperature: ERROR_UNKNOWN")
		assert.Empty(t, findPoints(md, "hw.temperature", gpuAttrs(0, "hw.sensor_location", "gpu")))
		assert.NotEmpty(t, findPoints(md, "hw.power", gpuAttrs(0)), "the other metrics come with the error")
	}
	delete(f.gpus[0].fail, "GetTemperature")
	md := s.mustScrape(t)
	assert.Len(t, findPoints(md, "hw.temperature", gpuAttrs(0, "hw.sensor_location", "gpu")), 1)
	assert.Len(t, f.gpus[0].dev.GetTemperatureCalls(), 3)
	assert.Len(t, logsContaining(s.logs, zapcore.WarnLevel, "nvmlDeviceGetTemperature", "ERROR_UNKNOWN"), 1)
}

// TestPartialScrapeError: each failed NVML call of a device is one failure of the scrape, returned as a
// partial scrape error beside everything that was read; a device's "cannot provide" answers are not failures.
func TestPartialScrapeError(t *testing.T) {
	t.Parallel()
	f := newFakeNVML(t, 3)
	f.gpus[0].fail["GetTemperature"] = nvml.ERROR_UNKNOWN
	f.gpus[1].fail["GetPowerUsage"] = nvml.ERROR_NOT_SUPPORTED
	f.gpus[2].fail["GetPowerUsage"] = nvml.ERROR_TIMEOUT
	f.gpus[2].fail["GetEnforcedPowerLimit"] = nvml.ERROR_TIMEOUT
	s := newTestScraper(t, f, f.procRoot, nil)
	s.mustStart(t)
	md := s.scrapeFailing(t, 3,
		"nvidia0 ("+testUUID(0)+"): nvmlDeviceGetTemperature: ERROR_UNKNOWN",
		"nvidia2 ("+testUUID(2)+"): nvmlDeviceGetPowerUsage: ERROR_TIMEOUT",
		"nvidia2 ("+testUUID(2)+"): nvmlDeviceGetEnforcedPowerLimit: ERROR_TIMEOUT")
	_, err := s.scrape(context.Background())
	requirePartial(t, err, 3)
	assert.NotContains(t, err.Error(), "ERROR_NOT_SUPPORTED", "asked once, and not a failure")
	// the rest is there
	assert.Empty(t, findPoints(md, "hw.temperature", gpuAttrs(0, "hw.sensor_location", "gpu")))
	assert.Len(t, findPoints(md, "hw.temperature", gpuAttrs(1, "hw.sensor_location", "gpu")), 1)
	assert.Len(t, findPoints(md, "hw.power", gpuAttrs(0)), 1)
	assert.Empty(t, findPoints(md, "hw.power", gpuAttrs(1)))
	assert.Empty(t, findPoints(md, "hw.power", gpuAttrs(2)))
	for i := range 3 {
		assert.Lenf(t, findPoints(md, "hw.gpu.memory.usage", gpuAttrs(i)), 1, "GPU %d", i)
	}

	// once the calls succeed again the scrape is clean
	delete(f.gpus[0].fail, "GetTemperature")
	delete(f.gpus[2].fail, "GetPowerUsage")
	delete(f.gpus[2].fail, "GetEnforcedPowerLimit")
	md = s.mustScrape(t)
	assert.Len(t, findPoints(md, "hw.power", gpuAttrs(2)), 1)
}

// TestSamplingFailureWithoutFallbackIsAScrapeFailure: a failed nvmlDeviceGetSamples is a failure of the scrape
// only when no instantaneous rate stands in for it (TestUtilizationFallsBackToInstantRates has the other case).
func TestSamplingFailureWithoutFallbackIsAScrapeFailure(t *testing.T) {
	t.Parallel()
	f := newFakeNVML(t, 1)
	f.gpus[0].fail["GetSamples"] = nvml.ERROR_UNKNOWN
	f.gpus[0].fail["GetUtilizationRates"] = nvml.ERROR_NOT_SUPPORTED
	s := newTestScraper(t, f, f.procRoot, nil)
	s.mustStart(t)
	md, err := s.scrape(context.Background())
	var partial scrapererror.PartialScrapeError
	require.ErrorAs(t, err, &partial)
	assert.Contains(t, err.Error(), "nvmlDeviceGetSamples: ERROR_UNKNOWN")
	assert.NotContains(t, err.Error(), "GetUtilizationRates")
	assert.Empty(t, findPoints(md, "hw.gpu.utilization", gpuAttrs(0, "hw.gpu.task", "general")))
	// each sampled series without a value is one failure
	missing := 0
	for _, task := range []string{"general", "encoder", "decoder"} {
		if len(findPoints(md, "hw.gpu.utilization", gpuAttrs(0, "hw.gpu.task", task))) == 0 {
			missing++
		}
	}
	if s.cfg.Metrics.NvidiaGpuMemoryBandwidthUtilization.Enabled && len(metricPoints(md, "nvidia.gpu.memory.bandwidth.utilization")) == 0 {
		missing++
	}
	assert.Equal(t, missing, partial.Failed)
}

func TestLostGPUStopsOnlyThatGPU(t *testing.T) {
	t.Parallel()
	f := newFakeNVML(t, 3)
	s := newTestScraper(t, f, f.procRoot, enableAllMetrics)
	s.mustStart(t)
	md := s.mustScrape(t)
	require.Len(t, metricPoints(md, "hw.power"), 3)

	lost := f.gpus[1]
	lost.fail["GetEnforcedPowerLimit"] = nvml.ERROR_GPU_IS_LOST
	md = s.scrapeFailing(t, 1, "nvidia1 ("+testUUID(1)+"): nvmlDeviceGetEnforcedPowerLimit: ERROR_GPU_IS_LOST")
	assert.InDelta(t, 1, onePoint(t, md, "hw.status", gpuAttrs(1, "hw.state", "failed")).value, 0)
	assert.InDelta(t, 0, onePoint(t, md, "hw.status", gpuAttrs(1, "hw.state", "ok")).value, 0)
	assert.Empty(t, findPoints(md, "hw.energy", gpuAttrs(1)), "calls after the loss are not made")
	assert.Len(t, findPoints(md, "hw.power", gpuAttrs(1)), 1, "read before the loss was seen")

	callsAtLoss := len(lost.dev.GetPowerUsageCalls())
	md = s.mustScrape(t)
	for _, name := range metricNames(md) {
		if name == "hw.status" {
			continue
		}
		assert.Emptyf(t, findPoints(md, name, gpuAttrs(1)), "%s of the lost GPU", name)
		assert.NotEmptyf(t, findPoints(md, name, gpuAttrs(2)), "%s of a healthy GPU", name)
	}
	assert.InDelta(t, 1, onePoint(t, md, "hw.status", gpuAttrs(1, "hw.state", "failed")).value, 0)
	assert.InDelta(t, 1, onePoint(t, md, "hw.status", gpuAttrs(0, "hw.state", "ok")).value, 0)
	assert.Len(t, lost.dev.GetPowerUsageCalls(), callsAtLoss, "no NVML call reaches the lost GPU")
	assert.Len(t, lost.dev.GetMigModeCalls(), 2, "not even MIG discovery")
	assert.Len(t, logsContaining(s.logs, zapcore.WarnLevel, "ERROR_GPU_IS_LOST", testUUID(1)), 1)
}

func TestHWStatusDegraded(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		setup  func(g *fakeGPU)
		want   string
		failed int // failures of the scrape
	}{
		{"healthy", func(*fakeGPU) {}, "ok", 0},
		{"hardware slowdown", func(g *fakeGPU) { g.clockEvents |= nvml.ClocksThrottleReasonHwSlowdown }, "degraded", 0},
		{"thermal slowdown", func(g *fakeGPU) { g.clockEvents = nvml.ClocksThrottleReasonHwThermalSlowdown }, "degraded", 0},
		{"software power cap only", func(g *fakeGPU) { g.clockEvents = nvml.ClocksEventReasonSwPowerCap }, "ok", 0},
		{"row remap pending", func(g *fakeGPU) { g.remapPending = true }, "degraded", 0},
		{"row remap failed", func(g *fakeGPU) { g.remapFailure = true }, "degraded", 0},
		{"reset required", func(g *fakeGPU) { g.fail["GetPowerUsage"] = nvml.ERROR_RESET_REQUIRED }, "failed", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFakeNVML(t, 1)
			tt.setup(f.gpus[0])
			s := newTestScraper(t, f, f.procRoot, func(cfg *Config) { cfg.Metrics.HwStatus.Enabled = true })
			s.mustStart(t)
			var md pmetric.Metrics
			if tt.failed > 0 {
				md = s.scrapeFailing(t, tt.failed, "ERROR_RESET_REQUIRED")
			} else {
				md = s.mustScrape(t)
			}
			pts := metricPoints(md, "hw.status")
			require.Len(t, pts, 3)
			for _, p := range pts {
				want := 0.0
				if p.attrs["hw.state"] == tt.want {
					want = 1
				}
				assert.InDeltaf(t, want, p.value, 0, "state %v", p.attrs["hw.state"])
			}
		})
	}
}

func TestMIGInstances(t *testing.T) {
	t.Parallel()
	f := newFakeNVML(t, 2)
	vllm := nvml.ProcessInfo{Pid: 4242, UsedGpuMemory: 9 * gib}
	writeComm(t, f.procRoot, 4242, "VLLM::EngineCor")
	migA := newFakeMIG(0, 0, 10*gib, 9*gib, vllm)
	migB := newFakeMIG(0, 1, 20*gib, 0)
	f.enableMIG(0, migA, migB)
	s := newTestScraper(t, f, f.procRoot, enableAllMetrics)
	s.mustStart(t)
	md := s.mustScrape(t)

	for _, tc := range []struct {
		mig        *fakeMIG
		name       string
		usage, lim float64
	}{
		{migA, "nvidia0/gi1/ci0", float64(9 * gib), float64(10 * gib)},
		{migB, "nvidia0/gi2/ci0", 0, float64(20 * gib)},
	} {
		match := map[string]any{"hw.id": tc.mig.uuid}
		usage := onePoint(t, md, "hw.gpu.memory.usage", match)
		assert.InDelta(t, tc.usage, usage.value, 0)
		assert.Equal(t, testUUID(0), usage.attrs["hw.parent"])
		assert.Equal(t, tc.name, usage.attrs["hw.name"])
		assert.Equal(t, int64(0), usage.attrs["nvidia.gpu.index"])
		assert.Equal(t, "NVIDIA H100 80GB HBM3 MIG 1g.10gb", usage.attrs["hw.model"])
		assert.InDelta(t, tc.lim, onePoint(t, md, "hw.gpu.memory.limit", match).value, 0)
		assert.InDelta(t, tc.usage/tc.lim, onePoint(t, md, "hw.gpu.memory.utilization", match).value, 1e-12)
		// Nothing NVML does not support on MIG handles is asked (the mock would panic) or reported.
		for _, name := range []string{"hw.gpu.utilization", "hw.power", "hw.energy", "hw.temperature", "hw.status", "nvidia.gpu.clock.frequency"} {
			assert.Emptyf(t, findPoints(md, name, match), "%s on a MIG instance", name)
		}
	}
	proc := onePoint(t, md, "nvidia.gpu.process.memory.usage", map[string]any{"process.pid": int64(4242)})
	assert.Equal(t, migA.uuid, proc.attrs["hw.id"])
	assert.Equal(t, testUUID(0), proc.attrs["hw.parent"])
	assert.Equal(t, "VLLM::EngineCor", proc.attrs["process.executable.name"])
	// With MIG on, processes are reported per instance only.
	assert.Empty(t, findPoints(md, "nvidia.gpu.process.memory.usage", gpuAttrs(0)))
	assert.Empty(t, f.gpus[0].dev.GetComputeRunningProcessesCalls())
	// The physical GPU still reports its own metrics, without hw.parent; the other GPU is untouched.
	p := onePoint(t, md, "hw.power", gpuAttrs(0))
	assert.NotContains(t, p.attrs, "hw.parent")
	assert.Len(t, findPoints(md, "nvidia.gpu.process.memory.usage", gpuAttrs(1)), 2)

	// An administrator destroys instance B: it disappears from the next scrape.
	f.setMIGs(0, migA)
	md = s.mustScrape(t)
	assert.Len(t, findPoints(md, "hw.gpu.memory.usage", map[string]any{"hw.id": migA.uuid}), 1)
	assert.Empty(t, findPoints(md, "hw.gpu.memory.usage", map[string]any{"hw.id": migB.uuid}))
	assert.Len(t, migA.GetUUIDCalls(), 2)
	assert.Len(t, migA.GetGpuInstanceIdCalls(), 1, "identity is resolved once per instance")
}

func TestLostMIGParentStopsInstances(t *testing.T) {
	t.Parallel()
	f := newFakeNVML(t, 1)
	mig := newFakeMIG(0, 0, 10*gib, gib)
	f.enableMIG(0, mig)
	s := newTestScraper(t, f, f.procRoot, nil)
	s.mustStart(t)
	s.mustScrape(t)
	mig.GetMemoryInfo_v2Func = func() (nvml.Memory_v2, nvml.Return) { return nvml.Memory_v2{}, nvml.ERROR_GPU_IS_LOST }
	s.scrapeFailing(t, 1, "nvmlDeviceGetMemoryInfo_v2: ERROR_GPU_IS_LOST")
	md := s.mustScrape(t) // the loss is a failure of the scrape that found it; hw.status reports it afterwards
	assert.Empty(t, metricNames(md))
	assert.Len(t, mig.GetMemoryInfo_v2Calls(), 2)
}

func TestCounterResetGetsNewStartTime(t *testing.T) {
	t.Parallel()
	f := newFakeNVML(t, 1)
	g := f.gpus[0]
	s := newTestScraper(t, f, f.procRoot, nil)
	s.mustStart(t)
	started := pcommon.NewTimestampFromTime(testStart)
	// NVML attaches at the first scrape: counters start then, gauges at Start.
	s.clock.Advance(time.Second)
	attached := pcommon.NewTimestampFromTime(testStart.Add(time.Second))

	md := s.mustScrape(t)
	energy := onePoint(t, md, "hw.energy", gpuAttrs(0))
	assert.Equal(t, attached, energy.start)
	assert.Equal(t, attached, energy.ts)
	assert.Equal(t, started, onePoint(t, md, "hw.power", gpuAttrs(0)).start)

	s.clock.Advance(10 * time.Second)
	g.energyMJ += 5000
	g.eccCorrected++
	md = s.mustScrape(t)
	beforeReset := pcommon.NewTimestampFromTime(testStart.Add(11 * time.Second))
	assert.Equal(t, attached, onePoint(t, md, "hw.energy", gpuAttrs(0)).start)
	assert.InDelta(t, 1005, onePoint(t, md, "hw.energy", gpuAttrs(0)).value, 1e-9)

	// Driver reload: the counters restart from zero.
	s.clock.Advance(10 * time.Second)
	g.energyMJ = 2000
	g.eccCorrected = 0
	g.pcieTXBytes = 10
	md = s.mustScrape(t)
	energy = onePoint(t, md, "hw.energy", gpuAttrs(0))
	assert.InDelta(t, 2, energy.value, 1e-9)
	assert.Equal(t, beforeReset, energy.start, "the new series starts at the last point before the reset")
	assert.Less(t, energy.start, energy.ts)
	assert.Equal(t, beforeReset, onePoint(t, md, "hw.errors", gpuAttrs(0, "error.type", "corrected")).start)
	assert.Equal(t, beforeReset, onePoint(t, md, "hw.gpu.io", gpuAttrs(0, "network.io.direction", "transmit")).start)
	// Counters that did not go back keep their start; gauges keep the receiver start.
	assert.Equal(t, attached, onePoint(t, md, "hw.errors", gpuAttrs(0, "error.type", "uncorrected")).start)
	assert.Equal(t, attached, onePoint(t, md, "hw.gpu.io", gpuAttrs(0, "network.io.direction", "receive")).start)
	assert.Equal(t, started, onePoint(t, md, "hw.power", gpuAttrs(0)).start)

	s.clock.Advance(10 * time.Second)
	g.energyMJ = 3000
	md = s.mustScrape(t)
	assert.Equal(t, beforeReset, onePoint(t, md, "hw.energy", gpuAttrs(0)).start, "the start holds until the next reset")
}

func TestPCIeThroughputEstimateWhenCountersAreMissing(t *testing.T) {
	t.Parallel()
	f := newFakeNVML(t, 1)
	g := f.gpus[0]
	g.fieldFail[nvml.FI_DEV_PCIE_COUNT_TX_BYTES] = nvml.ERROR_NOT_SUPPORTED
	s := newTestScraper(t, f, f.procRoot, nil)
	s.mustStart(t)
	md := s.mustScrape(t)
	first := pcommon.NewTimestampFromTime(testStart)
	tx := onePoint(t, md, "hw.gpu.io", gpuAttrs(0, "network.io.direction", "transmit"))
	assert.InDelta(t, 0, tx.value, 0)
	assert.Equal(t, first, tx.start)

	s.clock.Advance(10 * time.Second)
	md = s.mustScrape(t)
	assert.InDelta(t, 1000*1024*10, onePoint(t, md, "hw.gpu.io", gpuAttrs(0, "network.io.direction", "transmit")).value, 0)
	assert.InDelta(t, 2000*1024*10, onePoint(t, md, "hw.gpu.io", gpuAttrs(0, "network.io.direction", "receive")).value, 0)

	s.clock.Advance(5 * time.Second)
	g.pcieTXKiBps = 0
	md = s.mustScrape(t)
	assert.InDelta(t, 1000*1024*10, onePoint(t, md, "hw.gpu.io", gpuAttrs(0, "network.io.direction", "transmit")).value, 0)
	// Field values are still used for the memory temperature and the other counters, but the PCIe byte
	// counters are not requested again.
	last := g.dev.GetFieldValuesCalls()[len(g.dev.GetFieldValuesCalls())-1]
	require.NotEmpty(t, last.FieldValues)
	assert.Equal(t, uint32(nvml.FI_DEV_MEMORY_TEMP), last.FieldValues[0].FieldId)
	for _, fv := range last.FieldValues {
		assert.NotContains(t, []uint32{nvml.FI_DEV_PCIE_COUNT_TX_BYTES, nvml.FI_DEV_PCIE_COUNT_RX_BYTES}, fv.FieldId)
	}
}

func TestProcessMemorySkipsUnavailableAndCaps(t *testing.T) {
	t.Parallel()
	f := newFakeNVML(t, 1)
	g := f.gpus[0]
	g.processes = []nvml.ProcessInfo{{Pid: 7, UsedGpuMemory: ^uint64(0)}} // NVML_VALUE_NOT_AVAILABLE
	for pid := range uint32(maxProcessesPerDevice + 5) {
		g.processes = append(g.processes, nvml.ProcessInfo{Pid: 100 + pid, UsedGpuMemory: gib})
	}
	s := newTestScraper(t, f, f.procRoot, nil)
	s.mustStart(t)
	md := s.mustScrape(t)
	pts := metricPoints(md, "nvidia.gpu.process.memory.usage")
	assert.Len(t, pts, maxProcessesPerDevice)
	assert.Empty(t, findPoints(md, "nvidia.gpu.process.memory.usage", map[string]any{"process.pid": int64(7)}))
	assert.Empty(t, pts[0].attrs["process.executable.name"], "a PID not visible in /proc has no name")
	s.mustScrape(t)
	assert.Len(t, logsContaining(s.logs, zapcore.WarnLevel, "per-device limit"), 1)
}

func TestDevicesFilter(t *testing.T) {
	t.Parallel()
	f := newFakeNVML(t, 4)
	s := newTestScraper(t, f, f.procRoot, func(cfg *Config) {
		cfg.Devices = []string{"1", testUUID(3), "GPU-does-not-exist"}
	})
	s.mustStart(t)
	md := s.mustScrape(t)
	var ids []string
	for _, p := range metricPoints(md, "hw.power") {
		ids = append(ids, p.attrs["hw.id"].(string))
	}
	assert.ElementsMatch(t, []string{testUUID(1), testUUID(3)}, ids)
	assert.Empty(t, f.gpus[0].dev.GetPowerUsageCalls())
	assert.Len(t, logsContaining(s.logs, zapcore.WarnLevel, "match no GPU", "GPU-does-not-exist"), 1)
}

func TestDevicesFilterSelectsOneMIGInstance(t *testing.T) {
	t.Parallel()
	f := newFakeNVML(t, 2)
	migA := newFakeMIG(1, 0, 10*gib, gib)
	migB := newFakeMIG(1, 1, 10*gib, 2*gib)
	f.enableMIG(1, migA, migB)
	s := newTestScraper(t, f, f.procRoot, func(cfg *Config) { cfg.Devices = []string{migB.uuid} })
	s.mustStart(t)
	md := s.mustScrape(t)
	assert.Equal(t, []string{"hw.gpu.memory.limit", "hw.gpu.memory.usage", "hw.gpu.memory.utilization", "nvidia.gpu.memory.reserved"}, metricNames(md))
	assert.Len(t, metricPoints(md, "hw.gpu.memory.usage"), 1)
	assert.Len(t, findPoints(md, "hw.gpu.memory.usage", map[string]any{"hw.id": migB.uuid, "hw.parent": testUUID(1)}), 1)
	assert.Empty(t, logsContaining(s.logs, zapcore.WarnLevel, "match no GPU"))
}

func TestScrapeStopsAtDeadline(t *testing.T) {
	t.Parallel()
	f := newFakeNVML(t, 2)
	s := newTestScraper(t, f, f.procRoot, nil)
	s.mustStart(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	md, err := s.scrape(ctx)
	requirePartial(t, err, 2, "scrape timed out with 2 of 2 GPUs unread", "context canceled")
	assert.Zero(t, md.DataPointCount())
	assert.Len(t, logsContaining(s.logs, zapcore.WarnLevel, "timed out"), 1)
}
