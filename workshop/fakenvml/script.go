//go:build cgo

package fakenvml // import "github.com/otelcol-vllm/otelcol-vllm/workshop/fakenvml"

import (
	"cmp"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

// Environment variables the fake library reads; see the comment at the top of fakenvml.c.
const (
	ScriptEnv  = "FAKE_NVML_SCRIPT"
	CallLogEnv = "FAKE_NVML_CALL_LOG"
)

// Script is what the fake library reports. Every value of a GPU is reported as supported; make a getter fail
// (NOT_SUPPORTED, GPU_IS_LOST, ...) with GPU.Errors.
type Script struct {
	DriverVersion     string // "" keeps the library's default
	NVMLVersion       string // "" keeps the library's default
	CUDADriverVersion int    // 0: nvmlSystemGetCudaDriverVersion returns NOT_SUPPORTED
	// Errors makes a library function return the code on every call, e.g.
	// {"nvmlInit_v2": nvml.ERROR_DRIVER_NOT_LOADED}.
	Errors map[string]nvml.Return
	GPUs   []GPU
}

// GPU is one scripted device. Units are NVML's: bytes, percent, mW, mJ, MHz, KB/s, degrees C.
type GPU struct {
	UUID, Name, Serial, VBIOSVersion, PCIBusID string // "" keeps the library's default (serial, vbios: unsupported)
	// Lost makes every call on the device return ERROR_GPU_IS_LOST; its handle is still handed out.
	Lost bool
	// Errors makes a device function return the code for this GPU, e.g. {"nvmlDeviceGetPowerUsage":
	// nvml.ERROR_NOT_SUPPORTED}; nvmlDeviceGetHandleByIndex(_v2) entries apply to this GPU's index.
	Errors map[string]nvml.Return

	MemoryTotal, MemoryReserved, MemoryUsed uint64 // MemoryUsed is allocated memory (the v2 meaning)
	UtilizationGPU, UtilizationMemory       uint32
	EncoderUtilization, DecoderUtilization  uint32
	TemperatureGPU                          uint32
	PowerUsage, EnforcedPowerLimit          uint32 // mW
	PowerManagementLimit                    uint32 // mW
	TotalEnergyConsumption                  uint64 // mJ
	// EnergyGrowth makes the energy counter grow by this power (mW) from nvmlInit on, for rates.
	EnergyGrowth                        uint32
	ClockGraphics, ClockSM, ClockMemory uint32 // MHz
	ClockVideo                          uint32 // MHz
	PCIeTxKBps, PCIeRxKBps, PCIeReplays uint32
	ECCEnabled                          bool
	ECCVolatileCorrected                uint64
	ECCVolatileUncorrected              uint64
	ECCAggregateCorrected               uint64
	ECCAggregateUncorrected             uint64
	ClocksEventReasons                  uint64
	SupportedClocksEventReasons         uint64
	MIGMode, MIGPendingMode             int
	RemappedCorrectable                 uint32
	RemappedUncorrectable               uint32
	RemappedPending, RemappedFailure    bool

	// XIDs are delivered once each to every event set that registered EventTypeXidCriticalError for this GPU.
	XIDs []uint64
	// Samples answer nvmlDeviceGetSamples; types power, GPU/memory/encoder/decoder utilization and the two clocks.
	Samples map[nvml.SamplingType][]Sample
	// Fields answer nvmlDeviceGetFieldValues by field id; other ids report NOT_SUPPORTED.
	Fields map[uint32]uint64
	// GPMSupported makes nvmlGpmQueryDeviceSupport report the GPU supported (Hopper and later); GPM answers
	// nvmlGpmMetricsGet by metric id (percentages, MiB/s), other ids report NOT_SUPPORTED.
	GPMSupported bool
	GPM          map[nvml.GpmMetricId]float64
	Processes    []Process
	// Extra holds further per-GPU script keys without the "gpu.<index>." prefix, e.g. "max_clock.sm": "1980".
	Extra map[string]string
}

// Sample is one nvmlDeviceGetSamples entry, timestamped After the nvmlInit call that read the script.
type Sample struct {
	After time.Duration
	Value uint32
}

// ProcessType selects the running-process list a Process appears in.
type ProcessType string

// Process types.
const (
	Compute  ProcessType = "compute"
	Graphics ProcessType = "graphics"
	MPS      ProcessType = "mps"
)

// Process is a process running on a GPU.
type Process struct {
	PID        uint32
	UsedMemory uint64      // bytes; math.MaxUint64 is NVML_VALUE_NOT_AVAILABLE
	Type       ProcessType // "" is Compute
	// Utilization, when set, is the process's nvmlDeviceGetProcessUtilization sample.
	Utilization *ProcessUtilization
}

// ProcessUtilization is a per-process utilization sample, timestamped After nvmlInit.
type ProcessUtilization struct {
	After                        time.Duration
	SM, Memory, Encoder, Decoder uint32
}

var sampleTypeNames = map[nvml.SamplingType]string{
	nvml.TOTAL_POWER_SAMPLES:        "power",
	nvml.GPU_UTILIZATION_SAMPLES:    "gpu",
	nvml.MEMORY_UTILIZATION_SAMPLES: "memory",
	nvml.ENC_UTILIZATION_SAMPLES:    "encoder",
	nvml.DEC_UTILIZATION_SAMPLES:    "decoder",
	nvml.PROCESSOR_CLK_SAMPLES:      "processor_clock",
	nvml.MEMORY_CLK_SAMPLES:         "memory_clock",
}

// Render returns the script in the library's key=value format.
func (s Script) Render() (string, error) {
	var b strings.Builder
	kv := func(key string, value any) { fmt.Fprintf(&b, "%s=%v\n", key, value) }
	if s.DriverVersion != "" {
		kv("driver_version", s.DriverVersion)
	}
	if s.NVMLVersion != "" {
		kv("nvml_version", s.NVMLVersion)
	}
	if s.CUDADriverVersion != 0 {
		kv("cuda_driver_version", s.CUDADriverVersion)
	}
	kv("gpu_count", len(s.GPUs))
	for _, fn := range slices.Sorted(maps.Keys(s.Errors)) {
		kv("error."+fn, int(s.Errors[fn]))
	}
	for i, g := range s.GPUs {
		if err := g.render(&b, fmt.Sprintf("gpu.%d.", i)); err != nil {
			return "", fmt.Errorf("GPU %d: %w", i, err)
		}
	}
	return b.String(), nil
}

func (g GPU) render(b *strings.Builder, prefix string) error {
	kv := func(key string, value any) { fmt.Fprintf(b, "%s%s=%v\n", prefix, key, value) }
	for _, pair := range [][2]string{
		{"uuid", g.UUID}, {"name", g.Name}, {"serial", g.Serial}, {"vbios_version", g.VBIOSVersion},
		{"pci_bus_id", g.PCIBusID},
	} {
		if strings.ContainsAny(pair[1], "\n\r") {
			return fmt.Errorf("%s %q has a line break", pair[0], pair[1])
		}
		if pair[1] != "" {
			kv(pair[0], pair[1])
		}
	}
	kv("lost", boolInt(g.Lost))
	for _, fn := range slices.Sorted(maps.Keys(g.Errors)) {
		kv("error."+fn, int(g.Errors[fn]))
	}
	kv("memory.total", g.MemoryTotal)
	kv("memory.reserved", g.MemoryReserved)
	kv("memory.used", g.MemoryUsed)
	kv("utilization.gpu", g.UtilizationGPU)
	kv("utilization.memory", g.UtilizationMemory)
	kv("encoder.utilization", g.EncoderUtilization)
	kv("decoder.utilization", g.DecoderUtilization)
	kv("temperature.gpu", g.TemperatureGPU)
	kv("power.usage_mw", g.PowerUsage)
	kv("power.enforced_limit_mw", g.EnforcedPowerLimit)
	kv("power.management_limit_mw", g.PowerManagementLimit)
	kv("energy.total_mj", g.TotalEnergyConsumption)
	if g.EnergyGrowth > 0 {
		kv("energy.mw", g.EnergyGrowth)
	}
	kv("clock.graphics", g.ClockGraphics)
	kv("clock.sm", g.ClockSM)
	kv("clock.memory", g.ClockMemory)
	kv("clock.video", g.ClockVideo)
	kv("pcie.tx_kbps", g.PCIeTxKBps)
	kv("pcie.rx_kbps", g.PCIeRxKBps)
	kv("pcie.replay_count", g.PCIeReplays)
	kv("ecc.mode", boolInt(g.ECCEnabled))
	kv("ecc.volatile.corrected", g.ECCVolatileCorrected)
	kv("ecc.volatile.uncorrected", g.ECCVolatileUncorrected)
	kv("ecc.aggregate.corrected", g.ECCAggregateCorrected)
	kv("ecc.aggregate.uncorrected", g.ECCAggregateUncorrected)
	kv("clocks_event_reasons", g.ClocksEventReasons)
	kv("supported_clocks_event_reasons", g.SupportedClocksEventReasons)
	kv("mig.current", g.MIGMode)
	kv("mig.pending", g.MIGPendingMode)
	kv("remapped.correctable", g.RemappedCorrectable)
	kv("remapped.uncorrectable", g.RemappedUncorrectable)
	kv("remapped.pending", boolInt(g.RemappedPending))
	kv("remapped.failure", boolInt(g.RemappedFailure))
	if len(g.XIDs) > 0 {
		xids := make([]string, len(g.XIDs))
		for i, x := range g.XIDs {
			xids[i] = fmt.Sprint(x)
		}
		kv("xid", strings.Join(xids, ","))
	}
	for _, typ := range slices.Sorted(maps.Keys(g.Samples)) {
		name, ok := sampleTypeNames[typ]
		if !ok {
			return fmt.Errorf("sampling type %d is not scripted by the fake library", typ)
		}
		entries := make([]string, len(g.Samples[typ]))
		for i, s := range g.Samples[typ] {
			entries[i] = fmt.Sprintf("%s:%d", offset(s.After), s.Value)
		}
		kv("samples."+name, strings.Join(entries, ","))
	}
	for _, id := range slices.Sorted(maps.Keys(g.Fields)) {
		kv(fmt.Sprintf("field.%d", id), g.Fields[id])
	}
	if g.GPMSupported {
		kv("gpm.supported", 1)
	}
	for _, id := range slices.Sorted(maps.Keys(g.GPM)) {
		kv(fmt.Sprintf("gpm.%d", id), strconv.FormatFloat(g.GPM[id], 'g', -1, 64))
	}
	for j, p := range g.Processes {
		pp := fmt.Sprintf("process.%d.", j)
		kv(pp+"pid", p.PID)
		kv(pp+"used_memory", p.UsedMemory)
		switch p.Type {
		case "", Compute, Graphics, MPS:
			kv(pp+"type", cmp.Or(p.Type, Compute))
		default:
			return fmt.Errorf("process %d: unknown type %q", j, p.Type)
		}
		if u := p.Utilization; u != nil {
			kv(pp+"timestamp", offset(u.After))
			kv(pp+"sm_util", u.SM)
			kv(pp+"mem_util", u.Memory)
			kv(pp+"enc_util", u.Encoder)
			kv(pp+"dec_util", u.Decoder)
		}
	}
	for _, key := range slices.Sorted(maps.Keys(g.Extra)) {
		kv(key, g.Extra[key])
	}
	return nil
}

// WriteScript renders s into a file in t.TempDir() and returns its path.
func WriteScript(t testing.TB, s Script) string {
	t.Helper()
	text, err := s.Render()
	if err != nil {
		t.Fatalf("fakenvml: rendering script: %v", err)
	}
	path := filepath.Join(t.TempDir(), "fakenvml-script.txt")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatalf("fakenvml: writing script: %v", err)
	}
	return path
}

func offset(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	return fmt.Sprintf("+%d", d.Microseconds())
}

func boolInt(v bool) int {
	if v {
		return 1
	}
	return 0
}
