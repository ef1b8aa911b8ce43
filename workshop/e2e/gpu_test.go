package e2e

// GPU metrics: the distribution's nvml receiver loads a fake libnvidia-ml.so.1 (workshop/fakenvml, compiled with
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

	"github.com/otelcol-vllm/otelcol-vllm/workshop/fakenvml"
	"github.com/otelcol-vllm/otelcol-vllm/workshop/testkit"
	"github.com/otelcol-vllm/otelcol-vllm/workshop/testkit/fakekubelet"
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
				TotalEnergyConsumption: 987654321, EnergyGrowth: 600_000, // 600 W from nvmlInit on
				ClockGraphics: 1755, ClockSM: 1980, ClockMemory: 2619,
				ECCEnabled: true, ECCVolatileCorrected: 5, ECCVolatileUncorrected: 1,
				PCIeReplays:  4,
				GPMSupported: true,
				GPM: map[nvml.GpmMetricId]float64{
					nvml.GPM_METRIC_GRAPHICS_UTIL: 97.5, nvml.GPM_METRIC_SM_UTIL: 82.25, nvml.GPM_METRIC_SM_OCCUPANCY: 41,
					nvml.GPM_METRIC_ANY_TENSOR_UTIL: 55.5, nvml.GPM_METRIC_FP64_UTIL: 0, nvml.GPM_METRIC_FP32_UTIL: 6,
					nvml.GPM_METRIC_FP16_UTIL: 3, nvml.GPM_METRIC_DRAM_BW_UTIL: 63,
					nvml.GPM_METRIC_PCIE_TX_PER_SEC: 1500, nvml.GPM_METRIC_PCIE_RX_PER_SEC: 2500,
					nvml.GPM_METRIC_NVLINK_TOTAL_TX_PER_SEC: 100000, nvml.GPM_METRIC_NVLINK_TOTAL_RX_PER_SEC: 110000,
				},
				// a hardware thermal slowdown makes the GPU degraded
				ClocksEventReasons:          nvml.ClocksEventReasonSwPowerCap | nvml.ClocksThrottleReasonHwThermalSlowdown,
				SupportedClocksEventReasons: 0x7ff,
				RemappedCorrectable:         2, RemappedUncorrectable: 1,
				XIDs: []uint64{79, 48, 79},
				Fields: map[uint32]uint64{
					nvml.FI_DEV_MEMORY_TEMP:         71,
					nvml.FI_DEV_PCIE_COUNT_TX_BYTES: 1_000_000,
					nvml.FI_DEV_PCIE_COUNT_RX_BYTES: 2_000_000,
					// NVLink (KiB, error totals) and throttle time (ns)
					nvml.FI_DEV_NVLINK_THROUGHPUT_DATA_TX:             3_000_000,
					nvml.FI_DEV_NVLINK_THROUGHPUT_DATA_RX:             4_000_000,
					nvml.FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL:     2,
					nvml.FI_DEV_NVLINK_CRC_DATA_ERROR_COUNT_TOTAL:     0,
					nvml.FI_DEV_NVLINK_REPLAY_ERROR_COUNT_TOTAL:       7,
					nvml.FI_DEV_NVLINK_RECOVERY_ERROR_COUNT_TOTAL:     1,
					nvml.FI_DEV_PERF_POLICY_POWER:                     12_500_000_000,
					nvml.FI_DEV_CLOCKS_EVENT_REASON_HW_THERM_SLOWDOWN: 750_000_000,
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
	// atLeast accepts any value >= value (a counter that grows while the test runs)
	atLeast bool
}

func (s gpuSeries) key() string { return s.name + "{" + s.labels + "}" }

// The fake kubelet allocates the H100 to one container and time-slices the L4 between two pods.
const (
	gpuPodNamespace = "llm"
	gpuPod          = "vllm-0"
	gpuContainer    = "vllm"
)

// withPod adds the pod labels of an exclusively allocated GPU to a series' labels, keeping them sorted.
func withPod(labels string) string {
	parts := []string{
		fmt.Sprintf("k8s_container_name=%q", gpuContainer), fmt.Sprintf("k8s_namespace_name=%q", gpuPodNamespace),
		fmt.Sprintf("k8s_pod_name=%q", gpuPod),
	}
	if labels != "" {
		parts = append(parts, strings.Split(labels, ",")...)
	}
	slices.Sort(parts)
	return strings.Join(parts, ",")
}

// h100Series is every series the H100 must produce: every metric of the receiver, optional ones included.
func h100Series(pid int, processName string) []gpuSeries {
	proc := fmt.Sprintf(`process_executable_name=%q,process_pid="%d"`, processName, pid)
	series := []gpuSeries{
		{"hw_gpu_utilization_ratio", `hw_gpu_task="general"`, 0.87, false},
		{"hw_gpu_utilization_ratio", `hw_gpu_task="encoder"`, 0.12, false},
		{"hw_gpu_utilization_ratio", `hw_gpu_task="decoder"`, 0.07, false},
		{"nvidia_gpu_memory_bandwidth_utilization_ratio", ``, 0.45, false},
		{"hw_gpu_memory_usage_bytes", ``, float64(20 * gpuGiB), false},
		{"hw_gpu_memory_limit_bytes", ``, float64(80 * gpuGiB), false},
		{"hw_gpu_memory_utilization_ratio", ``, 0.25, false},
		{"hw_power_watts", `hw_type="gpu"`, 123.456, false},
		{"nvidia_gpu_power_limit_watts", ``, 700, false},
		{"hw_energy_joules_total", `hw_type="gpu"`, 987654.321, true},
		{"hw_temperature_celsius", `hw_sensor_location="gpu"`, 64, false},
		{"hw_temperature_celsius", `hw_sensor_location="memory"`, 71, false},
		{"nvidia_gpu_clock_frequency_hertz", `nvidia_gpu_clock_type="graphics"`, 1755e6, false},
		{"nvidia_gpu_clock_frequency_hertz", `nvidia_gpu_clock_type="sm"`, 1980e6, false},
		{"nvidia_gpu_clock_frequency_hertz", `nvidia_gpu_clock_type="memory"`, 2619e6, false},
		{"hw_gpu_io_bytes_total", `network_io_direction="transmit"`, 1_000_000, false},
		{"hw_gpu_io_bytes_total", `network_io_direction="receive"`, 2_000_000, false},
		{"hw_errors_total", `error_type="corrected",hw_type="gpu"`, 5, false},
		{"hw_errors_total", `error_type="uncorrected",hw_type="gpu"`, 1, false},
		{"nvidia_gpu_xid_errors_total", `nvidia_gpu_xid="48"`, 1, false},
		{"nvidia_gpu_xid_errors_total", `nvidia_gpu_xid="79"`, 2, false},
		{"nvidia_gpu_remapped_rows_total", `nvidia_gpu_remap_cause="correctable"`, 2, false},
		{"nvidia_gpu_remapped_rows_total", `nvidia_gpu_remap_cause="uncorrectable"`, 1, false},
		{"nvidia_gpu_process_memory_usage_bytes", proc, float64(10 * gpuGiB), false},
		{"nvidia_gpu_process_utilization_ratio", proc, 0.60, false},
		{"hw_status", `hw_state="ok",hw_type="gpu"`, 0, false},
		{"hw_status", `hw_state="degraded",hw_type="gpu"`, 1, false},
		{"hw_status", `hw_state="failed",hw_type="gpu"`, 0, false},
		{"nvidia_gpu_memory_reserved_bytes", ``, float64(gpuGiB / 2), false},
		{"nvidia_gpu_pcie_replays_total", ``, 4, false},
		{"nvidia_gpu_nvlink_io_bytes_total", `network_io_direction="transmit"`, 3_000_000 * 1024, false},
		{"nvidia_gpu_nvlink_io_bytes_total", `network_io_direction="receive"`, 4_000_000 * 1024, false},
		{"nvidia_gpu_nvlink_errors_total", `nvidia_gpu_nvlink_error_type="crc_flit"`, 2, false},
		{"nvidia_gpu_nvlink_errors_total", `nvidia_gpu_nvlink_error_type="crc_data"`, 0, false},
		{"nvidia_gpu_nvlink_errors_total", `nvidia_gpu_nvlink_error_type="replay"`, 7, false},
		{"nvidia_gpu_nvlink_errors_total", `nvidia_gpu_nvlink_error_type="recovery"`, 1, false},
		{"nvidia_gpu_clock_event_duration_seconds_total", `nvidia_gpu_clock_event_reason="sw_power_cap"`, 12.5, false},
		{"nvidia_gpu_clock_event_duration_seconds_total", `nvidia_gpu_clock_event_reason="hw_thermal_slowdown"`, 0.75, false},
		// GPM, averaged between two scrapes
		{"nvidia_gpu_graphics_engine_activity_ratio", ``, 0.975, false},
		{"nvidia_gpu_sm_activity_ratio", ``, 0.8225, false},
		{"nvidia_gpu_sm_occupancy_ratio", ``, 0.41, false},
		{"nvidia_gpu_pipe_activity_ratio", `nvidia_gpu_pipe="tensor"`, 0.555, false},
		{"nvidia_gpu_pipe_activity_ratio", `nvidia_gpu_pipe="fp64"`, 0, false},
		{"nvidia_gpu_pipe_activity_ratio", `nvidia_gpu_pipe="fp32"`, 0.06, false},
		{"nvidia_gpu_pipe_activity_ratio", `nvidia_gpu_pipe="fp16"`, 0.03, false},
		{"nvidia_gpu_dram_activity_ratio", ``, 0.63, false},
		{"nvidia_gpu_pcie_bandwidth_bytes_per_second", `network_io_direction="transmit"`, 1500 << 20, false},
		{"nvidia_gpu_pcie_bandwidth_bytes_per_second", `network_io_direction="receive"`, 2500 << 20, false},
		{"nvidia_gpu_nvlink_bandwidth_bytes_per_second", `network_io_direction="transmit"`, 100000 << 20, false},
		{"nvidia_gpu_nvlink_bandwidth_bytes_per_second", `network_io_direction="receive"`, 110000 << 20, false},
		{"nvidia_gpu_allocation", ``, 1, false},
	}
	for _, reason := range []string{
		"gpu_idle", "applications_clocks_setting", "sw_power_cap", "hw_slowdown", "sync_boost", "sw_thermal_slowdown",
		"hw_thermal_slowdown", "hw_power_brake_slowdown", "display_clock_setting", "board_limit", "reliability",
	} {
		active := 0.0
		if reason == "sw_power_cap" || reason == "hw_thermal_slowdown" {
			active = 1
		}
		series = append(series, gpuSeries{name: "nvidia_gpu_clock_event_active_ratio",
			labels: fmt.Sprintf("nvidia_gpu_clock_event_reason=%q", reason), value: active})
	}
	// The H100 is allocated to one container: every series carries its pod.
	for i := range series {
		series[i].labels = withPod(series[i].labels)
	}
	return series
}

// l4Series are a few series of the sparsely scripted L4, for its identity labels (another index, minor number
// and model) and values.
// The L4 is time-sliced between two pods: its series carry no pod labels (NVML cannot split its values), and
// nvidia_gpu_allocation names both pods with the replicas each holds.
var l4Series = []gpuSeries{
	{name: "hw_power_watts", labels: `hw_type="gpu"`, value: 50},
	{name: "hw_gpu_memory_usage_bytes", value: float64(6 * gpuGiB)},
	{name: "hw_gpu_memory_limit_bytes", value: float64(24 * gpuGiB)},
	{name: "hw_status", labels: `hw_state="ok",hw_type="gpu"`, value: 1},
	{name: "nvidia_gpu_allocation", labels: `k8s_container_name="vllm",k8s_namespace_name="llm",k8s_pod_name="small-0"`, value: 2},
	{name: "nvidia_gpu_allocation", labels: `k8s_container_name="embedder",k8s_namespace_name="batch",k8s_pod_name="embed-0"`, value: 1},
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
		case s.atLeast && v >= s.value:
		case s.atLeast || !closeEnough(v, s.value):
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
	scope := scopeLabels(t, testkit.Tool(t, testkit.CollectorBin))
	prom := startPrometheusWithRules(t, "", "")
	pid := os.Getpid()
	c := startCollector(t, "gpu", []string{filepath.Join(workshopRoot(t), "e2e", "testdata", "gpu.yaml")}, map[string]string{
		"E2E_REMOTE_WRITE_URL": prom.remoteWriteURL(),
		"E2E_NVML_LIBRARY":     fakenvml.Build(t),
		"E2E_POD_RESOURCES_SOCKET": fakekubelet.Serve(t,
			fakekubelet.Pod(gpuPodNamespace, gpuPod, gpuContainer, "nvidia.com/gpu", gpuH100UUID),
			fakekubelet.Pod("llm", "small-0", "vllm", "nvidia.com/gpu.shared", gpuL4UUID+"::0", gpuL4UUID+"::1"),
			fakekubelet.Pod("batch", "embed-0", "embedder", "nvidia.com/gpu.shared", gpuL4UUID+"::2"),
		),
		fakenvml.ScriptEnv: fakenvml.WriteScript(t, gpuScript(uint32(pid))),
	})
	// Requests served by the pod that holds the H100, in two batches a few seconds apart so the token counter
	// has a rate.
	podResource := fmt.Sprintf("service.instance.id=%s,k8s.pod.name=%s,k8s.namespace.name=%s", gpuPod, gpuPod, gpuPodNamespace)
	sendRequests := func(seed int) {
		run(t, 2*time.Minute, "", vllmgen(t), "--otlp-endpoint="+c.otlpGRPC, "--otlp-protocol=grpc", "--shape=v1",
			"--count=40", "--seed="+strconv.Itoa(seed), "--models=llama-8b", "--resource="+podResource, "--batch=20")
	}
	sendRequests(21)

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

	// The second batch goes out once the first is in Prometheus, so the token counter rises between samples.
	require.Eventually(t, func() bool { return len(prom.query(t, `vllm_tokens_total{gen_ai_token_type="output"}`)) > 0 },
		gpuWait, 250*time.Millisecond, "the first requests' tokens never reached Prometheus")
	sendRequests(22)

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
	t.Run("energy per token: the vLLM series carry the pod and the J/token rule joins them to the GPU", func(t *testing.T) {
		rule := fmt.Sprintf(`namespace_pod_model:vllm_joules_per_output_token:ratio_rate5m{k8s_namespace_name=%q,k8s_pod_name=%q,gen_ai_request_model="llama-8b"}`,
			gpuPodNamespace, gpuPod)
		var jPerToken []promSample
		ok := assert.Eventually(t, func() bool {
			jPerToken = prom.query(t, rule)
			return len(jPerToken) == 1
		}, gpuWait, 500*time.Millisecond, "no %s", rule)
		if !ok { // show the inputs of the rule
			for _, q := range []string{`vllm_tokens_total{gen_ai_token_type="output"}`, `namespace_pod_model:vllm_output_tokens:rate5m`,
				`namespace_pod:hw_energy_joules:rate5m`, `namespace_pod_model:hw_energy_joules:rate5m`} {
				t.Logf("%s: %v", q, prom.query(t, q))
			}
			t.FailNow()
		}
		tokens := prom.query(t, `vllm_tokens_total{gen_ai_token_type="output"}`)
		require.NotEmpty(t, tokens)
		for _, s := range tokens {
			assert.Equal(t, gpuPod, s.Metric["k8s_pod_name"], "%v", s.Metric)
			assert.Equal(t, gpuPodNamespace, s.Metric["k8s_namespace_name"], "%v", s.Metric)
		}
		// The fake's energy counter grows at 600 W. (rate() over 5m of a younger series divides by the whole
		// window, so the slope is checked with deriv on the raw counter.)
		slope := prom.scalar(t, fmt.Sprintf(`deriv(hw_energy_joules_total{k8s_pod_name=%q}[20s])`, gpuPod))
		assert.InDelta(t, 600, slope, 60, "the pod's GPU power from the energy counter")
		// J/token is the pod's recorded power over its recorded token rate.
		v := jPerToken[0].float(t)
		power := prom.scalar(t, fmt.Sprintf(`namespace_pod:hw_energy_joules:rate5m{k8s_pod_name=%q}`, gpuPod))
		tokensPerSecond := prom.scalar(t, fmt.Sprintf(`sum(namespace_pod_model:vllm_output_tokens:rate5m{k8s_pod_name=%q})`, gpuPod))
		require.Positive(t, power)
		require.Positive(t, tokensPerSecond)
		assert.InDelta(t, power/tokensPerSecond, v, 0.25*power/tokensPerSecond, "J/token is the pod's power over its token rate")
		// The time-sliced L4 has no pod labels, so no per-pod figure includes it.
		assert.Empty(t, prom.query(t, `namespace_pod:hw_energy_joules:rate5m{k8s_pod_name=~"small-0|embed-0"}`))
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
