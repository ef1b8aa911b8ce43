//go:build cgo

package nvmlreceiver // import "github.com/otelcol-vllm/otelcol-vllm/receiver/nvmlreceiver"

import (
	"context"
	"math"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/otelcol-vllm/otelcol-vllm/receiver/nvmlreceiver/internal/metadata"
)

// The collect_*.go files read one domain each (utilization, memory, power, field-value counters, clocks,
// health, processes, GPM); mig.go keeps the MIG instance list and pods.go the pod attribution.

// scrapeGPU records every enabled metric of one physical GPU and of its MIG instances.
func (s *nvmlScraper) scrapeGPU(d *gpuDevice, ts pcommon.Timestamp, pods *podMapping) {
	m := &s.cfg.Metrics
	s.refreshMIG(d)
	s.applyPods(d, pods)
	var health gpuHealth
	if d.selected && !d.lost {
		s.collectUtilization(d, ts)
		s.collectMemory(d, ts)
		s.collectPower(d, ts)
		s.collectEnergy(d, ts)
		s.collectTemperatureAndCounters(d, ts)
		s.collectPCIeReplays(d, ts)
		s.collectClocks(d, ts)
		if m.NvidiaGpuClockEventActive.Enabled || m.HwStatus.Enabled {
			s.collectClockEvents(d, ts, &health)
		}
		s.collectECC(d, ts)
		if m.NvidiaGpuRemappedRows.Enabled || m.HwStatus.Enabled {
			s.collectRemappedRows(d, ts, &health)
		}
		if !d.migEnabled { // with MIG on, processes and GPM are reported per instance
			s.collectGPM(d, ts)
			s.collectProcesses(d, ts)
			s.collectProcessUtilization(d, ts)
		}
	}
	if d.selected {
		s.recordAllocations(d, ts)
	}
	for _, mig := range d.migOrder {
		if mig.lost {
			break
		}
		s.applyPods(mig, pods)
		s.collectMemory(mig, ts)
		s.collectGPM(mig, ts)
		s.collectProcesses(mig, ts)
		s.recordAllocations(mig, ts)
	}
	if d.selected && m.HwStatus.Enabled {
		s.recordStatus(d, ts, health)
	}
}

// withStart is the one place a point gets a start time other than the receiver's start: the counters NVML
// keeps (energy, ECC, PCIe, NVLink, throttle time, XIDs) start when the receiver attached or when the counter
// last went backwards. mdatagen's builder has a single start time for all points, set through Reset, so this
// sets it for the points recorded by record and puts the shared gauge start time back.
func (s *nvmlScraper) withStart(start pcommon.Timestamp, record func()) {
	s.mb.Reset(metadata.WithStartTime(start))
	record()
	s.mb.Reset(metadata.WithStartTime(s.gaugeStart))
}

func (s *nvmlScraper) recordXID(ts pcommon.Timestamp) {
	s.withStart(s.xid.start, func() {
		s.xid.snapshot(func(d *gpuDevice, xid uint64, n int64) {
			s.mb.RecordNvidiaGpuXidErrorsDataPoint(ts, n, d.uuid, d.name, nvidiaVendor, d.model, s.driverVersion, d.index, clampInt64(xid), d.opts...)
		})
	})
}

// countFailure feeds the failed-calls telemetry; attribute sets are cached (calls × error codes is small).
func (s *nvmlScraper) countFailure(call string, ret nvml.Return) {
	if s.telemetry == nil {
		return
	}
	key := warnKey{call: call, ret: ret}
	set, ok := s.failureAttrs[key]
	if !ok {
		set = metric.WithAttributeSet(attribute.NewSet(attribute.String("call", call), attribute.String("error", returnName(ret))))
		s.failureAttrs[key] = set
	}
	s.telemetry.ReceiverNvmlFailedCalls.Add(context.Background(), 1, set)
}

func clampInt64(v uint64) int64 {
	if v > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(v)
}
