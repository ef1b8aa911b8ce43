//go:build cgo

package nvmlreceiver // import "github.com/otelcol-vllm/otelcol-vllm/receiver/nvmlreceiver"

import (
	"math"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"go.opentelemetry.io/collector/pdata/pcommon"

	"github.com/otelcol-vllm/otelcol-vllm/receiver/nvmlreceiver/internal/metadata"
)

type counterKind uint8

const (
	counterNVLinkIO counterKind = iota
	counterNVLinkErrors
	counterClockEventDuration
)

// counterField is a cumulative counter read through nvmlDeviceGetFieldValues, batched with the memory
// temperature and PCIe byte counters into one call per GPU and scrape.
type counterField struct {
	id    uint32
	scope uint32 // link for NVLink throughput; math.MaxUint32 sums all links
	kind  counterKind
	// exactly one of these is set, by kind
	direction metadata.AttributeNetworkIoDirection
	nvlinkErr metadata.AttributeNvidiaGpuNvlinkErrorType
	reason    metadata.AttributeNvidiaGpuClockEventReason
}

var counterFields = [...]counterField{
	{id: nvml.FI_DEV_NVLINK_THROUGHPUT_DATA_TX, scope: math.MaxUint32, kind: counterNVLinkIO, direction: metadata.AttributeNetworkIoDirectionTransmit},
	{id: nvml.FI_DEV_NVLINK_THROUGHPUT_DATA_RX, scope: math.MaxUint32, kind: counterNVLinkIO, direction: metadata.AttributeNetworkIoDirectionReceive},
	{id: nvml.FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL, kind: counterNVLinkErrors, nvlinkErr: metadata.AttributeNvidiaGpuNvlinkErrorTypeCrcFlit},
	{id: nvml.FI_DEV_NVLINK_CRC_DATA_ERROR_COUNT_TOTAL, kind: counterNVLinkErrors, nvlinkErr: metadata.AttributeNvidiaGpuNvlinkErrorTypeCrcData},
	{id: nvml.FI_DEV_NVLINK_REPLAY_ERROR_COUNT_TOTAL, kind: counterNVLinkErrors, nvlinkErr: metadata.AttributeNvidiaGpuNvlinkErrorTypeReplay},
	{id: nvml.FI_DEV_NVLINK_RECOVERY_ERROR_COUNT_TOTAL, kind: counterNVLinkErrors, nvlinkErr: metadata.AttributeNvidiaGpuNvlinkErrorTypeRecovery},
	// Clock-event (throttle) durations in ns; the same reasons as nvidia.gpu.clock_event.active.
	{id: nvml.FI_DEV_PERF_POLICY_POWER, kind: counterClockEventDuration, reason: metadata.AttributeNvidiaGpuClockEventReasonSwPowerCap},
	{id: nvml.FI_DEV_PERF_POLICY_SYNC_BOOST, kind: counterClockEventDuration, reason: metadata.AttributeNvidiaGpuClockEventReasonSyncBoost},
	{id: nvml.FI_DEV_PERF_POLICY_BOARD_LIMIT, kind: counterClockEventDuration, reason: metadata.AttributeNvidiaGpuClockEventReasonBoardLimit},
	{id: nvml.FI_DEV_PERF_POLICY_RELIABILITY, kind: counterClockEventDuration, reason: metadata.AttributeNvidiaGpuClockEventReasonReliability},
	{id: nvml.FI_DEV_CLOCKS_EVENT_REASON_SW_THERM_SLOWDOWN, kind: counterClockEventDuration, reason: metadata.AttributeNvidiaGpuClockEventReasonSwThermalSlowdown},
	{id: nvml.FI_DEV_CLOCKS_EVENT_REASON_HW_THERM_SLOWDOWN, kind: counterClockEventDuration, reason: metadata.AttributeNvidiaGpuClockEventReasonHwThermalSlowdown},
	{id: nvml.FI_DEV_CLOCKS_EVENT_REASON_HW_POWER_BRAKE_SLOWDOWN, kind: counterClockEventDuration, reason: metadata.AttributeNvidiaGpuClockEventReasonHwPowerBrakeSlowdown},
}

func (s *nvmlScraper) counterEnabled(k counterKind) bool {
	m := &s.cfg.Metrics
	switch k {
	case counterNVLinkIO:
		return m.NvidiaGpuNvlinkIo.Enabled
	case counterNVLinkErrors:
		return m.NvidiaGpuNvlinkErrors.Enabled
	default:
		return m.NvidiaGpuClockEventDuration.Enabled
	}
}

// collectTemperatureAndCounters reads the GPU temperature and, in one nvmlDeviceGetFieldValues call, the
// memory temperature, PCIe byte counters, NVLink counters and clock-event durations; PCIe traffic falls back to
// integrating the throughput. A field NVML does not support on the device is not asked for again.
func (s *nvmlScraper) collectTemperatureAndCounters(d *gpuDevice, ts pcommon.Timestamp) {
	m := &s.cfg.Metrics
	if m.HwTemperature.Enabled && s.syms.has(fnDeviceGetTemperature) && d.supports(featTemperatureGPU) {
		c, ret := d.handle.GetTemperature(nvml.TEMPERATURE_GPU)
		if s.usable(d, featTemperatureGPU, "nvmlDeviceGetTemperature", ret) {
			s.mb.RecordHwTemperatureDataPoint(ts, float64(c), d.uuid, d.name, nvidiaVendor, d.model, s.driverVersion, d.index,
				metadata.AttributeHwSensorLocationGpu, d.opts...)
		}
	}
	fieldsUsable := s.syms.has(fnDeviceGetFieldValues) && d.supports(featFieldValues)
	wantMemTemp := m.HwTemperature.Enabled && d.supports(featTemperatureMemory)
	wantPCIe := m.HwGpuIo.Enabled && d.supports(featPCIeCounters)
	if !fieldsUsable {
		d.unsupported[featPCIeCounters] = true // fields are the only source of the counters
		wantMemTemp, wantPCIe = false, false
	}
	fields := d.fieldBuf[:0]
	if wantMemTemp {
		fields = append(fields, nvml.FieldValue{FieldId: nvml.FI_DEV_MEMORY_TEMP})
	}
	if wantPCIe {
		fields = append(fields, nvml.FieldValue{FieldId: nvml.FI_DEV_PCIE_COUNT_TX_BYTES}, nvml.FieldValue{FieldId: nvml.FI_DEV_PCIE_COUNT_RX_BYTES})
	}
	if fieldsUsable {
		for i, f := range counterFields {
			if !d.fieldOff[i] && s.counterEnabled(f.kind) {
				fields = append(fields, nvml.FieldValue{FieldId: f.id, ScopeId: f.scope})
			}
		}
	}
	if len(fields) > 0 {
		if s.usable(d, featFieldValues, "nvmlDeviceGetFieldValues", d.handle.GetFieldValues(fields)) {
			s.recordFields(d, ts, fields)
		} else if d.unsupported[featFieldValues] {
			d.unsupported[featPCIeCounters] = true
		}
	}
	if m.HwGpuIo.Enabled && d.unsupported[featPCIeCounters] {
		s.collectPCIeThroughput(d, ts)
	}
}

func counterFieldIndex(id uint32) int {
	for i := range counterFields {
		if counterFields[i].id == id {
			return i
		}
	}
	return -1
}

func (s *nvmlScraper) recordFields(d *gpuDevice, ts pcommon.Timestamp, fields []nvml.FieldValue) {
	var pcie [2]uint64
	pcieOK := 0
	for i := range fields {
		f := &fields[i]
		ret := nvml.Return(f.NvmlReturn)
		switch f.FieldId {
		case nvml.FI_DEV_MEMORY_TEMP:
			if !s.usable(d, featTemperatureMemory, "nvmlDeviceGetFieldValues(NVML_FI_DEV_MEMORY_TEMP)", ret) {
				continue
			}
			if c, ok := decodeValue(nvml.ValueType(f.ValueType), f.Value); ok {
				s.mb.RecordHwTemperatureDataPoint(ts, c, d.uuid, d.name, nvidiaVendor, d.model, s.driverVersion, d.index,
					metadata.AttributeHwSensorLocationMemory, d.opts...)
			}
		case nvml.FI_DEV_PCIE_COUNT_TX_BYTES, nvml.FI_DEV_PCIE_COUNT_RX_BYTES:
			dir := pcieTransmit
			if f.FieldId == nvml.FI_DEV_PCIE_COUNT_RX_BYTES {
				dir = pcieReceive
			}
			if !s.usable(d, featPCIeCounters, "nvmlDeviceGetFieldValues(NVML_FI_DEV_PCIE_COUNT_*_BYTES)", ret) {
				continue
			}
			if v, ok := decodeCounter(nvml.ValueType(f.ValueType), f.Value); ok {
				pcie[dir] = v
				pcieOK++
			}
		default:
			if idx := counterFieldIndex(f.FieldId); idx >= 0 {
				s.recordCounterField(d, ts, idx, ret, f)
			}
		}
	}
	if pcieOK != 2 || d.unsupported[featPCIeCounters] {
		return
	}
	for dir, attr := range []metadata.AttributeNetworkIoDirection{metadata.AttributeNetworkIoDirectionTransmit, metadata.AttributeNetworkIoDirectionReceive} {
		v := pcie[dir]
		start := d.pcieCounter[dir].observe(v, ts, s.attachedAt)
		s.withStart(start, func() {
			s.mb.RecordHwGpuIoDataPoint(ts, clampInt64(v), d.uuid, d.name, nvidiaVendor, d.model, s.driverVersion, d.index, attr, d.opts...)
		})
	}
}

func (s *nvmlScraper) recordCounterField(d *gpuDevice, ts pcommon.Timestamp, idx int, ret nvml.Return, f *nvml.FieldValue) {
	spec := &counterFields[idx]
	switch ret {
	case nvml.SUCCESS:
	case nvml.ERROR_NOT_SUPPORTED, nvml.ERROR_NO_PERMISSION, nvml.ERROR_INVALID_ARGUMENT:
		// NVLink fields on a PCIe card, or a reason the GPU has no counter for: stop asking, quietly (the
		// metric simply has no series for the device).
		d.fieldOff[idx] = true
		s.countFailure("nvmlDeviceGetFieldValues(field)", ret)
		return
	default:
		s.usable(d, featFieldValues, "nvmlDeviceGetFieldValues(field)", ret)
		return
	}
	v, ok := decodeCounter(nvml.ValueType(f.ValueType), f.Value)
	if !ok {
		return
	}
	start := d.counterVals[idx].observe(v, ts, s.attachedAt)
	s.withStart(start, func() {
		switch spec.kind {
		case counterNVLinkIO:
			s.mb.RecordNvidiaGpuNvlinkIoDataPoint(ts, clampInt64(v)*1024, d.uuid, d.name, nvidiaVendor, d.model, s.driverVersion, d.index, spec.direction, d.opts...)
		case counterNVLinkErrors:
			s.mb.RecordNvidiaGpuNvlinkErrorsDataPoint(ts, clampInt64(v), d.uuid, d.name, nvidiaVendor, d.model, s.driverVersion, d.index, spec.nvlinkErr, d.opts...)
		case counterClockEventDuration:
			s.mb.RecordNvidiaGpuClockEventDurationDataPoint(ts, float64(v)/1e9, d.uuid, d.name, nvidiaVendor, d.model, s.driverVersion, d.index, spec.reason, d.opts...)
		}
	})
}

func (s *nvmlScraper) collectPCIeThroughput(d *gpuDevice, ts pcommon.Timestamp) {
	if !s.syms.has(fnDeviceGetPcieThroughput) || !d.supports(featPCIeThroughput) {
		return
	}
	var kib [2]uint32
	for dir, counter := range []nvml.PcieUtilCounter{nvml.PCIE_UTIL_TX_BYTES, nvml.PCIE_UTIL_RX_BYTES} {
		v, ret := d.handle.GetPcieThroughput(counter)
		if !s.usable(d, featPCIeThroughput, "nvmlDeviceGetPcieThroughput", ret) {
			return
		}
		kib[dir] = v
	}
	for dir, attr := range []metadata.AttributeNetworkIoDirection{metadata.AttributeNetworkIoDirectionTransmit, metadata.AttributeNetworkIoDirectionReceive} {
		e := &d.pcieEstimate[dir]
		e.add(kib[dir], ts)
		s.withStart(e.start, func() {
			s.mb.RecordHwGpuIoDataPoint(ts, int64(e.bytes), d.uuid, d.name, nvidiaVendor, d.model, s.driverVersion, d.index, attr, d.opts...)
		})
	}
}

func (s *nvmlScraper) collectPCIeReplays(d *gpuDevice, ts pcommon.Timestamp) {
	if !s.cfg.Metrics.NvidiaGpuPcieReplays.Enabled || !s.syms.has(fnDeviceGetPcieReplayCounter) || !d.supports(featPCIeReplays) {
		return
	}
	n, ret := d.handle.GetPcieReplayCounter()
	if !s.usable(d, featPCIeReplays, "nvmlDeviceGetPcieReplayCounter", ret) || n < 0 {
		return
	}
	start := d.pcieReplays.observe(uint64(n), ts, s.attachedAt)
	s.withStart(start, func() {
		s.mb.RecordNvidiaGpuPcieReplaysDataPoint(ts, int64(n), d.uuid, d.name, nvidiaVendor, d.model, s.driverVersion, d.index, d.opts...)
	})
}
