//go:build cgo

package fakenvml_test

import (
	"encoding/binary"
	"fmt"
	"math"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-vllm/otelcol-vllm/workshop/fakenvml"
)

const (
	uuid0 = "GPU-11111111-2222-3333-4444-555555555555"
	uuid1 = "GPU-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
	gib   = uint64(1) << 30
)

// h100 is a fully scripted GPU; every value differs from its neighbours so a mixed-up getter shows.
func h100() fakenvml.GPU {
	return fakenvml.GPU{
		UUID: uuid0, Name: "NVIDIA H100 80GB HBM3", Serial: "1650123456789", VBIOSVersion: "96.00.74.00.01",
		PCIBusID:    "00000000:1B:00.0",
		MemoryTotal: 80 * gib, MemoryReserved: gib / 2, MemoryUsed: 40 * gib,
		UtilizationGPU: 87, UtilizationMemory: 45, EncoderUtilization: 12, DecoderUtilization: 7,
		TemperatureGPU: 64,
		PowerUsage:     123456, EnforcedPowerLimit: 700000, PowerManagementLimit: 650000,
		TotalEnergyConsumption: 987654321,
		ClockGraphics:          1755, ClockSM: 1980, ClockMemory: 2619, ClockVideo: 1545,
		PCIeTxKBps: 1024, PCIeRxKBps: 2048, PCIeReplays: 3,
		ECCEnabled:           true,
		ECCVolatileCorrected: 5, ECCVolatileUncorrected: 1, ECCAggregateCorrected: 50, ECCAggregateUncorrected: 2,
		ClocksEventReasons:          nvml.ClocksEventReasonSwPowerCap | nvml.ClocksThrottleReasonHwThermalSlowdown,
		SupportedClocksEventReasons: 0x7ff,
		RemappedCorrectable:         2, RemappedUncorrectable: 1, RemappedPending: true,
		XIDs: []uint64{79, 48},
		Samples: map[nvml.SamplingType][]fakenvml.Sample{
			nvml.GPU_UTILIZATION_SAMPLES: {{After: time.Second, Value: 50}, {After: 2 * time.Second, Value: 70}},
		},
		Fields: map[uint32]uint64{nvml.FI_DEV_MEMORY_TEMP: 71},
		Processes: []fakenvml.Process{
			{PID: 1234, UsedMemory: 10 * gib, Utilization: &fakenvml.ProcessUtilization{
				After: time.Second, SM: 60, Memory: 30, Encoder: 2, Decoder: 1,
			}},
			{PID: 5678, UsedMemory: gib / 2, Type: fakenvml.Graphics},
			{PID: 999, UsedMemory: math.MaxUint64, Type: fakenvml.MPS},
		},
	}
}

func twoGPUs() fakenvml.Script {
	return fakenvml.Script{
		DriverVersion: "550.54.15", NVMLVersion: "12.550.54.15", CUDADriverVersion: 12040,
		GPUs: []fakenvml.GPU{h100(), {UUID: uuid1, Name: "NVIDIA L4", MemoryTotal: 24 * gib, PowerUsage: 50000}},
	}
}

// open initialises go-nvml on the fake library and shuts it down at the end of the test.
func open(t *testing.T, lib *fakenvml.Lib) nvml.Interface {
	t.Helper()
	n := nvml.New(nvml.WithLibraryPath(lib.Path))
	require.Equal(t, nvml.SUCCESS, n.Init())
	t.Cleanup(func() { assert.Equal(t, nvml.SUCCESS, n.Shutdown()) })
	return n
}

func device(t *testing.T, n nvml.Interface, index int) nvml.Device {
	t.Helper()
	dev, ret := n.DeviceGetHandleByIndex(index)
	require.Equal(t, nvml.SUCCESS, ret)
	return dev
}

func TestScriptRender(t *testing.T) {
	tests := []struct {
		name    string
		script  fakenvml.Script
		want    []string // lines the rendering must contain
		wantErr string
	}{
		{
			name: "library keys and errors",
			script: fakenvml.Script{DriverVersion: "550.54.15", Errors: map[string]nvml.Return{
				"nvmlInit_v2": nvml.ERROR_DRIVER_NOT_LOADED,
			}},
			want: []string{"driver_version=550.54.15", "gpu_count=0", "error.nvmlInit_v2=9"},
		},
		{
			name: "samples and processes use offsets from init in microseconds",
			script: fakenvml.Script{GPUs: []fakenvml.GPU{{
				Samples: map[nvml.SamplingType][]fakenvml.Sample{
					nvml.TOTAL_POWER_SAMPLES: {{After: 1500 * time.Millisecond, Value: 250000}, {Value: 1}},
				},
				Processes: []fakenvml.Process{{PID: 7, UsedMemory: math.MaxUint64, Type: fakenvml.Graphics,
					Utilization: &fakenvml.ProcessUtilization{After: time.Millisecond, SM: 9}}},
			}}},
			want: []string{
				"gpu_count=1", "gpu.0.samples.power=+1500000:250000,+0:1",
				"gpu.0.process.0.pid=7", "gpu.0.process.0.used_memory=18446744073709551615",
				"gpu.0.process.0.type=graphics", "gpu.0.process.0.timestamp=+1000", "gpu.0.process.0.sm_util=9",
			},
		},
		{
			name:    "unscriptable sampling type",
			script:  fakenvml.Script{GPUs: []fakenvml.GPU{{Samples: map[nvml.SamplingType][]fakenvml.Sample{99: nil}}}},
			wantErr: "sampling type 99",
		},
		{
			name:    "line break in a string would inject a key",
			script:  fakenvml.Script{GPUs: []fakenvml.GPU{{Name: "x\ngpu_count=3"}}},
			wantErr: "line break",
		},
		{
			name:    "unknown process type",
			script:  fakenvml.Script{GPUs: []fakenvml.GPU{{Processes: []fakenvml.Process{{PID: 1, Type: "cuda"}}}}},
			wantErr: `unknown type "cuda"`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.script.Render()
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			lines := strings.Split(got, "\n")
			for _, want := range tt.want {
				assert.Contains(t, lines, want)
			}
		})
	}
}

func TestBuildRejectsUnknownSymbol(t *testing.T) {
	rec := &fatalRecorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		fakenvml.Build(rec, fakenvml.Omit("nvmlDeviceGetNoSuchThing"))
	}()
	<-done
	assert.Contains(t, rec.fatal, `cannot omit "nvmlDeviceGetNoSuchThing"`)
}

// fatalRecorder captures Fatalf instead of failing the real test.
type fatalRecorder struct {
	testing.TB
	fatal string
}

func (r *fatalRecorder) Fatalf(format string, args ...any) {
	r.fatal = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func TestLibraryValuesThroughGoNVML(t *testing.T) {
	fakenvml.Run(t, fakenvml.Setup{Script: twoGPUs()}, func(t *testing.T, lib *fakenvml.Lib) {
		n := open(t, lib)

		// go-nvml now formats errors with the library's nvmlErrorString.
		assert.Equal(t, "NVML_ERROR_NOT_SUPPORTED", nvml.ERROR_NOT_SUPPORTED.Error())

		driver, ret := n.SystemGetDriverVersion()
		require.Equal(t, nvml.SUCCESS, ret)
		assert.Equal(t, "550.54.15", driver)
		nvmlVersion, ret := n.SystemGetNVMLVersion()
		require.Equal(t, nvml.SUCCESS, ret)
		assert.Equal(t, "12.550.54.15", nvmlVersion)
		cuda, ret := n.SystemGetCudaDriverVersion()
		require.Equal(t, nvml.SUCCESS, ret)
		assert.Equal(t, 12040, cuda)

		count, ret := n.DeviceGetCount()
		require.Equal(t, nvml.SUCCESS, ret)
		require.Equal(t, 2, count)
		_, ret = n.DeviceGetHandleByIndex(2)
		assert.Equal(t, nvml.ERROR_INVALID_ARGUMENT, ret)

		gpu0, gpu1 := device(t, n, 0), device(t, n, 1)
		byUUID, ret := n.DeviceGetHandleByUUID(uuid1)
		require.Equal(t, nvml.SUCCESS, ret)
		index, ret := byUUID.GetIndex()
		require.Equal(t, nvml.SUCCESS, ret)
		assert.Equal(t, 1, index)

		identity := []struct {
			name string
			get  func(nvml.Device) (string, nvml.Return)
			want [2]string
		}{
			{"uuid", nvml.Device.GetUUID, [2]string{uuid0, uuid1}},
			{"name", nvml.Device.GetName, [2]string{"NVIDIA H100 80GB HBM3", "NVIDIA L4"}},
			{"serial", nvml.Device.GetSerial, [2]string{"1650123456789", ""}},
			{"vbios", nvml.Device.GetVbiosVersion, [2]string{"96.00.74.00.01", ""}},
		}
		for _, tt := range identity {
			for i, dev := range []nvml.Device{gpu0, gpu1} {
				got, ret := tt.get(dev)
				if tt.want[i] == "" {
					assert.Equal(t, nvml.ERROR_NOT_SUPPORTED, ret, "%s of GPU %d", tt.name, i)
					continue
				}
				require.Equal(t, nvml.SUCCESS, ret, "%s of GPU %d", tt.name, i)
				assert.Equal(t, tt.want[i], got, "%s of GPU %d", tt.name, i)
			}
		}
		pci, ret := gpu0.GetPciInfo()
		require.Equal(t, nvml.SUCCESS, ret)
		assert.Equal(t, uint32(0x1B), pci.Bus)
		assert.Equal(t, "00000000:1B:00.0", cString(pci.BusId[:]))

		memV2, ret := gpu0.GetMemoryInfo_v2()
		require.Equal(t, nvml.SUCCESS, ret)
		assert.Equal(t, nvml.Memory_v2{
			Version: memV2.Version, Total: 80 * gib, Reserved: gib / 2, Used: 40 * gib, Free: 80*gib - gib/2 - 40*gib,
		}, memV2)
		memV1, ret := gpu0.GetMemoryInfo()
		require.Equal(t, nvml.SUCCESS, ret)
		assert.Equal(t, nvml.Memory{Total: 80 * gib, Used: 40*gib + gib/2, Free: 80*gib - gib/2 - 40*gib}, memV1)

		util, ret := gpu0.GetUtilizationRates()
		require.Equal(t, nvml.SUCCESS, ret)
		assert.Equal(t, nvml.Utilization{Gpu: 87, Memory: 45}, util)

		temperature, ret := gpu0.GetTemperatureV().V1()
		require.Equal(t, nvml.SUCCESS, ret)
		assert.Equal(t, int32(64), temperature.Temperature)

		scalars := []struct {
			name string
			get  func(nvml.Device) (uint64, nvml.Return)
			want uint64
		}{
			{"encoder", func(d nvml.Device) (uint64, nvml.Return) { u, _, r := d.GetEncoderUtilization(); return uint64(u), r }, 12},
			{"decoder", func(d nvml.Device) (uint64, nvml.Return) { u, _, r := d.GetDecoderUtilization(); return uint64(u), r }, 7},
			{"temperature", func(d nvml.Device) (uint64, nvml.Return) {
				v, r := d.GetTemperature(nvml.TEMPERATURE_GPU)
				return uint64(v), r
			}, 64},
			{"power", func(d nvml.Device) (uint64, nvml.Return) { v, r := d.GetPowerUsage(); return uint64(v), r }, 123456},
			{"enforced limit", func(d nvml.Device) (uint64, nvml.Return) { v, r := d.GetEnforcedPowerLimit(); return uint64(v), r }, 700000},
			{"management limit", func(d nvml.Device) (uint64, nvml.Return) { v, r := d.GetPowerManagementLimit(); return uint64(v), r }, 650000},
			{"energy", nvml.Device.GetTotalEnergyConsumption, 987654321},
			{"graphics clock", func(d nvml.Device) (uint64, nvml.Return) {
				v, r := d.GetClockInfo(nvml.CLOCK_GRAPHICS)
				return uint64(v), r
			}, 1755},
			{"sm clock", func(d nvml.Device) (uint64, nvml.Return) { v, r := d.GetClockInfo(nvml.CLOCK_SM); return uint64(v), r }, 1980},
			{"memory clock", func(d nvml.Device) (uint64, nvml.Return) { v, r := d.GetClockInfo(nvml.CLOCK_MEM); return uint64(v), r }, 2619},
			{"video clock", func(d nvml.Device) (uint64, nvml.Return) {
				v, r := d.GetClockInfo(nvml.CLOCK_VIDEO)
				return uint64(v), r
			}, 1545},
			{"pcie tx", func(d nvml.Device) (uint64, nvml.Return) {
				v, r := d.GetPcieThroughput(nvml.PCIE_UTIL_TX_BYTES)
				return uint64(v), r
			}, 1024},
			{"pcie rx", func(d nvml.Device) (uint64, nvml.Return) {
				v, r := d.GetPcieThroughput(nvml.PCIE_UTIL_RX_BYTES)
				return uint64(v), r
			}, 2048},
			{"pcie replays", func(d nvml.Device) (uint64, nvml.Return) { v, r := d.GetPcieReplayCounter(); return uint64(v), r }, 3},
			{"ecc volatile corrected", func(d nvml.Device) (uint64, nvml.Return) {
				return d.GetTotalEccErrors(nvml.MEMORY_ERROR_TYPE_CORRECTED, nvml.VOLATILE_ECC)
			}, 5},
			{"ecc volatile uncorrected", func(d nvml.Device) (uint64, nvml.Return) {
				return d.GetTotalEccErrors(nvml.MEMORY_ERROR_TYPE_UNCORRECTED, nvml.VOLATILE_ECC)
			}, 1},
			{"ecc aggregate corrected", func(d nvml.Device) (uint64, nvml.Return) {
				return d.GetTotalEccErrors(nvml.MEMORY_ERROR_TYPE_CORRECTED, nvml.AGGREGATE_ECC)
			}, 50},
			{"ecc aggregate uncorrected", func(d nvml.Device) (uint64, nvml.Return) {
				return d.GetTotalEccErrors(nvml.MEMORY_ERROR_TYPE_UNCORRECTED, nvml.AGGREGATE_ECC)
			}, 2},
			{"clock event reasons", nvml.Device.GetCurrentClocksEventReasons, 68},
			{"supported clock event reasons", nvml.Device.GetSupportedClocksEventReasons, 0x7ff},
		}
		for _, tt := range scalars {
			got, ret := tt.get(gpu0)
			require.Equal(t, nvml.SUCCESS, ret, tt.name)
			assert.Equal(t, tt.want, got, tt.name)
		}
		power1, ret := gpu1.GetPowerUsage()
		require.Equal(t, nvml.SUCCESS, ret)
		assert.Equal(t, uint32(50000), power1)

		eccCurrent, eccPending, ret := gpu0.GetEccMode()
		require.Equal(t, nvml.SUCCESS, ret)
		assert.Equal(t, [2]nvml.EnableState{nvml.FEATURE_ENABLED, nvml.FEATURE_ENABLED},
			[2]nvml.EnableState{eccCurrent, eccPending})
		migCurrent, migPending, ret := gpu0.GetMigMode()
		require.Equal(t, nvml.SUCCESS, ret)
		assert.Equal(t, [2]int{0, 0}, [2]int{migCurrent, migPending})
		corr, unc, pending, failed, ret := gpu0.GetRemappedRows()
		require.Equal(t, nvml.SUCCESS, ret)
		assert.Equal(t, []any{2, 1, true, false}, []any{corr, unc, pending, failed})

		compute, ret := gpu0.GetComputeRunningProcesses()
		require.Equal(t, nvml.SUCCESS, ret)
		noInstance := uint32(0xFFFFFFFF)
		assert.Equal(t, []nvml.ProcessInfo{
			{Pid: 1234, UsedGpuMemory: 10 * gib, GpuInstanceId: noInstance, ComputeInstanceId: noInstance},
		}, compute)
		graphics, ret := gpu0.GetGraphicsRunningProcesses()
		require.Equal(t, nvml.SUCCESS, ret)
		assert.Equal(t, []nvml.ProcessInfo{
			{Pid: 5678, UsedGpuMemory: gib / 2, GpuInstanceId: noInstance, ComputeInstanceId: noInstance},
		}, graphics)
		mps, ret := gpu0.GetMPSComputeRunningProcesses()
		require.Equal(t, nvml.SUCCESS, ret)
		require.Len(t, mps, 1)
		assert.Equal(t, uint64(math.MaxUint64), mps[0].UsedGpuMemory)
		none, ret := gpu1.GetComputeRunningProcesses()
		require.Equal(t, nvml.SUCCESS, ret)
		assert.Empty(t, none)

		valueType, samples, ret := gpu0.GetSamples(nvml.GPU_UTILIZATION_SAMPLES, 0)
		require.Equal(t, nvml.SUCCESS, ret)
		assert.Equal(t, nvml.VALUE_TYPE_UNSIGNED_INT, valueType)
		require.Len(t, samples, 2)
		assert.Equal(t, []uint32{50, 70}, []uint32{sampleValue(samples[0]), sampleValue(samples[1])})
		assert.Equal(t, uint64(time.Second.Microseconds()), samples[1].TimeStamp-samples[0].TimeStamp)
		_, newer, ret := gpu0.GetSamples(nvml.GPU_UTILIZATION_SAMPLES, samples[0].TimeStamp)
		require.Equal(t, nvml.SUCCESS, ret)
		require.Len(t, newer, 1)
		assert.Equal(t, uint32(70), sampleValue(newer[0]))
		_, _, ret = gpu0.GetSamples(nvml.GPU_UTILIZATION_SAMPLES, samples[1].TimeStamp)
		assert.Equal(t, nvml.ERROR_NOT_FOUND, ret, "no samples newer than the last one")
		_, _, ret = gpu0.GetSamples(nvml.TOTAL_POWER_SAMPLES, 0)
		assert.Equal(t, nvml.ERROR_NOT_FOUND, ret, "power samples are not scripted")

		procUtil, ret := gpu0.GetProcessUtilization(0)
		require.Equal(t, nvml.SUCCESS, ret)
		require.Len(t, procUtil, 1)
		assert.Equal(t, [5]uint32{1234, 60, 30, 2, 1}, [5]uint32{
			procUtil[0].Pid, procUtil[0].SmUtil, procUtil[0].MemUtil, procUtil[0].EncUtil, procUtil[0].DecUtil,
		})
		_, ret = gpu0.GetProcessUtilization(procUtil[0].TimeStamp)
		assert.Equal(t, nvml.ERROR_NOT_FOUND, ret)

		fields := []nvml.FieldValue{{FieldId: nvml.FI_DEV_MEMORY_TEMP}, {FieldId: nvml.FI_DEV_PCIE_COUNT_TX_BYTES}}
		require.Equal(t, nvml.SUCCESS, gpu0.GetFieldValues(fields))
		assert.Equal(t, uint32(nvml.SUCCESS), fields[0].NvmlReturn)
		assert.Equal(t, uint64(71), binary.NativeEndian.Uint64(fields[0].Value[:]))
		assert.Equal(t, uint32(nvml.ERROR_NOT_SUPPORTED), fields[1].NvmlReturn)

		// The library calls the newest versioned symbols, as go-nvml picks them at load.
		for _, fn := range []string{
			"nvmlInit_v2", "nvmlDeviceGetCount_v2", "nvmlDeviceGetHandleByIndex_v2", "nvmlDeviceGetPciInfo_v3",
			"nvmlDeviceGetComputeRunningProcesses_v3", "nvmlDeviceGetGraphicsRunningProcesses_v3",
		} {
			assert.Positive(t, lib.CallCount(t, fn), "%s was not called", fn)
		}
	})
}

func TestEvents(t *testing.T) {
	fakenvml.Run(t, fakenvml.Setup{Script: twoGPUs()}, func(t *testing.T, lib *fakenvml.Lib) {
		n := open(t, lib)
		set, ret := n.EventSetCreate()
		require.Equal(t, nvml.SUCCESS, ret)
		for i := range 2 {
			require.Equal(t, nvml.SUCCESS, device(t, n, i).RegisterEvents(nvml.EventTypeXidCriticalError, set))
		}
		for _, want := range []uint64{79, 48} {
			data, ret := set.Wait(0)
			require.Equal(t, nvml.SUCCESS, ret)
			assert.Equal(t, uint64(nvml.EventTypeXidCriticalError), data.EventType)
			assert.Equal(t, want, data.EventData)
			uuid, ret := data.Device.GetUUID()
			require.Equal(t, nvml.SUCCESS, ret)
			assert.Equal(t, uuid0, uuid)
		}
		_, ret = set.Wait(20)
		assert.Equal(t, nvml.ERROR_TIMEOUT, ret, "each XID is delivered once")
		require.Equal(t, nvml.SUCCESS, set.Free())
		_, ret = set.Wait(0)
		assert.Equal(t, nvml.ERROR_INVALID_ARGUMENT, ret, "a freed set")
		assert.Equal(t, 1, lib.CallCount(t, "nvmlEventSetFree"))
		assert.Positive(t, lib.CallCount(t, "nvmlEventSetWait_v2"))
	})
}

func TestOmittedSymbol(t *testing.T) {
	setup := fakenvml.Setup{Omit: []string{"nvmlDeviceGetMemoryInfo_v2"}, Script: twoGPUs()}
	fakenvml.Run(t, setup, func(t *testing.T, lib *fakenvml.Lib) {
		n := open(t, lib)
		err := n.Extensions().LookupSymbol("nvmlDeviceGetMemoryInfo_v2")
		require.Error(t, err)
		assert.Contains(t, err.Error(), "nvmlDeviceGetMemoryInfo_v2")
		for _, symbol := range fakenvml.Symbols() {
			if symbol != "nvmlDeviceGetMemoryInfo_v2" {
				assert.NoError(t, n.Extensions().LookupSymbol(symbol))
			}
		}
		mem, ret := device(t, n, 0).GetMemoryInfo()
		require.Equal(t, nvml.SUCCESS, ret)
		assert.Equal(t, 80*gib, mem.Total)
	})
}

func TestScriptedFailures(t *testing.T) {
	notSupported := h100()
	notSupported.Errors = map[string]nvml.Return{"nvmlDeviceGetPowerUsage": nvml.ERROR_NOT_SUPPORTED}
	lost := twoGPUs()
	lost.GPUs[1].Lost = true

	tests := []struct {
		name   string
		script fakenvml.Script
		check  func(t *testing.T, lib *fakenvml.Lib)
	}{
		{
			name:   "driver not loaded",
			script: fakenvml.Script{Errors: map[string]nvml.Return{"nvmlInit_v2": nvml.ERROR_DRIVER_NOT_LOADED}},
			check: func(t *testing.T, lib *fakenvml.Lib) {
				n := nvml.New(nvml.WithLibraryPath(lib.Path))
				ret := n.Init()
				require.Equal(t, nvml.ERROR_DRIVER_NOT_LOADED, ret)
				assert.Equal(t, "NVML_ERROR_DRIVER_NOT_LOADED", ret.Error())
				_, ret = n.DeviceGetCount()
				assert.Equal(t, nvml.ERROR_UNINITIALIZED, ret)
				assert.Equal(t, []fakenvml.Call{
					{Function: "nvmlInit_v2", GPU: -1}, {Function: "nvmlDeviceGetCount_v2", GPU: -1},
				}, lib.Calls(t))
			},
		},
		{
			name:   "lost GPU",
			script: lost,
			check: func(t *testing.T, lib *fakenvml.Lib) {
				n := open(t, lib)
				count, ret := n.DeviceGetCount()
				require.Equal(t, nvml.SUCCESS, ret)
				require.Equal(t, 2, count)
				_, ret = device(t, n, 1).GetUUID()
				assert.Equal(t, nvml.ERROR_GPU_IS_LOST, ret)
				_, ret = device(t, n, 1).GetPowerUsage()
				assert.Equal(t, nvml.ERROR_GPU_IS_LOST, ret)
				power, ret := device(t, n, 0).GetPowerUsage()
				require.Equal(t, nvml.SUCCESS, ret)
				assert.Equal(t, uint32(123456), power)
			},
		},
		{
			name:   "unsupported getter on one GPU",
			script: fakenvml.Script{GPUs: []fakenvml.GPU{notSupported, h100()}},
			check: func(t *testing.T, lib *fakenvml.Lib) {
				n := open(t, lib)
				_, ret := device(t, n, 0).GetPowerUsage()
				assert.Equal(t, nvml.ERROR_NOT_SUPPORTED, ret)
				power, ret := device(t, n, 1).GetPowerUsage()
				require.Equal(t, nvml.SUCCESS, ret)
				assert.Equal(t, uint32(123456), power)
				energy, ret := device(t, n, 0).GetTotalEnergyConsumption()
				require.Equal(t, nvml.SUCCESS, ret)
				assert.Equal(t, uint64(987654321), energy)
			},
		},
		{
			name:   "malformed script fails init",
			script: fakenvml.Script{GPUs: []fakenvml.GPU{{Extra: map[string]string{"no_such_key": "1"}}}},
			check: func(t *testing.T, lib *fakenvml.Lib) {
				assert.Equal(t, nvml.ERROR_UNKNOWN, nvml.New(nvml.WithLibraryPath(lib.Path)).Init())
			},
		},
		{
			name:   "init is reference counted",
			script: twoGPUs(),
			check: func(t *testing.T, lib *fakenvml.Lib) {
				first, second := nvml.New(nvml.WithLibraryPath(lib.Path)), nvml.New(nvml.WithLibraryPath(lib.Path))
				require.Equal(t, nvml.SUCCESS, first.Init())
				require.Equal(t, nvml.SUCCESS, second.Init())
				require.Equal(t, nvml.SUCCESS, first.Shutdown())
				count, ret := second.DeviceGetCount()
				require.Equal(t, nvml.SUCCESS, ret, "still initialised through the second instance")
				assert.Equal(t, 2, count)
				require.Equal(t, nvml.SUCCESS, second.Shutdown())
				assert.Equal(t, 2, lib.CallCount(t, "nvmlShutdown"))
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fakenvml.Run(t, fakenvml.Setup{Script: tt.script}, tt.check)
		})
	}
}

func sampleValue(s nvml.Sample) uint32 {
	return binary.NativeEndian.Uint32(s.SampleValue[:4])
}

func cString(b []int8) string {
	var s strings.Builder
	for _, c := range b {
		if c == 0 {
			break
		}
		s.WriteByte(byte(c))
	}
	return s.String()
}

// h200GPM is what GPM reports on a busy H200 serving an LLM (percentages, MiB/s).
var h200GPM = map[nvml.GpmMetricId]float64{
	nvml.GPM_METRIC_GRAPHICS_UTIL: 97.5, nvml.GPM_METRIC_SM_UTIL: 82.25, nvml.GPM_METRIC_SM_OCCUPANCY: 41,
	nvml.GPM_METRIC_ANY_TENSOR_UTIL: 55.5, nvml.GPM_METRIC_DRAM_BW_UTIL: 63, nvml.GPM_METRIC_NVLINK_TOTAL_TX_PER_SEC: 110000,
}

func TestGPMThroughGoNVML(t *testing.T) {
	h200 := fakenvml.GPU{UUID: uuid0, Name: "NVIDIA H200", MemoryTotal: 141 * gib, GPMSupported: true, GPM: h200GPM}
	a100 := fakenvml.GPU{UUID: uuid1, Name: "NVIDIA A100-SXM4-80GB", MemoryTotal: 80 * gib} // no GPM before Hopper
	script := fakenvml.Script{GPUs: []fakenvml.GPU{h200, a100}}
	fakenvml.Run(t, fakenvml.Setup{Script: script}, func(t *testing.T, lib *fakenvml.Lib) {
		n := open(t, lib)
		hopper, ampere := device(t, n, 0), device(t, n, 1)

		support, ret := n.GpmQueryDeviceSupport(hopper)
		require.Equal(t, nvml.SUCCESS, ret)
		assert.Equal(t, uint32(1), support.IsSupportedDevice)
		support, ret = n.GpmQueryDeviceSupport(ampere)
		require.Equal(t, nvml.SUCCESS, ret)
		assert.Equal(t, uint32(0), support.IsSupportedDevice)

		var samples [2]nvml.GpmSample
		for i := range samples {
			samples[i], ret = n.GpmSampleAlloc()
			require.Equal(t, nvml.SUCCESS, ret)
		}
		assert.Equal(t, nvml.ERROR_NOT_SUPPORTED, ampere.GpmSampleGet(samples[0]))
		require.Equal(t, nvml.SUCCESS, hopper.GpmSampleGet(samples[0]))

		req := &nvml.GpmMetricsGetType{NumMetrics: 3, Sample1: samples[0], Sample2: samples[1]}
		req.Metrics[0].MetricId = uint32(nvml.GPM_METRIC_SM_UTIL)
		req.Metrics[1].MetricId = uint32(nvml.GPM_METRIC_ANY_TENSOR_UTIL)
		req.Metrics[2].MetricId = uint32(nvml.GPM_METRIC_FP64_UTIL)
		assert.Equal(t, nvml.ERROR_INVALID_ARGUMENT, n.GpmMetricsGet(req), "the second sample was never taken")

		require.Equal(t, nvml.SUCCESS, hopper.GpmSampleGet(samples[1]))
		require.Equal(t, nvml.SUCCESS, n.GpmMetricsGet(req))
		assert.Equal(t, nvml.SUCCESS, nvml.Return(req.Metrics[0].NvmlReturn))
		assert.InDelta(t, 82.25, req.Metrics[0].Value, 0)
		assert.InDelta(t, 55.5, req.Metrics[1].Value, 0)
		assert.Equal(t, nvml.ERROR_NOT_SUPPORTED, nvml.Return(req.Metrics[2].NvmlReturn), "FP64 is not scripted")

		assert.Equal(t, nvml.ERROR_NOT_SUPPORTED, hopper.GpmMigSampleGet(1, samples[0]), "MIG is off")
		for _, smp := range samples {
			require.Equal(t, nvml.SUCCESS, n.GpmSampleFree(smp))
		}
		assert.Equal(t, nvml.ERROR_INVALID_ARGUMENT, n.GpmSampleFree(samples[0]), "a freed sample")
		assert.Equal(t, 2, lib.CallCount(t, "nvmlGpmSampleAlloc"))
	})
}

func TestEnergyGrowth(t *testing.T) {
	script := fakenvml.Script{GPUs: []fakenvml.GPU{{UUID: uuid0, TotalEnergyConsumption: 1_000_000, EnergyGrowth: 700_000}}}
	fakenvml.Run(t, fakenvml.Setup{Script: script}, func(t *testing.T, lib *fakenvml.Lib) {
		dev := device(t, open(t, lib), 0)
		first, ret := dev.GetTotalEnergyConsumption()
		require.Equal(t, nvml.SUCCESS, ret)
		time.Sleep(200 * time.Millisecond)
		second, ret := dev.GetTotalEnergyConsumption()
		require.Equal(t, nvml.SUCCESS, ret)
		assert.GreaterOrEqual(t, first, uint64(1_000_000))
		// 700 W for at least 200 ms is at least 140 J (140,000 mJ)
		assert.GreaterOrEqual(t, second-first, uint64(140_000))
	})
}
