//go:build cgo

package nvmlreceiver // import "github.com/otelcol-vllm/otelcol-vllm/receiver/nvmlreceiver"

import (
	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/otelcol-vllm/otelcol-vllm/receiver/nvmlreceiver/internal/metadata"
	"go.opentelemetry.io/collector/pdata/pcommon"
) // hwSlowdownReasons are the clock events that mean the hardware protects itself; hw.status reports degraded
// while one is active.
const hwSlowdownReasons = nvml.ClocksThrottleReasonHwSlowdown | nvml.ClocksThrottleReasonHwThermalSlowdown |
	nvml.ClocksThrottleReasonHwPowerBrakeSlowdown

var clockEventReasons = []struct {
	bit    uint64
	reason metadata.AttributeNvidiaGpuClockEventReason
}{
	{nvml.ClocksEventReasonGpuIdle, metadata.AttributeNvidiaGpuClockEventReasonGpuIdle},
	{nvml.ClocksEventReasonApplicationsClocksSetting, metadata.AttributeNvidiaGpuClockEventReasonApplicationsClocksSetting},
	{nvml.ClocksEventReasonSwPowerCap, metadata.AttributeNvidiaGpuClockEventReasonSwPowerCap},
	{nvml.ClocksThrottleReasonHwSlowdown, metadata.AttributeNvidiaGpuClockEventReasonHwSlowdown},
	{nvml.ClocksEventReasonSyncBoost, metadata.AttributeNvidiaGpuClockEventReasonSyncBoost},
	{nvml.ClocksEventReasonSwThermalSlowdown, metadata.AttributeNvidiaGpuClockEventReasonSwThermalSlowdown},
	{nvml.ClocksThrottleReasonHwThermalSlowdown, metadata.AttributeNvidiaGpuClockEventReasonHwThermalSlowdown},
	{nvml.ClocksThrottleReasonHwPowerBrakeSlowdown, metadata.AttributeNvidiaGpuClockEventReasonHwPowerBrakeSlowdown},
	{nvml.ClocksEventReasonDisplayClockSetting, metadata.AttributeNvidiaGpuClockEventReasonDisplayClockSetting},
	{nvml.ClocksEventReasonBoardLimit, metadata.AttributeNvidiaGpuClockEventReasonBoardLimit},
	{nvml.ClocksEventReasonReliability, metadata.AttributeNvidiaGpuClockEventReasonReliability},
}

var allClockEventReasons = func() uint64 {
	var all uint64
	for _, r := range clockEventReasons {
		all |= r.bit
	}
	return all
}()

var clocks = []struct {
	typ     nvml.ClockType
	feature feature
	attr    metadata.AttributeNvidiaGpuClockType
}{
	{nvml.CLOCK_GRAPHICS, featClockGraphics, metadata.AttributeNvidiaGpuClockTypeGraphics},
	{nvml.CLOCK_SM, featClockSM, metadata.AttributeNvidiaGpuClockTypeSm},
	{nvml.CLOCK_MEM, featClockMemory, metadata.AttributeNvidiaGpuClockTypeMemory},
}

func (s *nvmlScraper) collectClocks(d *gpuDevice, ts pcommon.Timestamp) {
	if !s.cfg.Metrics.NvidiaGpuClockFrequency.Enabled || !s.syms.has(fnDeviceGetClockInfo) {
		return
	}
	for _, c := range clocks {
		if !d.supports(c.feature) {
			continue
		}
		mhz, ret := d.handle.GetClockInfo(c.typ)
		if s.usable(d, c.feature, "nvmlDeviceGetClockInfo", ret) {
			s.mb.RecordNvidiaGpuClockFrequencyDataPoint(ts, int64(mhz)*1_000_000, d.uuid, d.name, nvidiaVendor, d.model,
				s.driverVersion, d.index, c.attr, d.opts...)
		}
	}
}

func (s *nvmlScraper) collectClockEvents(d *gpuDevice, ts pcommon.Timestamp, health *gpuHealth) {
	if !d.supports(featClockEvents) {
		return
	}
	var (
		reasons uint64
		ret     nvml.Return
		call    string
	)
	switch {
	case s.syms.has(fnDeviceGetCurrentClocksEventReasons):
		call = "nvmlDeviceGetCurrentClocksEventReasons"
		reasons, ret = d.handle.GetCurrentClocksEventReasons()
	case s.syms.has(fnDeviceGetCurrentClocksThrottleReasons): // drivers before R535
		call = "nvmlDeviceGetCurrentClocksThrottleReasons"
		reasons, ret = d.handle.GetCurrentClocksThrottleReasons()
	default:
		return
	}
	if !s.usable(d, featClockEvents, call, ret) {
		return
	}
	health.reasons = reasons
	if !s.cfg.Metrics.NvidiaGpuClockEventActive.Enabled {
		return
	}
	supported := s.supportedClockEvents(d)
	for _, r := range clockEventReasons {
		if supported&r.bit == 0 {
			continue
		}
		var active int64
		if reasons&r.bit != 0 {
			active = 1
		}
		s.mb.RecordNvidiaGpuClockEventActiveDataPoint(ts, active, d.uuid, d.name, nvidiaVendor, d.model, s.driverVersion, d.index, r.reason, d.opts...)
	}
}

// supportedClockEvents asks once which reasons the GPU can report; all known reasons when it cannot say.
func (s *nvmlScraper) supportedClockEvents(d *gpuDevice) uint64 {
	if d.supportedClockEventsResolved {
		return d.supportedClockEvents
	}
	mask, ret, call := uint64(0), nvml.ERROR_NOT_SUPPORTED, ""
	switch {
	case s.syms.has(fnDeviceGetSupportedClocksEventReasons):
		call = "nvmlDeviceGetSupportedClocksEventReasons"
		mask, ret = d.handle.GetSupportedClocksEventReasons()
	case s.syms.has(fnDeviceGetSupportedClocksThrottleReasons):
		call = "nvmlDeviceGetSupportedClocksThrottleReasons"
		mask, ret = d.handle.GetSupportedClocksThrottleReasons()
	}
	switch {
	case ret == nvml.SUCCESS:
		d.supportedClockEvents = mask & allClockEventReasons
	case ret == nvml.ERROR_GPU_IS_LOST || ret == nvml.ERROR_RESET_REQUIRED:
		s.markLost(d, call, ret)
		return 0
	default:
		if call != "" {
			s.disable(d, featSupportedClockEvents, call, ret)
		}
		d.supportedClockEvents = allClockEventReasons
	}
	d.supportedClockEventsResolved = true
	return d.supportedClockEvents
}
