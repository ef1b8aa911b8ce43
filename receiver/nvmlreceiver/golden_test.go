//go:build cgo

package nvmlreceiver

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/open-telemetry/opentelemetry-collector-contrib/pkg/golden"
	"github.com/open-telemetry/opentelemetry-collector-contrib/pkg/pdatatest/pmetrictest"
	"github.com/stretchr/testify/require"
)

// TestScrapeGolden (UPDATE_GOLDEN=1 rewrites the file; review the diff) pins the complete output of a second scrape (all metrics on) of two mocked GPUs, the first
// with MIG on and one instance, including start timestamps, units and every attribute.
func TestScrapeGolden(t *testing.T) {
	t.Parallel()
	f := newFakeNVML(t, 2)
	writeComm(t, f.procRoot, 4242, "VLLM::EngineCor")
	f.enableMIG(0, newFakeMIG(0, 0, 10*gib, 9*gib, nvml.ProcessInfo{Pid: 4242, UsedGpuMemory: 9 * gib}))
	f.gpus[1].clockEvents |= nvml.ClocksThrottleReasonHwThermalSlowdown
	// GPM per MIG instance (GPU instance 1): NVML scopes SM and DRAM activity to the instance.
	f.gpus[0].migGPM[1] = map[nvml.GpmMetricId]float64{nvml.GPM_METRIC_SM_UTIL: 33, nvml.GPM_METRIC_DRAM_BW_UTIL: 12.5}
	s := newTestScraper(t, f, f.procRoot, enableAllMetrics)
	s.mustStart(t)
	s.mustScrape(t)
	s.clock.Advance(10 * time.Second)
	f.gpus[0].energyMJ += 2500
	actual := s.mustScrape(t)

	if os.Getenv("UPDATE_GOLDEN") != "" {
		require.NoError(t, golden.WriteMetrics(t, filepath.Join("testdata", "scrape", "expected.yaml"), actual, golden.SkipMetricTimestampNormalization()))
	}
	expected, err := golden.ReadMetrics(filepath.Join("testdata", "scrape", "expected.yaml"))
	require.NoError(t, err)
	// The golden writer sorts data points; the receiver emits them in GPU order.
	require.NoError(t, pmetrictest.CompareMetrics(expected, actual, pmetrictest.IgnoreMetricDataPointsOrder()))
}
