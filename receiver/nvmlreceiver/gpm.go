//go:build cgo

package nvmlreceiver // import "github.com/otelcol-vllm/otelcol-vllm/receiver/nvmlreceiver"

import (
	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.uber.org/zap"

	"github.com/otelcol-vllm/otelcol-vllm/receiver/nvmlreceiver/internal/metadata"
)

// GPU Performance Monitoring (GPM, NVML R520+, Hopper and later) gives the activity figures dcgm-exporter's
// profiling fields need DCGM and SYS_ADMIN for. Each scrape takes one GPM sample per device; the metrics are
// the averages between the previous scrape's sample and this one, so the first scrape of a device reports none.

type gpmKind uint8

const (
	gpmGraphics gpmKind = iota
	gpmSM
	gpmSMOccupancy
	gpmPipe
	gpmDRAM
	gpmPCIe
	gpmNVLink
)

type gpmMetric struct {
	id   nvml.GpmMetricId
	kind gpmKind
	pipe metadata.AttributeNvidiaGpuPipe
	dir  metadata.AttributeNetworkIoDirection
}

// gpmMetrics are requested in one nvmlGpmMetricsGet call. Utilizations are percentages; bandwidths MiB/s.
var gpmMetrics = [...]gpmMetric{
	{id: nvml.GPM_METRIC_GRAPHICS_UTIL, kind: gpmGraphics},
	{id: nvml.GPM_METRIC_SM_UTIL, kind: gpmSM},
	{id: nvml.GPM_METRIC_SM_OCCUPANCY, kind: gpmSMOccupancy},
	{id: nvml.GPM_METRIC_ANY_TENSOR_UTIL, kind: gpmPipe, pipe: metadata.AttributeNvidiaGpuPipeTensor},
	{id: nvml.GPM_METRIC_FP64_UTIL, kind: gpmPipe, pipe: metadata.AttributeNvidiaGpuPipeFp64},
	{id: nvml.GPM_METRIC_FP32_UTIL, kind: gpmPipe, pipe: metadata.AttributeNvidiaGpuPipeFp32},
	{id: nvml.GPM_METRIC_FP16_UTIL, kind: gpmPipe, pipe: metadata.AttributeNvidiaGpuPipeFp16},
	{id: nvml.GPM_METRIC_DRAM_BW_UTIL, kind: gpmDRAM},
	{id: nvml.GPM_METRIC_PCIE_TX_PER_SEC, kind: gpmPCIe, dir: metadata.AttributeNetworkIoDirectionTransmit},
	{id: nvml.GPM_METRIC_PCIE_RX_PER_SEC, kind: gpmPCIe, dir: metadata.AttributeNetworkIoDirectionReceive},
	{id: nvml.GPM_METRIC_NVLINK_TOTAL_TX_PER_SEC, kind: gpmNVLink, dir: metadata.AttributeNetworkIoDirectionTransmit},
	{id: nvml.GPM_METRIC_NVLINK_TOTAL_RX_PER_SEC, kind: gpmNVLink, dir: metadata.AttributeNetworkIoDirectionReceive},
}

var gpmFuncs = []nvmlFunc{fnGpmQueryDeviceSupport, fnGpmSampleAlloc, fnGpmSampleFree, fnGpmSampleGet, fnGpmMetricsGet}

const mebibyte = 1 << 20

// gpmState is one device's pair of GPM samples: cur is filled this scrape, the other holds the previous one.
type gpmState struct {
	resolved bool // support was asked
	samples  [2]nvml.GpmSample
	cur      int
	havePrev bool
	req      *nvml.GpmMetricsGetType // reused: the request is ~19 KB
}

func (s *nvmlScraper) gpmWanted() bool {
	m := &s.cfg.Metrics
	return m.NvidiaGpuGraphicsEngineActivity.Enabled || m.NvidiaGpuSmActivity.Enabled || m.NvidiaGpuSmOccupancy.Enabled ||
		m.NvidiaGpuPipeActivity.Enabled || m.NvidiaGpuDramActivity.Enabled || m.NvidiaGpuPcieBandwidth.Enabled ||
		m.NvidiaGpuNvlinkBandwidth.Enabled
}

// collectGPM samples a GPU, or a MIG instance through its parent, and records the averages since the last sample.
func (s *nvmlScraper) collectGPM(d *gpuDevice, ts pcommon.Timestamp) {
	if !s.gpmAvailable || !d.supports(featGPM) {
		return
	}
	gpu := d.physical()
	if d.parent != nil && (d.gpuInstanceID < 0 || !s.syms.has(fnGpmMigSampleGet) || gpu.unsupported[featGPM]) {
		return
	}
	g := &d.gpm
	if !g.resolved {
		g.resolved = true
		if d.parent == nil {
			support, ret := s.lib.GpmQueryDeviceSupport(d.handle)
			if !s.usable(d, featGPM, "nvmlGpmQueryDeviceSupport", ret) {
				return
			}
			if support.IsSupportedDevice == 0 {
				s.disable(d, featGPM, "nvmlGpmQueryDeviceSupport", nvml.ERROR_NOT_SUPPORTED)
				return
			}
		}
		for i := range g.samples {
			sample, ret := s.lib.GpmSampleAlloc()
			if !s.usable(d, featGPM, "nvmlGpmSampleAlloc", ret) {
				s.freeGPM(d)
				return
			}
			g.samples[i] = sample
		}
		g.req = &nvml.GpmMetricsGetType{NumMetrics: uint32(len(gpmMetrics))}
	}
	if g.samples[1] == nil {
		return
	}
	var ret nvml.Return
	call := "nvmlGpmSampleGet"
	if d.parent != nil {
		call = "nvmlGpmMigSampleGet"
		ret = gpu.handle.GpmMigSampleGet(d.gpuInstanceID, g.samples[g.cur])
	} else {
		ret = d.handle.GpmSampleGet(g.samples[g.cur])
	}
	if !s.usable(d, featGPM, call, ret) {
		g.havePrev = false
		if d.unsupported[featGPM] {
			s.freeGPM(d)
		}
		return
	}
	prev := 1 - g.cur
	defer func() { g.cur, g.havePrev = prev, true }()
	if !g.havePrev {
		return
	}
	req := g.req
	req.NumMetrics = uint32(len(gpmMetrics))
	req.Sample1, req.Sample2 = g.samples[prev], g.samples[g.cur]
	for i := range gpmMetrics {
		req.Metrics[i] = nvml.GpmMetric{MetricId: uint32(gpmMetrics[i].id)}
	}
	if !s.usable(d, featGPM, "nvmlGpmMetricsGet", s.lib.GpmMetricsGet(req)) {
		if d.unsupported[featGPM] {
			s.freeGPM(d)
		}
		return
	}
	for i := range gpmMetrics {
		res := &req.Metrics[i]
		if nvml.Return(res.NvmlReturn) != nvml.SUCCESS || res.MetricId != uint32(gpmMetrics[i].id) {
			continue // e.g. NVLink on a PCIe card, or a metric MIG does not scope
		}
		s.recordGPM(d, ts, &gpmMetrics[i], res.Value)
	}
}

func (s *nvmlScraper) recordGPM(d *gpuDevice, ts pcommon.Timestamp, m *gpmMetric, v float64) {
	if v < 0 {
		return
	}
	ratio := min(v/100, 1)
	switch m.kind {
	case gpmGraphics:
		s.mb.RecordNvidiaGpuGraphicsEngineActivityDataPoint(ts, ratio, d.uuid, d.name, nvidiaVendor, d.model, s.driverVersion, d.index, d.opts...)
	case gpmSM:
		s.mb.RecordNvidiaGpuSmActivityDataPoint(ts, ratio, d.uuid, d.name, nvidiaVendor, d.model, s.driverVersion, d.index, d.opts...)
	case gpmSMOccupancy:
		s.mb.RecordNvidiaGpuSmOccupancyDataPoint(ts, ratio, d.uuid, d.name, nvidiaVendor, d.model, s.driverVersion, d.index, d.opts...)
	case gpmPipe:
		s.mb.RecordNvidiaGpuPipeActivityDataPoint(ts, ratio, d.uuid, d.name, nvidiaVendor, d.model, s.driverVersion, d.index, m.pipe, d.opts...)
	case gpmDRAM:
		s.mb.RecordNvidiaGpuDramActivityDataPoint(ts, ratio, d.uuid, d.name, nvidiaVendor, d.model, s.driverVersion, d.index, d.opts...)
	case gpmPCIe:
		s.mb.RecordNvidiaGpuPcieBandwidthDataPoint(ts, v*mebibyte, d.uuid, d.name, nvidiaVendor, d.model, s.driverVersion, d.index, m.dir, d.opts...)
	case gpmNVLink:
		s.mb.RecordNvidiaGpuNvlinkBandwidthDataPoint(ts, v*mebibyte, d.uuid, d.name, nvidiaVendor, d.model, s.driverVersion, d.index, m.dir, d.opts...)
	}
}

// freeGPM hands a device's GPM samples back to NVML.
func (s *nvmlScraper) freeGPM(d *gpuDevice) {
	g := &d.gpm
	for i, sample := range g.samples {
		if sample == nil {
			continue
		}
		if ret := s.lib.GpmSampleFree(sample); ret != nvml.SUCCESS {
			s.logger.Debug("nvmlGpmSampleFree failed", d.logFields(zap.String("nvml_error", returnName(ret)))...)
		}
		g.samples[i] = nil
	}
	g.havePrev = false
}
