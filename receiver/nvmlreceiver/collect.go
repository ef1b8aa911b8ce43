package nvmlreceiver // import "github.com/otelcol-vllm/otelcol-vllm/receiver/nvmlreceiver"

import (
	"cmp"
	"math"
	"slices"
	"strconv"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.uber.org/zap"

	"github.com/otelcol-vllm/otelcol-vllm/receiver/nvmlreceiver/internal/metadata"
)

// hwSlowdownReasons are the clock events that mean the hardware protects itself; hw.status reports degraded
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

// scrapeGPU records every enabled metric of one physical GPU and of its MIG instances.
func (s *nvmlScraper) scrapeGPU(d *gpuDevice, ts pcommon.Timestamp) {
	m := &s.cfg.Metrics
	s.refreshMIG(d)
	var health gpuHealth
	if d.selected && !d.lost {
		s.collectUtilization(d, ts)
		s.collectMemory(d, ts)
		s.collectPower(d, ts)
		s.collectEnergy(d, ts)
		s.collectTemperatureAndCounters(d, ts)
		s.collectClocks(d, ts)
		if m.NvidiaGpuClockEventActive.Enabled || m.HwStatus.Enabled {
			s.collectClockEvents(d, ts, &health)
		}
		s.collectECC(d, ts)
		if m.NvidiaGpuRemappedRows.Enabled || m.HwStatus.Enabled {
			s.collectRemappedRows(d, ts, &health)
		}
		if !d.migEnabled { // with MIG on, processes are reported per instance
			s.collectProcesses(d, ts)
			s.collectProcessUtilization(d, ts)
		}
	}
	for _, mig := range d.migOrder {
		if mig.lost {
			break
		}
		s.collectMemory(mig, ts)
		s.collectProcesses(mig, ts)
	}
	if d.selected && m.HwStatus.Enabled {
		s.recordStatus(d, ts, health)
	}
}

// gpuHealth gathers what hw.status is derived from during one scrape.
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
			metadata.AttributeHwTypeGpu, st)
	}
}

// withStart records a cumulative point whose series has its own start time, then restores the shared one.
func (s *nvmlScraper) withStart(start pcommon.Timestamp, record func()) {
	s.mb.Reset(metadata.WithStartTime(start))
	record()
	s.mb.Reset(metadata.WithStartTime(s.gaugeStart))
}

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
				s.mb.RecordHwGpuUtilizationDataPoint(ts, v, d.uuid, d.name, nvidiaVendor, d.model, s.driverVersion, d.index, k.task)
			}
		}
	}
	if m.NvidiaGpuMemoryBandwidthUtilization.Enabled {
		if v, ok := s.utilization(d, utilMemoryBandwidth, &rates); ok {
			s.mb.RecordNvidiaGpuMemoryBandwidthUtilizationDataPoint(ts, v, d.uuid, d.name, nvidiaVendor, d.model, s.driverVersion, d.index)
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
// or the instantaneous rate when there are none.
func (s *nvmlScraper) utilization(d *gpuDevice, k utilKind, rates *instantRates) (float64, bool) {
	if f := utilSampleFeature[k]; s.syms.has(fnDeviceGetSamples) && d.supports(f) {
		vt, samples, ret := d.handle.GetSamples(utilSamplingType[k], d.lastSampleTime[k])
		switch {
		case ret == nvml.SUCCESS:
			mean, newest, ok := timeWeightedMean(vt, samples, d.lastSampleTime[k])
			d.lastSampleTime[k] = newest
			if ok {
				return mean / 100, true
			}
		case ret == nvml.ERROR_NOT_FOUND: // no sample since the last scrape
		default:
			s.usable(d, f, "nvmlDeviceGetSamples", ret)
		}
	}
	switch k {
	case utilEncoder:
		if s.syms.has(fnDeviceGetEncoderUtilization) && d.supports(featEncoderUtilization) {
			v, _, ret := d.handle.GetEncoderUtilization()
			if s.usable(d, featEncoderUtilization, "nvmlDeviceGetEncoderUtilization", ret) {
				return float64(v) / 100, true
			}
		}
	case utilDecoder:
		if s.syms.has(fnDeviceGetDecoderUtilization) && d.supports(featDecoderUtilization) {
			v, _, ret := d.handle.GetDecoderUtilization()
			if s.usable(d, featDecoderUtilization, "nvmlDeviceGetDecoderUtilization", ret) {
				return float64(v) / 100, true
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
				return float64(rates.rates.Memory) / 100, true
			}
			return float64(rates.rates.Gpu) / 100, true
		}
	}
	return 0, false
}

func (s *nvmlScraper) collectMemory(d *gpuDevice, ts pcommon.Timestamp) {
	m := &s.cfg.Metrics
	if !m.HwGpuMemoryUsage.Enabled && !m.HwGpuMemoryLimit.Enabled && !m.HwGpuMemoryUtilization.Enabled {
		return
	}
	var total, used uint64
	found := false
	if s.syms.has(fnDeviceGetMemoryInfoV2) && d.supports(featMemoryV2) {
		mem, ret := d.handle.GetMemoryInfo_v2()
		if s.usable(d, featMemoryV2, "nvmlDeviceGetMemoryInfo_v2", ret) {
			total, used, found = mem.Total, mem.Used, true
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
	s.mb.RecordHwGpuMemoryUsageDataPoint(ts, usage, d.uuid, d.name, nvidiaVendor, d.model, s.driverVersion, d.index, d.parentOpts...)
	s.mb.RecordHwGpuMemoryLimitDataPoint(ts, limit, d.uuid, d.name, nvidiaVendor, d.model, s.driverVersion, d.index, d.parentOpts...)
	if total > 0 {
		s.mb.RecordHwGpuMemoryUtilizationDataPoint(ts, float64(used)/float64(total), d.uuid, d.name, nvidiaVendor, d.model,
			s.driverVersion, d.index, d.parentOpts...)
	}
}

func (s *nvmlScraper) collectPower(d *gpuDevice, ts pcommon.Timestamp) {
	m := &s.cfg.Metrics
	if m.HwPower.Enabled && s.syms.has(fnDeviceGetPowerUsage) && d.supports(featPower) {
		mw, ret := d.handle.GetPowerUsage()
		if s.usable(d, featPower, "nvmlDeviceGetPowerUsage", ret) {
			s.mb.RecordHwPowerDataPoint(ts, float64(mw)/1000, d.uuid, d.name, nvidiaVendor, d.model, s.driverVersion, d.index,
				metadata.AttributeHwTypeGpu)
		}
	}
	if m.NvidiaGpuPowerLimit.Enabled && s.syms.has(fnDeviceGetEnforcedPowerLimit) && d.supports(featPowerLimit) {
		mw, ret := d.handle.GetEnforcedPowerLimit()
		if s.usable(d, featPowerLimit, "nvmlDeviceGetEnforcedPowerLimit", ret) {
			s.mb.RecordNvidiaGpuPowerLimitDataPoint(ts, float64(mw)/1000, d.uuid, d.name, nvidiaVendor, d.model, s.driverVersion, d.index)
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
		s.mb.RecordHwEnergyDataPoint(ts, joules, d.uuid, d.name, nvidiaVendor, d.model, s.driverVersion, d.index, metadata.AttributeHwTypeGpu)
	})
}

// collectTemperatureAndCounters reads the GPU temperature and, in one nvmlDeviceGetFieldValues call, the
// memory temperature and PCIe byte counters; PCIe traffic falls back to integrating the throughput.
func (s *nvmlScraper) collectTemperatureAndCounters(d *gpuDevice, ts pcommon.Timestamp) {
	m := &s.cfg.Metrics
	if m.HwTemperature.Enabled && s.syms.has(fnDeviceGetTemperature) && d.supports(featTemperatureGPU) {
		c, ret := d.handle.GetTemperature(nvml.TEMPERATURE_GPU)
		if s.usable(d, featTemperatureGPU, "nvmlDeviceGetTemperature", ret) {
			s.mb.RecordHwTemperatureDataPoint(ts, float64(c), d.uuid, d.name, nvidiaVendor, d.model, s.driverVersion, d.index,
				metadata.AttributeHwSensorLocationGpu)
		}
	}
	wantMemTemp := m.HwTemperature.Enabled && d.supports(featTemperatureMemory)
	wantPCIe := m.HwGpuIo.Enabled && d.supports(featPCIeCounters)
	if !s.syms.has(fnDeviceGetFieldValues) || !d.supports(featFieldValues) {
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
					metadata.AttributeHwSensorLocationMemory)
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
		}
	}
	if pcieOK != 2 || d.unsupported[featPCIeCounters] {
		return
	}
	for dir, attr := range []metadata.AttributeNetworkIoDirection{metadata.AttributeNetworkIoDirectionTransmit, metadata.AttributeNetworkIoDirectionReceive} {
		v := pcie[dir]
		start := d.pcieCounter[dir].observe(v, ts, s.attachedAt)
		s.withStart(start, func() {
			s.mb.RecordHwGpuIoDataPoint(ts, clampInt64(v), d.uuid, d.name, nvidiaVendor, d.model, s.driverVersion, d.index, attr)
		})
	}
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
			s.mb.RecordHwGpuIoDataPoint(ts, int64(e.bytes), d.uuid, d.name, nvidiaVendor, d.model, s.driverVersion, d.index, attr)
		})
	}
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
				s.driverVersion, d.index, c.attr)
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
		s.mb.RecordNvidiaGpuClockEventActiveDataPoint(ts, active, d.uuid, d.name, nvidiaVendor, d.model, s.driverVersion, d.index, r.reason)
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
				metadata.AttributeHwTypeGpu, e.attr)
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
			s.mb.RecordNvidiaGpuRemappedRowsDataPoint(ts, int64(r.rows), d.uuid, d.name, nvidiaVendor, d.model, s.driverVersion, d.index, r.attr)
		})
	}
}

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
			s.driverVersion, d.index, int64(p.Pid), s.procs.name(p.Pid), d.parentOpts...)
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
			s.driverVersion, d.index, int64(pid), s.procs.name(pid))
	}
	for _, smp := range samples {
		d.processUtilLastSeen = max(d.processUtilLastSeen, smp.TimeStamp)
	}
}

// refreshMIG re-lists the MIG instances of a GPU: administrators create and destroy them at run time.
func (s *nvmlScraper) refreshMIG(d *gpuDevice) {
	m := &s.cfg.Metrics
	wanted := m.HwGpuMemoryUsage.Enabled || m.HwGpuMemoryLimit.Enabled || m.HwGpuMemoryUtilization.Enabled ||
		m.NvidiaGpuProcessMemoryUsage.Enabled
	if !wanted || d.lost || !d.supports(featMIG) || !s.syms.has(fnDeviceGetMigMode) ||
		!s.syms.has(fnDeviceGetMaxMigDeviceCount) || !s.syms.has(fnDeviceGetMigDeviceHandleByIndex) {
		return
	}
	current, _, ret := d.handle.GetMigMode()
	if !s.usable(d, featMIG, "nvmlDeviceGetMigMode", ret) || current != nvml.DEVICE_MIG_ENABLE {
		d.migEnabled, d.migs, d.migOrder = false, nil, nil
		return
	}
	d.migEnabled = true
	maxCount, ret := d.handle.GetMaxMigDeviceCount()
	if !s.usable(d, featMIG, "nvmlDeviceGetMaxMigDeviceCount", ret) {
		return
	}
	order := make([]*gpuDevice, 0, len(d.migOrder))
	for i := range maxCount {
		h, ret := d.handle.GetMigDeviceHandleByIndex(i)
		if ret == nvml.ERROR_NOT_FOUND || ret == nvml.ERROR_INVALID_ARGUMENT { // unused slot
			continue
		}
		if !s.usable(d, featMIG, "nvmlDeviceGetMigDeviceHandleByIndex", ret) {
			return
		}
		uuid, ret := h.GetUUID()
		if ret != nvml.SUCCESS || uuid == "" {
			s.usable(d, featMIG, "nvmlDeviceGetUUID(MIG)", ret)
			continue
		}
		mig := d.migs[uuid]
		if mig == nil {
			if !s.selector.migSelected(d.selected, uuid) {
				continue
			}
			mig = s.newMIGDevice(d, h, i, uuid)
		}
		mig.handle = h
		order = append(order, mig)
	}
	d.migs = make(map[string]*gpuDevice, len(order))
	for _, mig := range order {
		d.migs[mig.uuid] = mig
	}
	d.migOrder = order
}

func (s *nvmlScraper) newMIGDevice(parent *gpuDevice, h nvml.Device, migIndex int, uuid string) *gpuDevice {
	mig := &gpuDevice{
		handle:     h,
		uuid:       uuid,
		index:      parent.index,
		model:      parent.model,
		parent:     parent,
		parentOpts: []metadata.MetricAttributeOption{metadata.WithHwParentMetricAttribute(parent.uuid)},
		selected:   true,
		name:       parent.name + "/mig" + strconv.Itoa(migIndex),
	}
	if s.syms.has(fnDeviceGetGpuInstanceID) && s.syms.has(fnDeviceGetComputeInstanceID) {
		gi, ret1 := h.GetGpuInstanceId()
		ci, ret2 := h.GetComputeInstanceId()
		if ret1 == nvml.SUCCESS && ret2 == nvml.SUCCESS {
			mig.name = parent.name + "/gi" + strconv.Itoa(gi) + "/ci" + strconv.Itoa(ci)
		}
	}
	if s.syms.has(fnDeviceGetName) {
		if model, ret := h.GetName(); ret == nvml.SUCCESS && model != "" {
			mig.model = model
		}
	}
	return mig
}

func (s *nvmlScraper) recordXID(ts pcommon.Timestamp) {
	s.mb.Reset(metadata.WithStartTime(s.xid.start))
	s.xid.snapshot(func(d *gpuDevice, xid uint64, n int64) {
		s.mb.RecordNvidiaGpuXidErrorsDataPoint(ts, n, d.uuid, d.name, nvidiaVendor, d.model, s.driverVersion, d.index, clampInt64(xid))
	})
	s.mb.Reset(metadata.WithStartTime(s.gaugeStart))
}

func clampInt64(v uint64) int64 {
	if v > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(v)
}
