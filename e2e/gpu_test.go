package e2e

// GPU metrics: the distribution's nvml receiver loads a fake libnvidia-ml.so.1 (internal/fakenvml, compiled with
// gcc) through the real dlopen path, and remote-writes what it reads to a real Prometheus. The test checks the
// Prometheus names, every label and the values, derived from the fake's script with the receiver's unit
// conversions (mW -> W, mJ -> J, MHz -> Hz, percent -> fraction).

import (
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
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-vllm/otelcol-vllm/internal/fakenvml"
)

const (
	gpuDriver   = "550.54.15"
	gpuH100UUID = "GPU-11111111-2222-3333-4444-555555555555"
	gpuL4UUID   = "GPU-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
	gpuH100     = "NVIDIA H100 80GB HBM3"
	gpuL4       = "NVIDIA L4"
	gpuGiB      = uint64(1) << 30
	// gpuWait bounds every wait on the collector: it scrapes every second.
	gpuWait = 30 * time.Second
)

// gpuScript is two GPUs: a fully scripted H100 (index 0, minor 0) running the test process, and an L4 (index 1,
// minor 3) with power and memory only. It scripts no utilization samples, so every scrape reports the same
// instantaneous utilization.
func gpuScript(pid uint32) fakenvml.Script {
	return fakenvml.Script{
		DriverVersion: gpuDriver,
		GPUs: []fakenvml.GPU{
			{
				UUID: gpuH100UUID, Name: gpuH100,
				MemoryTotal: 80 * gpuGiB, MemoryReserved: gpuGiB / 2, MemoryUsed: 20 * gpuGiB,
				UtilizationGPU: 87, UtilizationMemory: 45, EncoderUtilization: 12, DecoderUtilization: 7,
				TemperatureGPU: 64,
				PowerUsage:     123456, EnforcedPowerLimit: 700000,
				TotalEnergyConsumption: 987654321,
				ClockGraphics:          1755, ClockSM: 1980, ClockMemory: 2619,
				ECCEnabled: true, ECCVolatileCorrected: 5, ECCVolatileUncorrected: 1,
				// a hardware thermal slowdown makes the GPU degraded
				ClocksEventReasons:          nvml.ClocksEventReasonSwPowerCap | nvml.ClocksThrottleReasonHwThermalSlowdown,
				SupportedClocksEventReasons: 0x7ff,
				RemappedCorrectable:         2, RemappedUncorrectable: 1,
				XIDs: []uint64{79, 48, 79},
				Fields: map[uint32]uint64{
					nvml.FI_DEV_MEMORY_TEMP:         71,
					nvml.FI_DEV_PCIE_COUNT_TX_BYTES: 1_000_000,
					nvml.FI_DEV_PCIE_COUNT_RX_BYTES: 2_000_000,
				},
				Processes: []fakenvml.Process{
					{PID: pid, UsedMemory: 10 * gpuGiB, Utilization: &fakenvml.ProcessUtilization{SM: 60}},
				},
			},
			{
				UUID: gpuL4UUID, Name: gpuL4, MemoryTotal: 24 * gpuGiB, MemoryUsed: 6 * gpuGiB,
				PowerUsage: 50000, Extra: map[string]string{"minor_number": "3"},
			},
		},
	}
}

// gpuIdentity are the labels every GPU series carries, by hw_id.
var gpuIdentity = map[string]map[string]string{
	gpuH100UUID: {"hw_id": gpuH100UUID, "hw_name": "nvidia0", "hw_vendor": "NVIDIA", "hw_model": gpuH100,
		"hw_driver_version": gpuDriver, "nvidia_gpu_index": "0"},
	gpuL4UUID: {"hw_id": gpuL4UUID, "hw_name": "nvidia3", "hw_vendor": "NVIDIA", "hw_model": gpuL4,
		"hw_driver_version": gpuDriver, "nvidia_gpu_index": "1"},
}

// scopeLabels are the labels the prometheus_remote_write exporter adds from the instrumentation scope: the
// receiver's package and the distribution's version (`otelcol-vllm --version`).
func scopeLabels(t *testing.T, bin string) map[string]string {
	t.Helper()
	out := strings.Fields(string(run(t, 30*time.Second, "", bin, "--version")))
	require.NotEmpty(t, out)
	return map[string]string{
		"otel_scope_name":    "github.com/otelcol-vllm/otelcol-vllm/receiver/nvmlreceiver",
		"otel_scope_version": out[len(out)-1],
	}
}

// gpuSeries is one series Prometheus must hold for a GPU: its name, its labels besides the GPU identity, and
// its value.
type gpuSeries struct {
	name   string
	labels string // `k="v",...` sorted by key, as seriesKey writes them
	value  float64
}

func (s gpuSeries) key() string { return s.name + "{" + s.labels + "}" }

// h100Series is every series the H100 must produce: every metric of the receiver, optional ones included.
func h100Series(pid int, processName string) []gpuSeries {
	proc := fmt.Sprintf(`process_executable_name=%q,process_pid="%d"`, processName, pid)
	series := []gpuSeries{
		{"hw_gpu_utilization_ratio", `hw_gpu_task="general"`, 0.87},
		{"hw_gpu_utilization_ratio", `hw_gpu_task="encoder"`, 0.12},
		{"hw_gpu_utilization_ratio", `hw_gpu_task="decoder"`, 0.07},
		{"nvidia_gpu_memory_bandwidth_utilization_ratio", ``, 0.45},
		{"hw_gpu_memory_usage_bytes", ``, float64(20 * gpuGiB)},
		{"hw_gpu_memory_limit_bytes", ``, float64(80 * gpuGiB)},
		{"hw_gpu_memory_utilization_ratio", ``, 0.25},
		{"hw_power_watts", `hw_type="gpu"`, 123.456},
		{"nvidia_gpu_power_limit_watts", ``, 700},
		{"hw_energy_joules_total", `hw_type="gpu"`, 987654.321},
		{"hw_temperature_celsius", `hw_sensor_location="gpu"`, 64},
		{"hw_temperature_celsius", `hw_sensor_location="memory"`, 71},
		{"nvidia_gpu_clock_frequency_hertz", `nvidia_gpu_clock_type="graphics"`, 1755e6},
		{"nvidia_gpu_clock_frequency_hertz", `nvidia_gpu_clock_type="sm"`, 1980e6},
		{"nvidia_gpu_clock_frequency_hertz", `nvidia_gpu_clock_type="memory"`, 2619e6},
		{"hw_gpu_io_bytes_total", `network_io_direction="transmit"`, 1_000_000},
		{"hw_gpu_io_bytes_total", `network_io_direction="receive"`, 2_000_000},
		{"hw_errors_total", `error_type="corrected",hw_type="gpu"`, 5},
		{"hw_errors_total", `error_type="uncorrected",hw_type="gpu"`, 1},
		{"nvidia_gpu_xid_errors_total", `nvidia_gpu_xid="48"`, 1},
		{"nvidia_gpu_xid_errors_total", `nvidia_gpu_xid="79"`, 2},
		{"nvidia_gpu_remapped_rows_total", `nvidia_gpu_remap_cause="correctable"`, 2},
		{"nvidia_gpu_remapped_rows_total", `nvidia_gpu_remap_cause="uncorrectable"`, 1},
		{"nvidia_gpu_process_memory_usage_bytes", proc, float64(10 * gpuGiB)},
		{"nvidia_gpu_process_utilization_ratio", proc, 0.60},
		{"hw_status", `hw_state="ok",hw_type="gpu"`, 0},
		{"hw_status", `hw_state="degraded",hw_type="gpu"`, 1},
		{"hw_status", `hw_state="failed",hw_type="gpu"`, 0},
	}
	for _, reason := range []string{
		"gpu_idle", "applications_clocks_setting", "sw_power_cap", "hw_slowdown", "sync_boost", "sw_thermal_slowdown",
		"hw_thermal_slowdown", "hw_power_brake_slowdown", "display_clock_setting", "board_limit", "reliability",
	} {
		active := 0.0
		if reason == "sw_power_cap" || reason == "hw_thermal_slowdown" {
			active = 1
		}
		series = append(series, gpuSeries{"nvidia_gpu_clock_event_active_ratio",
			fmt.Sprintf("nvidia_gpu_clock_event_reason=%q", reason), active})
	}
	return series
}

// l4Series are a few series of the sparsely scripted L4, for its identity labels (another index, minor number
// and model) and values.
var l4Series = []gpuSeries{
	{"hw_power_watts", `hw_type="gpu"`, 50},
	{"hw_gpu_memory_usage_bytes", ``, float64(6 * gpuGiB)},
	{"hw_gpu_memory_limit_bytes", ``, float64(24 * gpuGiB)},
	{"hw_status", `hw_state="ok",hw_type="gpu"`, 1},
}

// gpuSelector matches every series the nvml receiver produces.
const gpuSelector = `{__name__=~"hw_.+|nvidia_gpu_.+"}`

// gpuState is what Prometheus holds for the GPUs: values by seriesKey, per hw_id, and every label problem.
type gpuState struct {
	values   map[string]map[string]float64
	problems []string
}

// readGPUState queries every GPU series. A series whose identity labels differ from gpuIdentity, whose scope
// labels differ from scope, or that has no hw_id, is a problem; its other labels become part of its key.
func readGPUState(t *testing.T, prom *prometheusServer, scope map[string]string) gpuState {
	t.Helper()
	state := gpuState{values: map[string]map[string]float64{}}
	for _, s := range prom.query(t, gpuSelector) {
		identity, known := gpuIdentity[s.Metric["hw_id"]]
		if !known {
			state.problems = append(state.problems, fmt.Sprintf("series of an unknown GPU: %v", s.Metric))
			continue
		}
		common := maps.Clone(identity)
		maps.Copy(common, scope)
		rest := map[string]string{}
		for k, v := range s.Metric {
			if k == "__name__" {
				continue
			}
			if want, isCommon := common[k]; isCommon {
				if v != want {
					state.problems = append(state.problems, fmt.Sprintf("%v: %s=%q, want %q", s.Metric, k, v, want))
				}
				continue
			}
			rest[k] = v
		}
		for _, k := range slices.Sorted(maps.Keys(common)) {
			if _, ok := s.Metric[k]; !ok {
				state.problems = append(state.problems, fmt.Sprintf("%v: no %s label", s.Metric, k))
			}
		}
		if state.values[identity["hw_id"]] == nil {
			state.values[identity["hw_id"]] = map[string]float64{}
		}
		state.values[identity["hw_id"]][seriesKey(s.Metric["__name__"], rest)] = s.float(t)
	}
	return state
}

func seriesKey(name string, labels map[string]string) string {
	parts := make([]string, 0, len(labels))
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		parts = append(parts, fmt.Sprintf("%s=%q", k, labels[k]))
	}
	return name + "{" + strings.Join(parts, ",") + "}"
}

// mismatches lists how got differs from want; with exact set, a series of got that want lacks is one too.
func mismatches(want []gpuSeries, got map[string]float64, exact bool) []string {
	var out []string
	wanted := map[string]bool{}
	for _, s := range want {
		wanted[s.key()] = true
		v, ok := got[s.key()]
		switch {
		case !ok:
			out = append(out, "missing "+s.key())
		case !closeEnough(v, s.value):
			out = append(out, fmt.Sprintf("%s = %v, want %v", s.key(), v, s.value))
		}
	}
	if exact {
		for _, k := range slices.Sorted(maps.Keys(got)) {
			if !wanted[k] {
				out = append(out, fmt.Sprintf("unexpected %s = %v", k, got[k]))
			}
		}
	}
	return out
}

// deployNVMLNames returns the names deploy/metrics.txt lists with source nvml.
func deployNVMLNames(t *testing.T) []string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(repoRoot(t), "deploy", "metrics.txt"))
	require.NoError(t, err)
	var names []string
	for _, line := range strings.Split(string(raw), "\n") {
		fields := strings.Fields(line)
		if len(fields) >= 2 && !strings.HasPrefix(fields[0], "#") && fields[1] == "nvml" {
			names = append(names, fields[0])
		}
	}
	return names
}

// processName is /proc/<pid>/comm of this test process, which the receiver reports as process.executable.name.
func processName(t *testing.T) string {
	t.Helper()
	comm, err := os.ReadFile("/proc/self/comm")
	require.NoError(t, err)
	return strings.TrimSuffix(string(comm), "\n")
}

func TestGPUMetricsInPrometheus(t *testing.T) {
	scope := scopeLabels(t, requireEnv(t, envCollectorBin))
	prom := startPrometheus(t)
	pid := os.Getpid()
	c := startCollector(t, "gpu", []string{filepath.Join(repoRoot(t), "e2e", "testdata", "gpu.yaml")}, map[string]string{
		"E2E_REMOTE_WRITE_URL": prom.remoteWriteURL(),
		"E2E_NVML_LIBRARY":     fakenvml.Build(t),
		fakenvml.ScriptEnv:     fakenvml.WriteScript(t, gpuScript(uint32(pid))),
	})

	wantH100 := h100Series(pid, processName(t))
	// Values are constant from the first scrape on, except the XID counts, which the receiver counts as the
	// events arrive: poll until Prometheus holds exactly the expected series.
	var state gpuState
	var h100Problems, l4Problems []string
	deadline := time.Now().Add(gpuWait)
	for {
		state = readGPUState(t, prom, scope)
		h100Problems = mismatches(wantH100, state.values[gpuH100UUID], true)
		l4Problems = mismatches(l4Series, state.values[gpuL4UUID], false)
		if len(state.problems)+len(h100Problems)+len(l4Problems) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}

	t.Run("identity and scope labels on every series", func(t *testing.T) {
		assert.Empty(t, state.problems)
	})
	t.Run("H100: every series, labels and value", func(t *testing.T) {
		assert.Empty(t, h100Problems, "Prometheus holds:\n%s", formatValues(state.values[gpuH100UUID]))
	})
	t.Run("L4: index, minor number, model and values", func(t *testing.T) {
		assert.Empty(t, l4Problems, "Prometheus holds:\n%s", formatValues(state.values[gpuL4UUID]))
	})

	names := prom.metricNames(t)
	t.Run("Prometheus names are exactly the receiver's", func(t *testing.T) {
		want := map[string]bool{}
		for _, s := range wantH100 {
			want[s.name] = true
		}
		var got []string
		for _, n := range names {
			if strings.HasPrefix(n, "hw_") || strings.HasPrefix(n, "nvidia_gpu_") {
				got = append(got, n)
			}
		}
		assert.Equal(t, slices.Sorted(maps.Keys(want)), got)
	})
	t.Run("deploy/metrics.txt nvml names exist", func(t *testing.T) {
		listed := deployNVMLNames(t)
		require.NotEmpty(t, listed, "deploy/metrics.txt lists no nvml metric")
		for _, n := range listed {
			assert.Contains(t, names, n, "deploy/metrics.txt lists %s (source nvml), which Prometheus does not have", n)
		}
	})
	t.Run("collector telemetry", func(t *testing.T) {
		checkNoExportFailures(t, c)
	})
}

func formatValues(values map[string]float64) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(values)) {
		b.WriteString(k + " " + strconv.FormatFloat(values[k], 'g', -1, 64) + "\n")
	}
	return b.String()
}
