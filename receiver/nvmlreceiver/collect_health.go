//go:build cgo

package nvmlreceiver // import "github.com/otelcol-vllm/otelcol-vllm/receiver/nvmlreceiver"

import (
	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/otelcol-vllm/otelcol-vllm/receiver/nvmlreceiver/internal/metadata" // gpuHealth gathers what hw.status is derived from during one scrape.
	"go.opentelemetry.io/collector/pdata/pcommon"
)

type gpuHealth struct {
	reasons      uint64
	remapPending bool
	remapFailure bool
}

func (s *nvmlScraper) recordStatus(d *gpuDevice, ts pcommon.Timestamp, h gpuHealth) {
	state := metadata.AttributeHwStateOk
	switch {
	case d.lost:
		state = metadata.AttributeHwStateFailed
	case h.reasons&hwSlowdownReasons != 0 || h.remapPending || h.remapFailure:
		state = metadata.AttributeHwStateDegraded
	}
	for _, st := range []metadata.AttributeHwState{metadata.AttributeHwStateOk, metadata.AttributeHwStateDegraded, metadata.AttributeHwStateFailed} {
		var v int64
		if st == state {
			v = 1
		}
		s.mb.RecordHwStatusDataPoint(ts, v, d.uuid, d.name, nvidiaVendor, d.model, s.driverVersion, d.index,
			metadata.AttributeHwTypeGpu, st, d.opts...)
	}
}

func (s *nvmlScraper) collectECC(d *gpuDevice, ts pcommon.Timestamp) {
	if !s.cfg.Metrics.HwErrors.Enabled || !s.syms.has(fnDeviceGetTotalEccErrors) || !d.supports(featECC) {
		return
	}
	corrected, ret := d.handle.GetTotalEccErrors(nvml.MEMORY_ERROR_TYPE_CORRECTED, nvml.VOLATILE_ECC)
	if !s.usable(d, featECC, "nvmlDeviceGetTotalEccErrors", ret) {
		return
	}
	uncorrected, ret := d.handle.GetTotalEccErrors(nvml.MEMORY_ERROR_TYPE_UNCORRECTED, nvml.VOLATILE_ECC)
	if !s.usable(d, featECC, "nvmlDeviceGetTotalEccErrors", ret) {
		return
	}
	for _, e := range []struct {
		value   uint64
		counter *cumulative[uint64]
		attr    metadata.AttributeErrorType
	}{
		{corrected, &d.eccCorrected, metadata.AttributeErrorTypeCorrected},
		{uncorrected, &d.eccUncorrected, metadata.AttributeErrorTypeUncorrected},
	} {
		start := e.counter.observe(e.value, ts, s.attachedAt)
		s.withStart(start, func() {
			s.mb.RecordHwErrorsDataPoint(ts, clampInt64(e.value), d.uuid, d.name, nvidiaVendor, d.model, s.driverVersion, d.index,
				metadata.AttributeHwTypeGpu, e.attr, d.opts...)
		})
	}
}

func (s *nvmlScraper) collectRemappedRows(d *gpuDevice, ts pcommon.Timestamp, health *gpuHealth) {
	if !s.syms.has(fnDeviceGetRemappedRows) || !d.supports(featRemappedRows) {
		return
	}
	correctable, uncorrectable, pending, failure, ret := d.handle.GetRemappedRows()
	if !s.usable(d, featRemappedRows, "nvmlDeviceGetRemappedRows", ret) {
		return
	}
	health.remapPending, health.remapFailure = pending, failure
	if !s.cfg.Metrics.NvidiaGpuRemappedRows.Enabled {
		return
	}
	for i, r := range []struct {
		rows int
		attr metadata.AttributeNvidiaGpuRemapCause
	}{
		{correctable, metadata.AttributeNvidiaGpuRemapCauseCorrectable},
		{uncorrectable, metadata.AttributeNvidiaGpuRemapCauseUncorrectable},
	} {
		if r.rows < 0 {
			continue
		}
		start := d.remapped[i].observe(uint64(r.rows), ts, s.attachedAt)
		s.withStart(start, func() {
			s.mb.RecordNvidiaGpuRemappedRowsDataPoint(ts, int64(r.rows), d.uuid, d.name, nvidiaVendor, d.model, s.driverVersion, d.index, r.attr, d.opts...)
		})
	}
}
