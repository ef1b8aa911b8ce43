package vllmconnector

import (
	"os"

	"github.com/open-telemetry/opentelemetry-collector-contrib/pkg/golden"
	"github.com/open-telemetry/opentelemetry-collector-contrib/pkg/pdatatest/pmetrictest"
	"go.opentelemetry.io/collector/pdata/pmetric"
)

// comparePMetrics compares metrics regardless of order and of the wall-clock timestamps.
func comparePMetrics(expected, actual pmetric.Metrics) error {
	return pmetrictest.CompareMetrics(expected, actual,
		pmetrictest.IgnoreTimestamp(), pmetrictest.IgnoreStartTimestamp(),
		pmetrictest.IgnoreResourceMetricsOrder(), pmetrictest.IgnoreMetricsOrder(),
		pmetrictest.IgnoreMetricDataPointsOrder())
}

// updateGolden rewrites a golden file when UPDATE_GOLDEN=1; review the diff before committing it.
func updateGolden(path string, md pmetric.Metrics) error {
	if os.Getenv("UPDATE_GOLDEN") != "1" {
		return nil
	}
	return golden.WriteMetricsToFile(path, md)
}
