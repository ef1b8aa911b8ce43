//go:build cgo

package nvmlreceiver // import "github.com/otelcol-vllm/otelcol-vllm/receiver/nvmlreceiver"

import (
	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/otelcol-vllm/otelcol-vllm/receiver/nvmlreceiver/internal/metadata"
	"go.opentelemetry.io/collector/pdata/pcommon"
)

func (s *nvmlScraper) collectUtilization(d *gpuDevice, ts pcommon.Timestamp) {
	m := &s.cfg.Metrics
	var rates instantRates
	if m.HwGpuUtilization.Enabled {
		for _, k := range []struct {
			kind utilKind
			task metadata.AttributeHwGpuTask
		}{
			{utilGeneral, metadata.AttributeHwGpuTaskGeneral},
			{utilEncoder, metadata.AttributeHwGpuTaskEncoder},
			{utilDecoder, metadata.AttributeHwGpuTaskDecoder},
		} {
			if v, ok := s.utilization(d, k.kind, &rates); ok {
				s.mb.RecordHwGpuUtilizationDataPoint(ts, v, d.uuid, d.name, nvidiaVendor, d.model, s.driverVersion, d.index, k.task, d.opts...)
			}
		}
	}
	if m.NvidiaGpuMemoryBandwidthUtilization.Enabled {
		if v, ok := s.utilization(d, utilMemoryBandwidth, &rates); ok {
			s.mb.RecordNvidiaGpuMemoryBandwidthUtilizationDataPoint(ts, v, d.uuid, d.name, nvidiaVendor, d.model, s.driverVersion, d.index, d.opts...)
		}
	}
}

// instantRates caches nvmlDeviceGetUtilizationRates within one scrape of one GPU (it serves two series).
type instantRates struct {
	fetched bool
	ok      bool
	rates   nvml.Utilization
}

// utilization returns a busy fraction (0–1): the time-weighted mean of NVML's samples since the last scrape,
// or the instantaneous rate when there are none. A failed sampling call is a failure of the scrape only when
// the instantaneous rate cannot stand in for it.
func (s *nvmlScraper) utilization(d *gpuDevice, k utilKind, rates *instantRates) (float64, bool) {
	v, ok, sampleErr := s.utilizationValue(d, k, rates)
	if !ok && sampleErr != nvml.SUCCESS {
		s.scrapeFailed(d, "nvmlDeviceGetSamples", sampleErr)
	}
	return v, ok
}

// utilizationValue is utilization; sampleErr is the transient failure of nvmlDeviceGetSamples, if any.
func (s *nvmlScraper) utilizationValue(d *gpuDevice, k utilKind, rates *instantRates) (_ float64, _ bool, sampleErr nvml.Return) {
	sampleErr = nvml.SUCCESS
	if f := utilSampleFeature[k]; s.syms.has(fnDeviceGetSamples) && d.supports(f) {
		vt, samples, ret := d.handle.GetSamples(utilSamplingType[k], d.lastSampleTime[k])
		switch {
		case ret == nvml.SUCCESS:
			mean, newest, ok := timeWeightedMean(vt, samples, d.lastSampleTime[k])
			d.lastSampleTime[k] = newest
			if ok {
				return mean / 100, true, sampleErr
			}
		case ret == nvml.ERROR_NOT_FOUND: // no sample since the last scrape
		default:
			if _, transient := s.classify(d, f, "nvmlDeviceGetSamples", ret); transient {
				sampleErr = ret
			}
		}
	}
	switch k {
	case utilEncoder:
		if s.syms.has(fnDeviceGetEncoderUtilization) && d.supports(featEncoderUtilization) {
			v, _, ret := d.handle.GetEncoderUtilization()
			if s.usable(d, featEncoderUtilization, "nvmlDeviceGetEncoderUtilization", ret) {
				return float64(v) / 100, true, sampleErr
			}
		}
	case utilDecoder:
		if s.syms.has(fnDeviceGetDecoderUtilization) && d.supports(featDecoderUtilization) {
			v, _, ret := d.handle.GetDecoderUtilization()
			if s.usable(d, featDecoderUtilization, "nvmlDeviceGetDecoderUtilization", ret) {
				return float64(v) / 100, true, sampleErr
			}
		}
	default:
		if !rates.fetched && s.syms.has(fnDeviceGetUtilizationRates) && d.supports(featUtilizationRates) {
			rates.fetched = true
			var ret nvml.Return
			rates.rates, ret = d.handle.GetUtilizationRates()
			rates.ok = s.usable(d, featUtilizationRates, "nvmlDeviceGetUtilizationRates", ret)
		}
		if rates.ok {
			if k == utilMemoryBandwidth {
				return float64(rates.rates.Memory) / 100, true, sampleErr
			}
			return float64(rates.rates.Gpu) / 100, true, sampleErr
		}
	}
	return 0, false, sampleErr
}
