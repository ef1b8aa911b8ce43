//go:build cgo

package nvmlreceiver

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxh100"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/gpus"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/server"
	"github.com/stretchr/testify/require"
)

// Deterministic telemetry for go-nvml's mocked DGX H100: every function the receiver calls is filled in, so a
// call the receiver should not make (say, on a MIG handle, or for a symbol the library lacks) panics.

const (
	mib = uint64(1) << 20
	gib = uint64(1) << 30

	sampleBaseUS   = uint64(1_700_000_000_000_000) // NVML sample timestamps are CPU time in µs
	sampleStepUS   = uint64(100_000)
	samplesPerCall = 3
	testDriver     = "550.54.15"
)

func testUUID(i int) string { return fmt.Sprintf("GPU-%08d-0000-4000-8000-%012d", i, i) }

func testMIGUUID(gpu, mig int) string {
	return fmt.Sprintf("MIG-%08d-%04d-4000-8000-%012d", gpu, mig, gpu)
}

// fakeGPU is what one mocked GPU reports. Tests change the fields between scrapes.
type fakeGPU struct {
	dev *server.Device

	memTotal, memReserved, memUsed uint64
	sampleBase                     [numUtilKinds]uint32 // GetSamples returns base, base+10, base+20
	gpuUtil, memUtil               uint32
	encUtil, decUtil               uint32
	powerMW, powerLimitMW          uint32
	energyMJ                       uint64
	tempC, memTempC                uint32
	clockMHz                       map[nvml.ClockType]uint32
	clockEvents, supportedEvents   uint64
	pcieTXBytes, pcieRXBytes       uint64
	pcieTXKiBps, pcieRXKiBps       uint32
	eccCorrected, eccUncorrected   uint64
	remapCorrectable, remapUncorr  int
	remapPending, remapFailure     bool
	processes                      []nvml.ProcessInfo
	processUtil                    []nvml.ProcessUtilizationSample
	pcieReplays                    int
	// counterFields answers GetFieldValues for NVLink counters and clock-event durations (field id -> value).
	counterFields map[uint32]uint64
	// gpmSupported and gpm answer GPM: metric id -> value (percent or MiB/s) reported between two samples;
	// migGPM does the same per GPU instance id.
	gpmSupported bool
	gpm          map[nvml.GpmMetricId]float64
	migGPM       map[int]map[nvml.GpmMetricId]float64

	// fail makes a method return an error, keyed by method name ("GetPowerUsage") or, for GetSamples and
	// GetClockInfo, by name and argument ("GetSamples:1").
	fail map[string]nvml.Return
	// fieldFail sets the per-field return of GetFieldValues.
	fieldFail map[uint32]nvml.Return
}

func (g *fakeGPU) ret(keys ...string) nvml.Return {
	for _, k := range keys {
		if r, ok := g.fail[k]; ok {
			return r
		}
	}
	return nvml.SUCCESS
}

func (g *fakeGPU) pid(n int) uint32 { return uint32(1000 + 10*g.dev.Index + n) }

// fakeMIG is a MIG instance handle; only what NVML supports on MIG handles is filled in.
type fakeMIG struct {
	*mock.Device
	uuid                 string
	memTotal, memUsed    uint64
	processes            []nvml.ProcessInfo
	gpuInstance, compute int
}

// fakeNVML is the mocked library: a dgxh100-style server plus symbols, events and MIG.
type fakeNVML struct {
	*server.Server
	gpus    []*fakeGPU
	missing map[string]bool // symbols LookupSymbol reports absent
	// gpmSamples records which GPU (and GPU instance, -1 for the whole GPU) filled each GPM sample.
	gpmSamples   map[nvml.GpmSample]gpmSource
	gpmAllocated int // samples allocated and not freed
	events       chan nvml.EventData
	procRoot     string
}

// newFakeNVML mocks n H100 GPUs (n=8 is dgxh100.New()) with every telemetry function filled in.
func newFakeNVML(tb testing.TB, n int) *fakeNVML {
	tb.Helper()
	var srv *server.Server
	if n == 8 {
		srv = dgxh100.New()
	} else {
		srv = dgxh100.NewWithGPUs(gpus.Multiple(n, gpus.H100_SXM5_80GB)...)
	}
	f := &fakeNVML{
		Server:   srv,
		missing:  map[string]bool{},
		events:   make(chan nvml.EventData, 16),
		procRoot: tb.TempDir(),
	}
	srv.LookupSymbolFunc = func(name string) error {
		if f.missing[name] {
			return errors.New("undefined symbol: " + name)
		}
		return nil
	}
	srv.EventSetCreateFunc = func() (nvml.EventSet, nvml.Return) {
		return &mock.EventSet{
			WaitFunc: func(ms uint32) (nvml.EventData, nvml.Return) {
				select {
				case e := <-f.events:
					return e, nvml.SUCCESS
				case <-time.After(time.Duration(ms) * time.Millisecond):
					return nvml.EventData{}, nvml.ERROR_TIMEOUT
				}
			},
			FreeFunc: func() nvml.Return { return nvml.SUCCESS },
		}, nvml.SUCCESS
	}
	f.gpmSamples = map[nvml.GpmSample]gpmSource{}
	srv.GpmSampleAllocFunc = func() (nvml.GpmSample, nvml.Return) {
		f.gpmAllocated++
		return &mock.GpmSample{}, nvml.SUCCESS
	}
	srv.GpmSampleFreeFunc = func(smp nvml.GpmSample) nvml.Return {
		f.gpmAllocated--
		delete(f.gpmSamples, smp)
		return nvml.SUCCESS
	}
	srv.GpmQueryDeviceSupportFunc = func(d nvml.Device) (nvml.GpmSupport, nvml.Return) {
		for _, g := range f.gpus {
			if g.dev == d {
				if r := g.ret("GpmQueryDeviceSupport"); r != nvml.SUCCESS {
					return nvml.GpmSupport{}, r
				}
				return nvml.GpmSupport{IsSupportedDevice: boolU32(g.gpmSupported)}, nvml.SUCCESS
			}
		}
		return nvml.GpmSupport{}, nvml.ERROR_INVALID_ARGUMENT
	}
	srv.GpmMetricsGetFunc = func(req *nvml.GpmMetricsGetType) nvml.Return {
		src1, ok1 := f.gpmSamples[req.Sample1]
		src2, ok2 := f.gpmSamples[req.Sample2]
		if !ok1 || !ok2 || src1 != src2 || req.Sample1 == req.Sample2 {
			return nvml.ERROR_INVALID_ARGUMENT
		}
		if r := src2.gpu.ret("GpmMetricsGet"); r != nvml.SUCCESS {
			return r
		}
		values := src2.gpu.gpm
		if src2.gpuInstance >= 0 {
			values = src2.gpu.migGPM[src2.gpuInstance]
		}
		for i := range req.NumMetrics {
			m := &req.Metrics[i]
			v, ok := values[nvml.GpmMetricId(m.MetricId)]
			m.NvmlReturn, m.Value = uint32(nvml.ERROR_NOT_SUPPORTED), 0
			if ok {
				m.NvmlReturn, m.Value = uint32(nvml.SUCCESS), v
			}
		}
		return nvml.SUCCESS
	}
	for i, d := range srv.Devices {
		g := newFakeGPU(d.(*server.Device), i)
		g.dev.GpmSampleGetFunc = func(smp nvml.GpmSample) nvml.Return {
			if r := g.ret("GpmSampleGet"); r != nvml.SUCCESS {
				return r
			}
			f.gpmSamples[smp] = gpmSource{gpu: g, gpuInstance: -1}
			return nvml.SUCCESS
		}
		g.dev.GpmMigSampleGetFunc = func(gi int, smp nvml.GpmSample) nvml.Return {
			if _, ok := g.migGPM[gi]; !ok {
				return nvml.ERROR_NOT_SUPPORTED
			}
			f.gpmSamples[smp] = gpmSource{gpu: g, gpuInstance: gi}
			return nvml.SUCCESS
		}
		f.gpus = append(f.gpus, g)
		for n := range 2 {
			writeComm(tb, f.procRoot, g.pid(n), []string{"VLLM::EngineCor", "python3"}[n])
		}
	}
	return f
}

func writeComm(tb testing.TB, root string, pid uint32, name string) {
	dir := filepath.Join(root, strconv.FormatUint(uint64(pid), 10))
	require.NoError(tb, os.MkdirAll(dir, 0o755))
	require.NoError(tb, os.WriteFile(filepath.Join(dir, "comm"), []byte(name+"\n"), 0o600))
}

type gpmSource struct {
	gpu         *fakeGPU
	gpuInstance int
}

func boolU32(b bool) uint32 {
	if b {
		return 1
	}
	return 0
}

// h100GPM is what GPM reports for GPU i of a busy H100 (percentages, MiB/s).
func h100GPM(i int) map[nvml.GpmMetricId]float64 {
	f := float64(i)
	return map[nvml.GpmMetricId]float64{
		nvml.GPM_METRIC_GRAPHICS_UTIL: 95 + f/2, nvml.GPM_METRIC_SM_UTIL: 80 + f, nvml.GPM_METRIC_SM_OCCUPANCY: 40 + f,
		nvml.GPM_METRIC_ANY_TENSOR_UTIL: 50 + f, nvml.GPM_METRIC_FP64_UTIL: 0, nvml.GPM_METRIC_FP32_UTIL: 5 + f,
		nvml.GPM_METRIC_FP16_UTIL: 2 + f, nvml.GPM_METRIC_DRAM_BW_UTIL: 60 + f,
		nvml.GPM_METRIC_PCIE_TX_PER_SEC: 1000 + f, nvml.GPM_METRIC_PCIE_RX_PER_SEC: 2000 + f,
		nvml.GPM_METRIC_NVLINK_TOTAL_TX_PER_SEC: 100_000 + f, nvml.GPM_METRIC_NVLINK_TOTAL_RX_PER_SEC: 120_000 + f,
	}
}

func newFakeGPU(d *server.Device, i int) *fakeGPU {
	d.UUID = testUUID(i)
	u := uint32(i)
	g := &fakeGPU{
		dev:          d,
		memTotal:     d.MemoryInfo.Total,
		memReserved:  512 * mib,
		memUsed:      uint64(i+1) * gib,
		sampleBase:   [numUtilKinds]uint32{utilGeneral: 40 + u, utilEncoder: 2 + u, utilDecoder: 3 + u, utilMemoryBandwidth: 20 + u},
		gpuUtil:      70 + u,
		memUtil:      30 + u,
		encUtil:      5 + u,
		decUtil:      7 + u,
		powerMW:      300_000 + 1000*u,
		powerLimitMW: 700_000,
		energyMJ:     1_000_000 * uint64(i+1),
		tempC:        40 + u,
		memTempC:     50 + u,
		clockMHz:     map[nvml.ClockType]uint32{nvml.CLOCK_GRAPHICS: 1980, nvml.CLOCK_SM: 1980, nvml.CLOCK_MEM: 2619},
		clockEvents:  nvml.ClocksEventReasonSwPowerCap,
		supportedEvents: nvml.ClocksEventReasonGpuIdle | nvml.ClocksEventReasonSwPowerCap |
			nvml.ClocksThrottleReasonHwSlowdown | nvml.ClocksThrottleReasonHwThermalSlowdown,
		pcieTXBytes:      1_000_000_000 * uint64(i+1),
		pcieRXBytes:      2_000_000_000 * uint64(i+1),
		pcieTXKiBps:      1000 + u,
		pcieRXKiBps:      2000 + u,
		eccCorrected:     10 * uint64(i),
		eccUncorrected:   uint64(i),
		remapCorrectable: i,
		fail:             map[string]nvml.Return{},
		fieldFail:        map[uint32]nvml.Return{},
		pcieReplays:      3 * i,
		counterFields: map[uint32]uint64{
			nvml.FI_DEV_NVLINK_THROUGHPUT_DATA_TX: 1_000_000 * uint64(i+1), nvml.FI_DEV_NVLINK_THROUGHPUT_DATA_RX: 2_000_000 * uint64(i+1),
			nvml.FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL: uint64(i), nvml.FI_DEV_NVLINK_CRC_DATA_ERROR_COUNT_TOTAL: 0,
			nvml.FI_DEV_NVLINK_REPLAY_ERROR_COUNT_TOTAL: 2 * uint64(i), nvml.FI_DEV_NVLINK_RECOVERY_ERROR_COUNT_TOTAL: 0,
			nvml.FI_DEV_PERF_POLICY_POWER: 5_000_000_000 * uint64(i+1), nvml.FI_DEV_PERF_POLICY_SYNC_BOOST: 0,
			nvml.FI_DEV_CLOCKS_EVENT_REASON_HW_THERM_SLOWDOWN: 250_000_000,
		},
		gpmSupported: true,
		gpm:          h100GPM(i),
		migGPM:       map[int]map[nvml.GpmMetricId]float64{},
	}
	g.processes = []nvml.ProcessInfo{
		{Pid: g.pid(0), UsedGpuMemory: 60 * gib},
		{Pid: g.pid(1), UsedGpuMemory: 512 * mib},
	}
	g.processUtil = []nvml.ProcessUtilizationSample{
		{Pid: g.pid(0), TimeStamp: sampleBaseUS + 1, SmUtil: 80},
		{Pid: g.pid(0), TimeStamp: sampleBaseUS + 2, SmUtil: 90},
		{Pid: g.pid(1), TimeStamp: sampleBaseUS + 3, SmUtil: 4},
	}

	d.GetMemoryInfo_v2Func = func() (nvml.Memory_v2, nvml.Return) {
		return nvml.Memory_v2{Total: g.memTotal, Reserved: g.memReserved, Used: g.memUsed,
			Free: g.memTotal - g.memReserved - g.memUsed}, g.ret("GetMemoryInfo_v2")
	}
	d.GetMemoryInfoFunc = func() (nvml.Memory, nvml.Return) {
		return nvml.Memory{Total: g.memTotal, Used: g.memReserved + g.memUsed,
			Free: g.memTotal - g.memReserved - g.memUsed}, g.ret("GetMemoryInfo")
	}
	d.GetSamplesFunc = func(st nvml.SamplingType, last uint64) (nvml.ValueType, []nvml.Sample, nvml.Return) {
		if r := g.ret(fmt.Sprintf("GetSamples:%d", st), "GetSamples"); r != nvml.SUCCESS {
			return 0, nil, r
		}
		base := g.sampleBase[kindOfSamplingType(st)]
		from := last
		if from == 0 {
			from = sampleBaseUS
		}
		out := make([]nvml.Sample, samplesPerCall)
		for k := range out {
			out[k].TimeStamp = from + uint64(k+1)*sampleStepUS
			binary.NativeEndian.PutUint32(out[k].SampleValue[:4], base+uint32(10*k))
		}
		return nvml.VALUE_TYPE_UNSIGNED_INT, out, nvml.SUCCESS
	}
	d.GetUtilizationRatesFunc = func() (nvml.Utilization, nvml.Return) {
		return nvml.Utilization{Gpu: g.gpuUtil, Memory: g.memUtil}, g.ret("GetUtilizationRates")
	}
	d.GetEncoderUtilizationFunc = func() (uint32, uint32, nvml.Return) {
		return g.encUtil, 167_000, g.ret("GetEncoderUtilization")
	}
	d.GetDecoderUtilizationFunc = func() (uint32, uint32, nvml.Return) {
		return g.decUtil, 167_000, g.ret("GetDecoderUtilization")
	}
	d.GetPowerUsageFunc = func() (uint32, nvml.Return) { return g.powerMW, g.ret("GetPowerUsage") }
	d.GetEnforcedPowerLimitFunc = func() (uint32, nvml.Return) { return g.powerLimitMW, g.ret("GetEnforcedPowerLimit") }
	d.GetTotalEnergyConsumptionFunc = func() (uint64, nvml.Return) { return g.energyMJ, g.ret("GetTotalEnergyConsumption") }
	d.GetTemperatureFunc = func(nvml.TemperatureSensors) (uint32, nvml.Return) { return g.tempC, g.ret("GetTemperature") }
	d.GetFieldValuesFunc = func(values []nvml.FieldValue) nvml.Return {
		if r := g.ret("GetFieldValues"); r != nvml.SUCCESS {
			return r
		}
		for i := range values {
			v := &values[i]
			var raw uint64
			switch v.FieldId {
			case nvml.FI_DEV_MEMORY_TEMP:
				raw = uint64(g.memTempC)
			case nvml.FI_DEV_PCIE_COUNT_TX_BYTES:
				raw = g.pcieTXBytes
			case nvml.FI_DEV_PCIE_COUNT_RX_BYTES:
				raw = g.pcieRXBytes
			default:
				c, ok := g.counterFields[v.FieldId]
				if !ok {
					v.NvmlReturn = uint32(nvml.ERROR_NOT_SUPPORTED)
					continue
				}
				raw = c
			}
			v.NvmlReturn = uint32(nvml.SUCCESS)
			if r, ok := g.fieldFail[v.FieldId]; ok {
				v.NvmlReturn = uint32(r)
			}
			v.ValueType = uint32(nvml.VALUE_TYPE_UNSIGNED_LONG_LONG)
			binary.NativeEndian.PutUint64(v.Value[:], raw)
		}
		return nvml.SUCCESS
	}
	d.GetClockInfoFunc = func(c nvml.ClockType) (uint32, nvml.Return) {
		return g.clockMHz[c], g.ret(fmt.Sprintf("GetClockInfo:%d", c), "GetClockInfo")
	}
	d.GetCurrentClocksEventReasonsFunc = func() (uint64, nvml.Return) {
		return g.clockEvents, g.ret("GetCurrentClocksEventReasons")
	}
	d.GetCurrentClocksThrottleReasonsFunc = func() (uint64, nvml.Return) {
		return g.clockEvents, g.ret("GetCurrentClocksThrottleReasons")
	}
	d.GetSupportedClocksEventReasonsFunc = func() (uint64, nvml.Return) {
		return g.supportedEvents, g.ret("GetSupportedClocksEventReasons")
	}
	d.GetSupportedClocksThrottleReasonsFunc = func() (uint64, nvml.Return) {
		return g.supportedEvents, g.ret("GetSupportedClocksThrottleReasons")
	}
	d.GetPcieThroughputFunc = func(c nvml.PcieUtilCounter) (uint32, nvml.Return) {
		if c == nvml.PCIE_UTIL_TX_BYTES {
			return g.pcieTXKiBps, g.ret("GetPcieThroughput")
		}
		return g.pcieRXKiBps, g.ret("GetPcieThroughput")
	}
	d.GetTotalEccErrorsFunc = func(t nvml.MemoryErrorType, _ nvml.EccCounterType) (uint64, nvml.Return) {
		if t == nvml.MEMORY_ERROR_TYPE_CORRECTED {
			return g.eccCorrected, g.ret("GetTotalEccErrors")
		}
		return g.eccUncorrected, g.ret("GetTotalEccErrors")
	}
	d.GetRemappedRowsFunc = func() (int, int, bool, bool, nvml.Return) {
		return g.remapCorrectable, g.remapUncorr, g.remapPending, g.remapFailure, g.ret("GetRemappedRows")
	}
	d.GetComputeRunningProcessesFunc = func() ([]nvml.ProcessInfo, nvml.Return) {
		return append([]nvml.ProcessInfo(nil), g.processes...), g.ret("GetComputeRunningProcesses")
	}
	d.GetProcessUtilizationFunc = func(last uint64) ([]nvml.ProcessUtilizationSample, nvml.Return) {
		if r := g.ret("GetProcessUtilization"); r != nvml.SUCCESS {
			return nil, r
		}
		var out []nvml.ProcessUtilizationSample
		for _, s := range g.processUtil {
			if s.TimeStamp > last {
				out = append(out, s)
			}
		}
		if len(out) == 0 {
			return nil, nvml.ERROR_NOT_FOUND
		}
		return out, nvml.SUCCESS
	}
	d.GetMaxMigDeviceCountFunc = func() (int, nvml.Return) { return 0, g.ret("GetMaxMigDeviceCount") }
	d.GetPcieReplayCounterFunc = func() (int, nvml.Return) { return g.pcieReplays, g.ret("GetPcieReplayCounter") }
	d.GetSupportedEventTypesFunc = func() (uint64, nvml.Return) {
		return nvml.EventTypeXidCriticalError | nvml.EventTypeSingleBitEccError | nvml.EventTypeDoubleBitEccError,
			g.ret("GetSupportedEventTypes")
	}
	d.RegisterEventsFunc = func(uint64, nvml.EventSet) nvml.Return { return g.ret("RegisterEvents") }
	return g
}

func kindOfSamplingType(st nvml.SamplingType) utilKind {
	for k, t := range utilSamplingType {
		if t == st {
			return utilKind(k)
		}
	}
	panic(fmt.Sprintf("unexpected sampling type %d", st))
}

// enableMIG turns MIG mode on for a GPU and exposes the given instances at MIG indexes 0, 1, …
func (f *fakeNVML) enableMIG(gpu int, migs ...*fakeMIG) {
	g := f.gpus[gpu]
	g.dev.SetMigMode(nvml.DEVICE_MIG_ENABLE)
	f.setMIGs(gpu, migs...)
}

func (f *fakeNVML) setMIGs(gpu int, migs ...*fakeMIG) {
	g := f.gpus[gpu]
	g.dev.GetMaxMigDeviceCountFunc = func() (int, nvml.Return) { return 7, nvml.SUCCESS }
	g.dev.GetMigDeviceHandleByIndexFunc = func(i int) (nvml.Device, nvml.Return) {
		if i < len(migs) {
			return migs[i], nvml.SUCCESS
		}
		return nil, nvml.ERROR_NOT_FOUND
	}
}

func newFakeMIG(gpu, index int, memTotal, memUsed uint64, processes ...nvml.ProcessInfo) *fakeMIG {
	m := &fakeMIG{
		Device:      &mock.Device{},
		uuid:        testMIGUUID(gpu, index),
		memTotal:    memTotal,
		memUsed:     memUsed,
		processes:   processes,
		gpuInstance: index + 1,
	}
	m.GetUUIDFunc = func() (string, nvml.Return) { return m.uuid, nvml.SUCCESS }
	m.GetNameFunc = func() (string, nvml.Return) { return "NVIDIA H100 80GB HBM3 MIG 1g.10gb", nvml.SUCCESS }
	m.GetGpuInstanceIdFunc = func() (int, nvml.Return) { return m.gpuInstance, nvml.SUCCESS }
	m.GetComputeInstanceIdFunc = func() (int, nvml.Return) { return m.compute, nvml.SUCCESS }
	m.GetMemoryInfo_v2Func = func() (nvml.Memory_v2, nvml.Return) {
		return nvml.Memory_v2{Total: m.memTotal, Used: m.memUsed, Free: m.memTotal - m.memUsed}, nvml.SUCCESS
	}
	m.GetComputeRunningProcessesFunc = func() ([]nvml.ProcessInfo, nvml.Return) {
		return append([]nvml.ProcessInfo(nil), m.processes...), nvml.SUCCESS
	}
	return m
}
