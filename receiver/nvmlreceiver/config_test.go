package nvmlreceiver

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/confmaptest"

	"github.com/otelcol-vllm/otelcol-vllm/receiver/nvmlreceiver/internal/metadata"
)

func TestLoadConfig(t *testing.T) {
	t.Parallel()
	cm, err := confmaptest.LoadConf(filepath.Join("testdata", "config.yaml"))
	require.NoError(t, err)

	custom := createDefaultConfig().(*Config)
	custom.CollectionInterval = 30 * time.Second
	custom.InitialDelay = 2 * time.Second
	custom.Timeout = 5 * time.Second
	custom.Devices = []string{"0", "GPU-5b3d1f42-7c1e-4a6f-9d2b-0e8f6a4c3b21", "MIG-7f0c2d18-3a4b-5c6d-8e9f-1a2b3c4d5e6f"}
	custom.LibraryPath = "/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1"
	custom.Kubernetes.PodResourcesSocket = "/run/kubelet/pod-resources/kubelet.sock"
	custom.Kubernetes.RefreshInterval = 30 * time.Second
	custom.Metrics.HwStatus.Enabled = true
	custom.Metrics.NvidiaGpuProcessMemoryUsage.Enabled = false
	custom.Metrics.HwPower.EnabledAttributes = []metadata.HwPowerMetricAttributeKey{
		metadata.HwPowerMetricAttributeKeyHwID, metadata.HwPowerMetricAttributeKeyHwType,
	}

	tests := []struct {
		id            string
		want          *Config
		unmarshalErr  string
		unmarshalErrs []string
		validateErrs  []string
		compareFields func(t *testing.T, want, got *Config)
	}{
		{id: "", want: createDefaultConfig().(*Config)},
		{id: "custom", want: custom},
		{id: "typo_key", unmarshalErr: "colection_interval"},
		{id: "typo_metric", unmarshalErr: "hw.powr"},
		{id: "typo_metric_option", unmarshalErr: "enable"},
		{id: "bad_devices", validateErrs: []string{
			`devices[1]: "gpu-1" is neither an NVML index`,
			"devices[2]: empty entry",
			`devices[3]: "GPU-" has no UUID`,
			`devices[4]: "-1" is neither an NVML index`,
		}},
		{id: "duplicate_device", validateErrs: []string{`devices[2]: "1" names the same GPU as devices[0] ("1")`}},
		{id: "same_gpu_twice", validateErrs: []string{`devices[1]: "00" names the same GPU as devices[0] ("0")`}},
		{id: "negative_initial_delay", validateErrs: []string{"initial_delay: must not be negative, got -1s"}},
		{id: "relative_socket", validateErrs: []string{`kubernetes.pod_resources_socket: "kubelet.sock" must be an absolute path`}},
		{id: "short_pod_refresh", validateErrs: []string{"kubernetes.refresh_interval: must be at least 1s, got 100ms"}},
		{id: "no_kubernetes", want: func() *Config {
			c := createDefaultConfig().(*Config)
			c.Kubernetes.PodResourcesSocket = ""
			return c
		}()},
		{id: "relative_library", validateErrs: []string{`library_path: "lib/libnvidia-ml.so.1" must be an absolute path`}},
		{id: "zero_interval", validateErrs: []string{`"collection_interval": requires positive value`}},
		{id: "bare_numbers", unmarshalErrs: []string{
			"collection_interval: 10 has no unit; write a duration with its unit",
			"timeout: 5 has no unit", "initial_delay: 1 has no unit", "kubernetes.refresh_interval: 10 has no unit",
		}},
		{id: "short_interval", validateErrs: []string{"collection_interval: must be at least 1s, got 1ns"}},
		{id: "short_timeout", validateErrs: []string{"timeout: must be 0 (no deadline) or at least 100ms, got 1ms"}},
		{id: "timeout_over_interval", validateErrs: []string{"timeout: must be at most collection_interval (5s), got 10s"}},
		{id: "negative_timeout", validateErrs: []string{"timeout: must not be negative (0 means no deadline), got -1s"}},
		{id: "bad_attribute", validateErrs: []string{"metric hw.power doesn't have an attribute process.pid"}},
	}
	for _, tt := range tests {
		t.Run("nvml/"+tt.id, func(t *testing.T) {
			t.Parallel()
			sub, err := cm.Sub(component.NewIDWithName(metadata.Type, tt.id).String())
			require.NoError(t, err)
			cfg := createDefaultConfig().(*Config)
			err = sub.Unmarshal(cfg)
			if tt.unmarshalErr != "" || len(tt.unmarshalErrs) > 0 {
				require.Error(t, err)
				for _, want := range append(tt.unmarshalErrs, tt.unmarshalErr) {
					assert.Contains(t, err.Error(), want)
				}
				return
			}
			require.NoError(t, err)
			err = confmap.Validate(cfg)
			if len(tt.validateErrs) > 0 {
				require.Error(t, err)
				for _, want := range tt.validateErrs {
					assert.Contains(t, err.Error(), want)
				}
				return
			}
			require.NoError(t, err)
			// The metrics config carries unexported "set by user" flags; compare what users control.
			assert.Equal(t, tt.want.ControllerConfig, cfg.ControllerConfig)
			assert.Equal(t, tt.want.Devices, cfg.Devices)
			assert.Equal(t, tt.want.LibraryPath, cfg.LibraryPath)
			assert.Equal(t, tt.want.Kubernetes, cfg.Kubernetes)
			assert.Equal(t, tt.want.Metrics.HwStatus.Enabled, cfg.Metrics.HwStatus.Enabled)
			assert.Equal(t, tt.want.Metrics.NvidiaGpuProcessMemoryUsage.Enabled, cfg.Metrics.NvidiaGpuProcessMemoryUsage.Enabled)
			assert.Equal(t, tt.want.Metrics.HwPower.EnabledAttributes, cfg.Metrics.HwPower.EnabledAttributes)
			assert.Equal(t, tt.want.Metrics.HwEnergy.Enabled, cfg.Metrics.HwEnergy.Enabled)
		})
	}
}

func TestDefaultConfig(t *testing.T) {
	t.Parallel()
	cfg := NewFactory().CreateDefaultConfig().(*Config)
	assert.Equal(t, 10*time.Second, cfg.CollectionInterval)
	assert.Equal(t, time.Second, cfg.InitialDelay)
	assert.Zero(t, cfg.Timeout)
	assert.Empty(t, cfg.Devices)
	assert.Empty(t, cfg.LibraryPath)
	assert.Equal(t, "/var/lib/kubelet/pod-resources/kubelet.sock", cfg.Kubernetes.PodResourcesSocket)
	assert.Equal(t, 10*time.Second, cfg.Kubernetes.RefreshInterval)
	assert.NoError(t, confmap.Validate(cfg))

	m := cfg.Metrics
	on := map[string]bool{
		"hw.gpu.utilization": m.HwGpuUtilization.Enabled, "hw.gpu.memory.usage": m.HwGpuMemoryUsage.Enabled,
		"hw.gpu.memory.limit": m.HwGpuMemoryLimit.Enabled, "hw.gpu.memory.utilization": m.HwGpuMemoryUtilization.Enabled,
		"nvidia.gpu.memory.bandwidth.utilization": m.NvidiaGpuMemoryBandwidthUtilization.Enabled,
		"hw.power": m.HwPower.Enabled, "nvidia.gpu.power.limit": m.NvidiaGpuPowerLimit.Enabled,
		"hw.energy": m.HwEnergy.Enabled, "hw.temperature": m.HwTemperature.Enabled,
		"nvidia.gpu.clock.frequency": m.NvidiaGpuClockFrequency.Enabled, "nvidia.gpu.clock_event.active": m.NvidiaGpuClockEventActive.Enabled,
		"hw.gpu.io": m.HwGpuIo.Enabled, "hw.errors": m.HwErrors.Enabled, "nvidia.gpu.xid.errors": m.NvidiaGpuXidErrors.Enabled,
		"nvidia.gpu.remapped_rows": m.NvidiaGpuRemappedRows.Enabled, "nvidia.gpu.process.memory.usage": m.NvidiaGpuProcessMemoryUsage.Enabled,
		"nvidia.gpu.process.utilization": m.NvidiaGpuProcessUtilization.Enabled, "hw.status": m.HwStatus.Enabled,
	}
	off := map[string]bool{"nvidia.gpu.remapped_rows": true, "nvidia.gpu.process.utilization": true, "hw.status": true}
	for name, enabled := range on {
		assert.Equalf(t, !off[name], enabled, "default of %s", name)
	}
}

func TestDeviceSelector(t *testing.T) {
	t.Parallel()
	sel := newDeviceSelector([]string{"2", "GPU-b", "MIG-x", "7"})
	assert.True(t, sel.anyMIG)
	assert.False(t, sel.gpuSelected(0, "GPU-a"))
	assert.True(t, sel.gpuSelected(1, "GPU-b"))
	assert.True(t, sel.gpuSelected(2, "GPU-c"))
	assert.True(t, sel.migSelected(true, "MIG-any"), "instances of a selected GPU are selected")
	assert.False(t, sel.migSelected(false, "MIG-y"))
	assert.True(t, sel.migSelected(false, "MIG-x"))
	assert.Equal(t, []string{"7"}, sel.unmatched())

	all := newDeviceSelector(nil)
	assert.True(t, all.gpuSelected(5, "GPU-z"))
	assert.False(t, all.anyMIG)
	assert.Empty(t, all.unmatched())
}
