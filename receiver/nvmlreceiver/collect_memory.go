//go:build cgo

package nvmlreceiver // import "github.com/otelcol-vllm/otelcol-vllm/receiver/nvmlreceiver"

import "go.opentelemetry.io/collector/pdata/pcommon"

func (s *nvmlScraper) collectMemory(d *gpuDevice, ts pcommon.Timestamp) {
	m := &s.cfg.Metrics
	if !m.HwGpuMemoryUsage.Enabled && !m.HwGpuMemoryLimit.Enabled && !m.HwGpuMemoryUtilization.Enabled &&
		!m.NvidiaGpuMemoryReserved.Enabled {
		return
	}
	var total, used uint64
	found := false
	if s.syms.has(fnDeviceGetMemoryInfoV2) && d.supports(featMemoryV2) {
		mem, ret := d.handle.GetMemoryInfo_v2()
		if s.usable(d, featMemoryV2, "nvmlDeviceGetMemoryInfo_v2", ret) {
			total, used, found = mem.Total, mem.Used, true
			// Only v2 separates the driver's reservation; v1 counts it in Used.
			s.mb.RecordNvidiaGpuMemoryReservedDataPoint(ts, clampInt64(mem.Reserved), d.uuid, d.name, nvidiaVendor, d.model,
				s.driverVersion, d.index, d.opts...)
		}
	}
	if !found && s.syms.has(fnDeviceGetMemoryInfo) && d.supports(featMemory) {
		mem, ret := d.handle.GetMemoryInfo()
		if s.usable(d, featMemory, "nvmlDeviceGetMemoryInfo", ret) {
			total, used, found = mem.Total, mem.Used, true
		}
	}
	if !found {
		return
	}
	usage, limit := clampInt64(used), clampInt64(total)
	s.mb.RecordHwGpuMemoryUsageDataPoint(ts, usage, d.uuid, d.name, nvidiaVendor, d.model, s.driverVersion, d.index, d.opts...)
	s.mb.RecordHwGpuMemoryLimitDataPoint(ts, limit, d.uuid, d.name, nvidiaVendor, d.model, s.driverVersion, d.index, d.opts...)
	if total > 0 {
		s.mb.RecordHwGpuMemoryUtilizationDataPoint(ts, float64(used)/float64(total), d.uuid, d.name, nvidiaVendor, d.model,
			s.driverVersion, d.index, d.opts...)
	}
}
