//go:build cgo

package nvmlreceiver // import "github.com/otelcol-vllm/otelcol-vllm/receiver/nvmlreceiver"

import (
	"github.com/otelcol-vllm/otelcol-vllm/receiver/nvmlreceiver/internal/metadata"
	"go.opentelemetry.io/collector/pdata/pcommon"
)

func (s *nvmlScraper) collectPower(d *gpuDevice, ts pcommon.Timestamp) {
	m := &s.cfg.Metrics
	if m.HwPower.Enabled && s.syms.has(fnDeviceGetPowerUsage) && d.supports(featPower) {
		mw, ret := d.handle.GetPowerUsage()
		if s.usable(d, featPower, "nvmlDeviceGetPowerUsage", ret) {
			s.mb.RecordHwPowerDataPoint(ts, float64(mw)/1000, d.uuid, d.name, nvidiaVendor, d.model, s.driverVersion, d.index,
				metadata.AttributeHwTypeGpu, d.opts...)
		}
	}
	if m.NvidiaGpuPowerLimit.Enabled && s.syms.has(fnDeviceGetEnforcedPowerLimit) && d.supports(featPowerLimit) {
		mw, ret := d.handle.GetEnforcedPowerLimit()
		if s.usable(d, featPowerLimit, "nvmlDeviceGetEnforcedPowerLimit", ret) {
			s.mb.RecordNvidiaGpuPowerLimitDataPoint(ts, float64(mw)/1000, d.uuid, d.name, nvidiaVendor, d.model, s.driverVersion, d.index, d.opts...)
		}
	}
}

func (s *nvmlScraper) collectEnergy(d *gpuDevice, ts pcommon.Timestamp) {
	if !s.cfg.Metrics.HwEnergy.Enabled || !s.syms.has(fnDeviceGetTotalEnergyConsumption) || !d.supports(featEnergy) {
		return
	}
	mj, ret := d.handle.GetTotalEnergyConsumption()
	if !s.usable(d, featEnergy, "nvmlDeviceGetTotalEnergyConsumption", ret) {
		return
	}
	joules := float64(mj) / 1000
	start := d.energy.observe(joules, ts, s.attachedAt)
	s.withStart(start, func() {
		s.mb.RecordHwEnergyDataPoint(ts, joules, d.uuid, d.name, nvidiaVendor, d.model, s.driverVersion, d.index, metadata.AttributeHwTypeGpu, d.opts...)
	})
}
