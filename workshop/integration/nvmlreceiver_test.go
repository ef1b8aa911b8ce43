//go:build cgo

package integration_test

// Integration tests: the receiver loads a fake libnvidia-ml.so.1, compiled from C by the test with gcc, through
// go-nvml's real dlopen path (library_path). Each case runs in its own child process of the test binary (see
// package fakenvml). Expected values are derived from the script with the unit conversions the receiver
// documents (mW -> W, mJ -> J, MHz -> Hz, percent -> fraction).

import (
	"context"
	"go/ast"
	"go/parser"
	"go/token"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/receiver/receivertest"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/otelcol-vllm/otelcol-vllm/receiver/nvmlreceiver"
	"github.com/otelcol-vllm/otelcol-vllm/workshop/fakenvml"
)

const (
	intH100UUID = "GPU-11111111-2222-3333-4444-555555555555"
	intL4UUID   = "GPU-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
	intDriver   = "550.54.15"
	intGiB      = uint64(1) << 30
	// intNoSuchPID cannot be a Linux PID (above the largest pid_max), so it never resolves to a process name.
	intNoSuchPID = 1<<22 + 1
)

// intScript is two GPUs: a fully scripted H100 and an L4 with little more than power and memory. The H100's
// compute process has the PID of the process that writes the script, which is the parent of the child test
// process, so its name is known (intParentProcessName).
func intScript() fakenvml.Script {
	return fakenvml.Script{
		DriverVersion: intDriver,
		GPUs: []fakenvml.GPU{
			{
				UUID: intH100UUID, Name: "NVIDIA H100 80GB HBM3",
				MemoryTotal: 80 * intGiB, MemoryReserved: intGiB / 2, MemoryUsed: 40 * intGiB,
				UtilizationGPU: 87, UtilizationMemory: 45, EncoderUtilization: 12, DecoderUtilization: 7,
				TemperatureGPU: 64,
				PowerUsage:     123456, EnforcedPowerLimit: 700000,
				TotalEnergyConsumption: 987654321,
				ClockGraphics:          1755, ClockSM: 1980, ClockMemory: 2619,
				ECCEnabled: true, ECCVolatileCorrected: 5, ECCVolatileUncorrected: 1,
				ClocksEventReasons:          nvml.ClocksEventReasonSwPowerCap | nvml.ClocksThrottleReasonHwThermalSlowdown,
				SupportedClocksEventReasons: 0x7ff,
				RemappedCorrectable:         2, RemappedUncorrectable: 1,
				XIDs: []uint64{79, 48, 79},
				Samples: map[nvml.SamplingType][]fakenvml.Sample{
					nvml.GPU_UTILIZATION_SAMPLES: {
						{After: time.Second, Value: 50}, {After: 2 * time.Second, Value: 70}, {After: 3 * time.Second, Value: 90},
					},
				},
				Fields: map[uint32]uint64{
					nvml.FI_DEV_MEMORY_TEMP:         71,
					nvml.FI_DEV_PCIE_COUNT_TX_BYTES: 1_000_000,
					nvml.FI_DEV_PCIE_COUNT_RX_BYTES: 2_000_000,
					// NVLink on an H100 SXM (KiB and error totals) and throttle time (ns)
					nvml.FI_DEV_NVLINK_THROUGHPUT_DATA_TX:             3_000_000,
					nvml.FI_DEV_NVLINK_THROUGHPUT_DATA_RX:             4_000_000,
					nvml.FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL:     2,
					nvml.FI_DEV_NVLINK_REPLAY_ERROR_COUNT_TOTAL:       7,
					nvml.FI_DEV_PERF_POLICY_POWER:                     12_500_000_000,
					nvml.FI_DEV_CLOCKS_EVENT_REASON_HW_THERM_SLOWDOWN: 750_000_000,
				},
				PCIeReplays:  4,
				GPMSupported: true,
				GPM: map[nvml.GpmMetricId]float64{
					nvml.GPM_METRIC_GRAPHICS_UTIL: 97.5, nvml.GPM_METRIC_SM_UTIL: 82.25, nvml.GPM_METRIC_SM_OCCUPANCY: 41,
					nvml.GPM_METRIC_ANY_TENSOR_UTIL: 55.5, nvml.GPM_METRIC_FP16_UTIL: 3, nvml.GPM_METRIC_DRAM_BW_UTIL: 63,
					nvml.GPM_METRIC_PCIE_TX_PER_SEC: 1500, nvml.GPM_METRIC_NVLINK_TOTAL_RX_PER_SEC: 110000,
				},
				Processes: []fakenvml.Process{
					{PID: uint32(os.Getpid()), UsedMemory: 10 * intGiB,
						Utilization: &fakenvml.ProcessUtilization{After: time.Second, SM: 60}},
					{PID: intNoSuchPID, UsedMemory: math.MaxUint64}, // NVML_VALUE_NOT_AVAILABLE: not reported
					{PID: intNoSuchPID + 1, UsedMemory: intGiB, Type: fakenvml.Graphics},
				},
			},
			{
				UUID: intL4UUID, Name: "NVIDIA L4", MemoryTotal: 24 * intGiB, MemoryUsed: 6 * intGiB,
				PowerUsage: 50000, Extra: map[string]string{"minor_number": "3"},
			},
		},
	}
}

// intParentProcessName is /proc/<pid>/comm of the parent test process: its executable's name, cut to 15 bytes.
func intParentProcessName() string {
	name := filepath.Base(os.Args[0])
	return name[:min(len(name), 15)]
}

func enableOptionalMetrics(cfg *nvmlreceiver.Config) {
	cfg.Metrics.HwStatus.Enabled = true
	cfg.Metrics.NvidiaGpuProcessUtilization.Enabled = true
	cfg.Metrics.NvidiaGpuRemappedRows.Enabled = true
}

func TestIntegrationFullLibrary(t *testing.T) {
	fakenvml.Run(t, fakenvml.Setup{Script: intScript()}, func(t *testing.T, lib *fakenvml.Lib) {
		xidCounted := func(batches []pmetric.Metrics) bool {
			for _, md := range batches {
				v := intFlatten(t, md).values
				if v[intKey("nvidia.gpu.xid.errors", intH100UUID, "nvidia.gpu.xid=79")] == 2 &&
					v[intKey("nvidia.gpu.xid.errors", intH100UUID, "nvidia.gpu.xid=48")] == 1 {
					return true
				}
			}
			return false
		}
		run := runReceiver(t, lib.Path, enableOptionalMetrics, func(batches []pmetric.Metrics) bool {
			return len(batches) >= 2 && xidCounted(batches)
		})

		first := intFlatten(t, run.batches[0])
		pid := strconv.Itoa(os.Getppid())
		procName := intParentProcessName()
		h100 := intScript().GPUs[0]
		want := map[string]float64{
			// time-weighted mean of the samples after the first: (70*1s + 90*1s) / 2s
			intKey("hw.gpu.utilization", intH100UUID, "hw.gpu.task=general"):                        0.80,
			intKey("hw.gpu.utilization", intH100UUID, "hw.gpu.task=encoder"):                        float64(h100.EncoderUtilization) / 100,
			intKey("hw.gpu.utilization", intH100UUID, "hw.gpu.task=decoder"):                        float64(h100.DecoderUtilization) / 100,
			intKey("nvidia.gpu.memory.bandwidth.utilization", intH100UUID):                          float64(h100.UtilizationMemory) / 100,
			intKey("hw.gpu.memory.usage", intH100UUID):                                              float64(h100.MemoryUsed),
			intKey("hw.gpu.memory.limit", intH100UUID):                                              float64(h100.MemoryTotal),
			intKey("hw.gpu.memory.utilization", intH100UUID):                                        float64(h100.MemoryUsed) / float64(h100.MemoryTotal),
			intKey("hw.power", intH100UUID, "hw.type=gpu"):                                          123.456,
			intKey("nvidia.gpu.power.limit", intH100UUID):                                           700,
			intKey("hw.energy", intH100UUID, "hw.type=gpu"):                                         987654.321,
			intKey("hw.temperature", intH100UUID, "hw.sensor_location=gpu"):                         64,
			intKey("hw.temperature", intH100UUID, "hw.sensor_location=memory"):                      71,
			intKey("hw.gpu.io", intH100UUID, "network.io.direction=transmit"):                       1_000_000,
			intKey("hw.gpu.io", intH100UUID, "network.io.direction=receive"):                        2_000_000,
			intKey("nvidia.gpu.clock.frequency", intH100UUID, "nvidia.gpu.clock.type=graphics"):     1755e6,
			intKey("nvidia.gpu.clock.frequency", intH100UUID, "nvidia.gpu.clock.type=sm"):           1980e6,
			intKey("nvidia.gpu.clock.frequency", intH100UUID, "nvidia.gpu.clock.type=memory"):       2619e6,
			intKey("hw.errors", intH100UUID, "hw.type=gpu", "error.type=corrected"):                 5,
			intKey("hw.errors", intH100UUID, "hw.type=gpu", "error.type=uncorrected"):               1,
			intKey("nvidia.gpu.remapped_rows", intH100UUID, "nvidia.gpu.remap.cause=correctable"):   2,
			intKey("nvidia.gpu.remapped_rows", intH100UUID, "nvidia.gpu.remap.cause=uncorrectable"): 1,
			// a hardware thermal slowdown is active
			intKey("hw.status", intH100UUID, "hw.type=gpu", "hw.state=ok"):                                                  0,
			intKey("hw.status", intH100UUID, "hw.type=gpu", "hw.state=degraded"):                                            1,
			intKey("hw.status", intH100UUID, "hw.type=gpu", "hw.state=failed"):                                              0,
			intKey("nvidia.gpu.process.memory.usage", intH100UUID, "process.pid="+pid, "process.executable.name="+procName): float64(10 * intGiB),
			intKey("nvidia.gpu.process.utilization", intH100UUID, "process.pid="+pid, "process.executable.name="+procName):  0.60,
			intKey("nvidia.gpu.memory.reserved", intH100UUID):                                                               float64(h100.MemoryReserved),
			intKey("nvidia.gpu.pcie.replays", intH100UUID):                                                                  4,
			intKey("nvidia.gpu.nvlink.io", intH100UUID, "network.io.direction=transmit"):                                    3_000_000 * 1024,
			intKey("nvidia.gpu.nvlink.io", intH100UUID, "network.io.direction=receive"):                                     4_000_000 * 1024,
			intKey("nvidia.gpu.nvlink.errors", intH100UUID, "nvidia.gpu.nvlink.error.type=crc_flit"):                        2,
			intKey("nvidia.gpu.nvlink.errors", intH100UUID, "nvidia.gpu.nvlink.error.type=replay"):                          7,
			intKey("nvidia.gpu.clock_event.duration", intH100UUID, "nvidia.gpu.clock_event.reason=sw_power_cap"):            12.5,
			intKey("nvidia.gpu.clock_event.duration", intH100UUID, "nvidia.gpu.clock_event.reason=hw_thermal_slowdown"):     0.75,
		}
		for _, reason := range []string{
			"gpu_idle", "applications_clocks_setting", "sw_power_cap", "hw_slowdown", "sync_boost", "sw_thermal_slowdown",
			"hw_thermal_slowdown", "hw_power_brake_slowdown", "display_clock_setting", "board_limit", "reliability",
		} {
			active := 0.0
			if reason == "sw_power_cap" || reason == "hw_thermal_slowdown" {
				active = 1
			}
			want[intKey("nvidia.gpu.clock_event.active", intH100UUID, "nvidia.gpu.clock_event.reason="+reason)] = active
		}
		gotH100 := first.forGPU(intH100UUID)
		delete(gotH100, intKey("nvidia.gpu.xid.errors", intH100UUID, "nvidia.gpu.xid=79")) // counted asynchronously
		delete(gotH100, intKey("nvidia.gpu.xid.errors", intH100UUID, "nvidia.gpu.xid=48"))
		intAssertPoints(t, want, gotH100)

		l4 := intScript().GPUs[1]
		assert.InDelta(t, 50.0, first.values[intKey("hw.power", intL4UUID, "hw.type=gpu")], 1e-9)
		assert.InDelta(t, float64(l4.MemoryUsed), first.values[intKey("hw.gpu.memory.usage", intL4UUID)], 0)
		assert.InDelta(t, float64(l4.MemoryTotal), first.values[intKey("hw.gpu.memory.limit", intL4UUID)], 0)

		assert.Equal(t, map[string]map[string]string{
			intH100UUID: {"hw.name": "nvidia0", "hw.model": "NVIDIA H100 80GB HBM3", "hw.vendor": "NVIDIA",
				"hw.driver_version": intDriver, "nvidia.gpu.index": "0"},
			intL4UUID: {"hw.name": "nvidia3", "hw.model": "NVIDIA L4", "hw.vendor": "NVIDIA",
				"hw.driver_version": intDriver, "nvidia.gpu.index": "1"},
		}, first.identity)

		// No new utilization samples in the second scrape: the instantaneous rate is reported instead.
		second := intFlatten(t, run.batches[1])
		// GPM needs two samples: its averages appear from the second scrape on, for the H100 only (the L4 has no GPM).
		assert.Empty(t, first.metric("nvidia.gpu.sm.activity"))
		intAssertPoints(t, map[string]float64{
			intKey("nvidia.gpu.graphics_engine.activity", intH100UUID):                         0.975,
			intKey("nvidia.gpu.sm.activity", intH100UUID):                                      0.8225,
			intKey("nvidia.gpu.sm.occupancy", intH100UUID):                                     0.41,
			intKey("nvidia.gpu.pipe.activity", intH100UUID, "nvidia.gpu.pipe=tensor"):          0.555,
			intKey("nvidia.gpu.pipe.activity", intH100UUID, "nvidia.gpu.pipe=fp16"):            0.03,
			intKey("nvidia.gpu.dram.activity", intH100UUID):                                    0.63,
			intKey("nvidia.gpu.pcie.bandwidth", intH100UUID, "network.io.direction=transmit"):  1500 * 1 << 20,
			intKey("nvidia.gpu.nvlink.bandwidth", intH100UUID, "network.io.direction=receive"): 110000 * 1 << 20,
		}, gpmPoints(second))
		assert.InDelta(t, float64(h100.UtilizationGPU)/100,
			second.values[intKey("hw.gpu.utilization", intH100UUID, "hw.gpu.task=general")], 1e-9)

		energy := intFindMetric(t, run.batches[0], "hw.energy")
		assert.Equal(t, "J", energy.Unit())
		require.Equal(t, pmetric.MetricTypeSum, energy.Type())
		assert.True(t, energy.Sum().IsMonotonic())
		assert.Equal(t, pmetric.AggregationTemporalityCumulative, energy.Sum().AggregationTemporality())
		dp := energy.Sum().DataPoints().At(0)
		assert.NotZero(t, dp.StartTimestamp())
		assert.LessOrEqual(t, dp.StartTimestamp(), dp.Timestamp())
		assert.Equal(t, "W", intFindMetric(t, run.batches[0], "hw.power").Unit())

		// Shutdown hands NVML back exactly once, after freeing the XID event set.
		calls := lib.Calls(t)
		require.NotEmpty(t, calls)
		assert.Equal(t, 1, lib.CallCount(t, "nvmlInit_v2"))
		assert.Equal(t, 1, lib.CallCount(t, "nvmlEventSetFree"))
		assert.Equal(t, 2, lib.CallCount(t, "nvmlGpmSampleAlloc"), "two samples for the H100")
		assert.Equal(t, 2, lib.CallCount(t, "nvmlGpmSampleFree"), "both handed back at shutdown")
		assert.Equal(t, 1, lib.CallCount(t, "nvmlShutdown"))
		assert.Equal(t, fakenvml.Call{Function: "nvmlShutdown", GPU: -1}, calls[len(calls)-1])
	})
}

// gpmPoints keeps the points of the GPM metrics.
func gpmPoints(p intPoints) map[string]float64 {
	out := map[string]float64{}
	for _, name := range []string{"nvidia.gpu.graphics_engine.activity", "nvidia.gpu.sm.activity", "nvidia.gpu.sm.occupancy",
		"nvidia.gpu.pipe.activity", "nvidia.gpu.dram.activity", "nvidia.gpu.pcie.bandwidth", "nvidia.gpu.nvlink.bandwidth"} {
		maps.Copy(out, p.metric(name))
	}
	return out
}

func TestIntegrationMissingSymbols(t *testing.T) {
	t.Run("older driver without optional symbols", func(t *testing.T) {
		t.Parallel()
		setup := fakenvml.Setup{
			Script: intScript(),
			Omit: []string{
				"nvmlDeviceGetTotalEnergyConsumption",     // hw.energy is skipped
				"nvmlDeviceGetMemoryInfo_v2",              // memory comes from the v1 call
				"nvmlDeviceGetComputeRunningProcesses_v3", // go-nvml binds _v2 instead
				"nvmlEventSetCreate",                      // no XID events
				"nvmlGpmMetricsGet",                       // a driver before R520: no GPM
				"nvmlGpmSampleGet",
				"nvmlDeviceGetPcieReplayCounter", // no PCIe replays
			},
		}
		fakenvml.Run(t, setup, func(t *testing.T, lib *fakenvml.Lib) {
			run := runReceiver(t, lib.Path, nil, intAtLeastBatches(3))
			got := intFlatten(t, run.batches[0])
			h100 := intScript().GPUs[0]

			for _, md := range run.batches {
				assert.Empty(t, gpmPoints(intFlatten(t, md)), "no GPM without its symbols")
			}
			assert.Empty(t, got.metric("nvidia.gpu.pcie.replays"))
			assert.Len(t, run.logs.FilterMessageSnippet("no GPU performance monitoring").All(), 1, "logged once")
			assert.Zero(t, lib.CallCount(t, "nvmlGpmSampleAlloc"))
			assert.Empty(t, got.metric("hw.energy"))
			assert.Empty(t, got.metric("nvidia.gpu.xid.errors"))
			assert.InDelta(t, 123.456, got.values[intKey("hw.power", intH100UUID, "hw.type=gpu")], 1e-9)
			// v1 counts reserved memory as used.
			assert.InDelta(t, float64(h100.MemoryReserved+h100.MemoryUsed), got.values[intKey("hw.gpu.memory.usage", intH100UUID)], 0)
			pid := strconv.Itoa(os.Getppid())
			assert.InDelta(t, float64(10*intGiB), got.values[intKey("nvidia.gpu.process.memory.usage", intH100UUID,
				"process.pid="+pid, "process.executable.name="+intParentProcessName())], 0)

			assert.Zero(t, lib.CallCount(t, "nvmlDeviceGetComputeRunningProcesses_v3"))
			assert.Positive(t, lib.CallCount(t, "nvmlDeviceGetComputeRunningProcesses_v2"))
			assert.Positive(t, lib.CallCount(t, "nvmlDeviceGetMemoryInfo"))
			assert.NotEmpty(t, run.logs.FilterMessageSnippet("XID events are not available").All())
			assert.Equal(t, 1, lib.CallCount(t, "nvmlShutdown"))
		})
	})
	t.Run("library without nvmlDeviceGetUUID is not used", func(t *testing.T) {
		t.Parallel()
		setup := fakenvml.Setup{Script: intScript(), Omit: []string{"nvmlDeviceGetUUID"}}
		fakenvml.Run(t, setup, func(t *testing.T, lib *fakenvml.Lib) {
			run := runReceiver(t, lib.Path, nil, intAtLeastBatches(3))
			intAssertNoDataPoints(t, run.batches)
			warning := intOneWarning(t, run.logs, "NVML is not usable")
			assert.Contains(t, warning.ContextMap()["error"], "nvmlDeviceGetUUID")
			// Initialised, found unusable, handed back; no device was touched.
			assert.Equal(t, []fakenvml.Call{{Function: "nvmlInit_v2", GPU: -1}, {Function: "nvmlShutdown", GPU: -1}},
				lib.Calls(t))
		})
	})
}

func TestIntegrationNoUsableNVML(t *testing.T) {
	t.Run("library_path does not exist", func(t *testing.T) {
		t.Parallel()
		// Nothing is loaded, so this needs no child process.
		missing := filepath.Join(t.TempDir(), "no-such-dir", fakenvml.LibraryName)
		run := runReceiver(t, missing, nil, intAtLeastBatches(3))
		intAssertNoDataPoints(t, run.batches)
		warning := intOneWarning(t, run.logs, "NVML is not usable")
		assert.Equal(t, "nvmlInit: ERROR_LIBRARY_NOT_FOUND", warning.ContextMap()["error"])
	})
	t.Run("driver not loaded", func(t *testing.T) {
		t.Parallel()
		script := intScript()
		script.Errors = map[string]nvml.Return{"nvmlInit_v2": nvml.ERROR_DRIVER_NOT_LOADED}
		fakenvml.Run(t, fakenvml.Setup{Script: script}, func(t *testing.T, lib *fakenvml.Lib) {
			run := runReceiver(t, lib.Path, nil, intAtLeastBatches(3))
			intAssertNoDataPoints(t, run.batches)
			warning := intOneWarning(t, run.logs, "NVML is not usable")
			assert.Equal(t, "nvmlInit: ERROR_DRIVER_NOT_LOADED", warning.ContextMap()["error"])
			// After a failed nvmlInit nothing else may be called, nvmlShutdown included.
			assert.Equal(t, []fakenvml.Call{{Function: "nvmlInit_v2", GPU: -1}}, lib.Calls(t))
		})
	})
}

func TestIntegrationLostGPU(t *testing.T) {
	t.Run("lost before discovery", func(t *testing.T) {
		t.Parallel()
		script := intScript()
		script.GPUs[1].Lost = true
		fakenvml.Run(t, fakenvml.Setup{Script: script}, func(t *testing.T, lib *fakenvml.Lib) {
			run := runReceiver(t, lib.Path, enableOptionalMetrics, intAtLeastBatches(2))
			got := intFlatten(t, run.batches[0])
			assert.InDelta(t, 123.456, got.values[intKey("hw.power", intH100UUID, "hw.type=gpu")], 1e-9)
			assert.Empty(t, got.forGPU(intL4UUID))
			warning := intOneWarning(t, run.logs, "skipping a GPU without a UUID")
			assert.Equal(t, "ERROR_GPU_IS_LOST", warning.ContextMap()["nvml_error"])
			assert.EqualValues(t, 1, warning.ContextMap()["nvidia.gpu.index"])
		})
	})
	t.Run("lost while scraping", func(t *testing.T) {
		t.Parallel()
		script := intScript()
		script.GPUs[1].Errors = map[string]nvml.Return{"nvmlDeviceGetSamples": nvml.ERROR_GPU_IS_LOST}
		fakenvml.Run(t, fakenvml.Setup{Script: script}, func(t *testing.T, lib *fakenvml.Lib) {
			run := runReceiver(t, lib.Path, enableOptionalMetrics, intAtLeastBatches(3))
			for i, md := range run.batches[:3] {
				got := intFlatten(t, md)
				assert.InDelta(t, 123.456, got.values[intKey("hw.power", intH100UUID, "hw.type=gpu")], 1e-9, "scrape %d", i)
				assert.Equal(t, map[string]float64{
					intKey("hw.status", intL4UUID, "hw.type=gpu", "hw.state=ok"):       0,
					intKey("hw.status", intL4UUID, "hw.type=gpu", "hw.state=degraded"): 0,
					intKey("hw.status", intL4UUID, "hw.type=gpu", "hw.state=failed"):   1,
				}, got.forGPU(intL4UUID), "scrape %d: a lost GPU reports only its failed status", i)
			}
			warning := intOneWarning(t, run.logs, "GPU is no longer usable")
			assert.Equal(t, intL4UUID, warning.ContextMap()["hw.id"])
			assert.Equal(t, "ERROR_GPU_IS_LOST", warning.ContextMap()["nvml_error"])

			// The receiver stops asking the lost GPU anything.
			calls := lib.Calls(t)
			lostAt := slices.Index(calls, fakenvml.Call{Function: "nvmlDeviceGetSamples", GPU: 1})
			require.GreaterOrEqual(t, lostAt, 0)
			for _, c := range calls[lostAt+1:] {
				assert.NotEqual(t, 1, c.GPU, "%s called on the lost GPU", c.Function)
			}
		})
	})
}

// TestIntegrationFakeLibraryExportsReceiverSymbols keeps the fake library in step with the receiver: every C
// symbol the receiver may call (nvmlSymbols in symbols.go) must be exported by the fake, or a test would
// silently skip that call instead of exercising it.
func TestIntegrationFakeLibraryExportsReceiverSymbols(t *testing.T) {
	file, err := parser.ParseFile(token.NewFileSet(), filepath.Join("..", "..", "receiver", "nvmlreceiver", "symbols.go"), nil, 0)
	require.NoError(t, err)
	var names []string
	ast.Inspect(file, func(n ast.Node) bool {
		spec, ok := n.(*ast.ValueSpec)
		if !ok || len(spec.Names) != 1 || spec.Names[0].Name != "nvmlSymbols" {
			return true
		}
		ast.Inspect(spec, func(n ast.Node) bool {
			if lit, ok := n.(*ast.BasicLit); ok && lit.Kind == token.STRING {
				name, err := strconv.Unquote(lit.Value)
				require.NoError(t, err)
				names = append(names, name)
			}
			return true
		})
		return false
	})
	require.NotEmpty(t, names, "no nvmlSymbols table in symbols.go")
	exported := fakenvml.Symbols()
	for _, name := range names {
		_, found := slices.BinarySearch(exported, name)
		assert.True(t, found, "the receiver calls %s but the fake library does not export it", name)
	}
}

type receiverRun struct {
	batches []pmetric.Metrics // one per scrape, in order
	logs    *observer.ObservedLogs
}

// runReceiver runs the nvml receiver on the NVML library at libPath, scraping every 10ms, until done holds for
// the batches received so far, then shuts it down.
func runReceiver(t *testing.T, libPath string, configure func(*nvmlreceiver.Config), done func([]pmetric.Metrics) bool) receiverRun {
	t.Helper()
	factory := nvmlreceiver.NewFactory()
	cfg := factory.CreateDefaultConfig().(*nvmlreceiver.Config)
	cfg.LibraryPath = libPath
	cfg.InitialDelay = 0
	if configure != nil {
		configure(cfg)
	}
	require.NoError(t, cfg.Validate())
	// faster than a user may configure (collection_interval is at least 1s), so that a test takes milliseconds
	cfg.CollectionInterval = 10 * time.Millisecond

	core, logs := observer.New(zapcore.DebugLevel)
	set := receivertest.NewNopSettings(factory.Type())
	set.Logger = zap.New(core)
	sink := new(consumertest.MetricsSink)
	rcv, err := factory.CreateMetrics(context.Background(), set, cfg, sink)
	require.NoError(t, err)
	require.NoError(t, rcv.Start(context.Background(), componenttest.NewNopHost()), "a missing or broken NVML must not fail Start")
	var stopOnce sync.Once
	stop := func() { stopOnce.Do(func() { assert.NoError(t, rcv.Shutdown(context.Background())) }) }
	t.Cleanup(stop) // also when the wait below fails

	require.Eventually(t, func() bool { return done(sink.AllMetrics()) }, 5*time.Second, 5*time.Millisecond,
		"the receiver did not produce the expected scrapes")
	stop()
	return receiverRun{batches: sink.AllMetrics(), logs: logs}
}

func intAtLeastBatches(n int) func([]pmetric.Metrics) bool {
	return func(batches []pmetric.Metrics) bool { return len(batches) >= n }
}

func intAssertNoDataPoints(t *testing.T, batches []pmetric.Metrics) {
	t.Helper()
	for i, md := range batches {
		assert.Zero(t, md.DataPointCount(), "scrape %d emitted data points", i)
	}
}

// intOneWarning returns the only warning containing snippet: failures are reported once, not per scrape.
func intOneWarning(t *testing.T, logs *observer.ObservedLogs, snippet string) observer.LoggedEntry {
	t.Helper()
	found := logs.FilterLevelExact(zapcore.WarnLevel).FilterMessageSnippet(snippet).All()
	require.Len(t, found, 1, "warnings containing %q", snippet)
	return found[0]
}

func intAssertPoints(t *testing.T, want, got map[string]float64) {
	t.Helper()
	for key, w := range want {
		g, ok := got[key]
		if assert.True(t, ok, "missing point %s", key) {
			assert.InDelta(t, w, g, 1e-9*math.Max(1, math.Abs(w)), key)
		}
	}
	for key := range got {
		_, ok := want[key]
		assert.True(t, ok, "unexpected point %s = %v", key, got[key])
	}
}

// intIdentityAttributes are the same on every point of a GPU; intFlatten checks them per hw.id instead of
// putting them into every key.
var intIdentityAttributes = []string{"hw.name", "hw.model", "hw.vendor", "hw.driver_version", "nvidia.gpu.index"}

type intPoints struct {
	values   map[string]float64           // intKey -> value
	identity map[string]map[string]string // hw.id -> identity attributes
}

// intKey is "metric{attr=value,...}" with the attributes sorted; hw.id is one of them.
func intKey(metric, hwID string, attrs ...string) string {
	all := append([]string{"hw.id=" + hwID}, attrs...)
	sort.Strings(all)
	return metric + "{" + strings.Join(all, ",") + "}"
}

func (p intPoints) forGPU(hwID string) map[string]float64 {
	out := map[string]float64{}
	for k, v := range p.values {
		if strings.Contains(k, "hw.id="+hwID+",") || strings.Contains(k, "hw.id="+hwID+"}") {
			out[k] = v
		}
	}
	return out
}

func (p intPoints) metric(name string) map[string]float64 {
	out := map[string]float64{}
	for k, v := range p.values {
		if strings.HasPrefix(k, name+"{") {
			out[k] = v
		}
	}
	return out
}

func intFlatten(t *testing.T, md pmetric.Metrics) intPoints {
	t.Helper()
	p := intPoints{values: map[string]float64{}, identity: map[string]map[string]string{}}
	for i := range md.ResourceMetrics().Len() {
		sms := md.ResourceMetrics().At(i).ScopeMetrics()
		for j := range sms.Len() {
			ms := sms.At(j).Metrics()
			for k := range ms.Len() {
				m := ms.At(k)
				var dps pmetric.NumberDataPointSlice
				switch m.Type() {
				case pmetric.MetricTypeGauge:
					dps = m.Gauge().DataPoints()
				case pmetric.MetricTypeSum:
					dps = m.Sum().DataPoints()
				default:
					t.Fatalf("metric %s has unexpected type %s", m.Name(), m.Type())
				}
				for l := range dps.Len() {
					p.add(t, m.Name(), dps.At(l))
				}
			}
		}
	}
	return p
}

func (p intPoints) add(t *testing.T, metric string, dp pmetric.NumberDataPoint) {
	attrs := map[string]string{}
	dp.Attributes().Range(func(k string, v pcommon.Value) bool {
		attrs[k] = v.AsString()
		return true
	})
	hwID := attrs["hw.id"]
	require.NotEmpty(t, hwID, "%s point without hw.id", metric)
	identity := map[string]string{}
	for _, name := range intIdentityAttributes {
		identity[name] = attrs[name]
		delete(attrs, name)
	}
	if prev, ok := p.identity[hwID]; ok {
		assert.Equal(t, prev, identity, "identity attributes of %s differ on %s", hwID, metric)
	}
	p.identity[hwID] = identity
	delete(attrs, "hw.id")
	var extra []string
	for k, v := range attrs {
		extra = append(extra, k+"="+v)
	}
	key := intKey(metric, hwID, extra...)
	_, dup := p.values[key]
	require.False(t, dup, "two points for %s", key)
	switch dp.ValueType() {
	case pmetric.NumberDataPointValueTypeInt:
		p.values[key] = float64(dp.IntValue())
	case pmetric.NumberDataPointValueTypeDouble:
		p.values[key] = dp.DoubleValue()
	default:
		t.Fatalf("%s has no value", key)
	}
}

func intFindMetric(t *testing.T, md pmetric.Metrics, name string) pmetric.Metric {
	t.Helper()
	for i := range md.ResourceMetrics().Len() {
		sms := md.ResourceMetrics().At(i).ScopeMetrics()
		for j := range sms.Len() {
			ms := sms.At(j).Metrics()
			for k := range ms.Len() {
				if ms.At(k).Name() == name {
					return ms.At(k)
				}
			}
		}
	}
	t.Fatalf("no %s metric", name)
	return pmetric.Metric{}
}
