//go:build cgo

package nvmlreceiver // import "github.com/otelcol-vllm/otelcol-vllm/receiver/nvmlreceiver"

import (
	"cmp"
	"math"
	"slices"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.uber.org/zap"
)

func (s *nvmlScraper) collectProcesses(d *gpuDevice, ts pcommon.Timestamp) {
	if !s.cfg.Metrics.NvidiaGpuProcessMemoryUsage.Enabled || !s.syms.has(fnDeviceGetComputeRunningProcesses) || !d.supports(featProcesses) {
		return
	}
	procs, ret := d.handle.GetComputeRunningProcesses()
	if !s.usable(d, featProcesses, "nvmlDeviceGetComputeRunningProcesses", ret) {
		return
	}
	reported := 0
	for _, p := range procs {
		if p.UsedGpuMemory == math.MaxUint64 { // NVML_VALUE_NOT_AVAILABLE
			continue
		}
		if reported == maxProcessesPerDevice {
			if !d.warnedProcessCap {
				d.warnedProcessCap = true
				s.logger.Warn("more GPU processes than the per-device limit; the rest are not reported",
					d.logFields(zap.Int("limit", maxProcessesPerDevice), zap.Int("processes", len(procs)))...)
			}
			break
		}
		reported++
		s.mb.RecordNvidiaGpuProcessMemoryUsageDataPoint(ts, clampInt64(p.UsedGpuMemory), d.uuid, d.name, nvidiaVendor, d.model,
			s.driverVersion, d.index, int64(p.Pid), s.procs.name(p.Pid), d.opts...)
	}
}

func (s *nvmlScraper) collectProcessUtilization(d *gpuDevice, ts pcommon.Timestamp) {
	if !s.cfg.Metrics.NvidiaGpuProcessUtilization.Enabled || !s.syms.has(fnDeviceGetProcessUtilization) || !d.supports(featProcessUtilization) {
		return
	}
	samples, ret := d.handle.GetProcessUtilization(d.processUtilLastSeen)
	if ret == nvml.ERROR_NOT_FOUND { // no sample since the last scrape
		return
	}
	if !s.usable(d, featProcessUtilization, "nvmlDeviceGetProcessUtilization", ret) {
		return
	}
	slices.SortFunc(samples, func(a, b nvml.ProcessUtilizationSample) int { return cmp.Compare(a.Pid, b.Pid) })
	reported := 0
	for i := 0; i < len(samples); {
		pid := samples[i].Pid
		var sum float64
		n := 0
		for ; i < len(samples) && samples[i].Pid == pid; i++ {
			if samples[i].TimeStamp <= d.processUtilLastSeen {
				continue
			}
			sum += float64(samples[i].SmUtil)
			n++
		}
		if n == 0 || reported == maxProcessesPerDevice {
			continue
		}
		reported++
		s.mb.RecordNvidiaGpuProcessUtilizationDataPoint(ts, sum/float64(n)/100, d.uuid, d.name, nvidiaVendor, d.model,
			s.driverVersion, d.index, int64(pid), s.procs.name(pid), d.opts...)
	}
	for _, smp := range samples {
		d.processUtilLastSeen = max(d.processUtilLastSeen, smp.TimeStamp)
	}
}
