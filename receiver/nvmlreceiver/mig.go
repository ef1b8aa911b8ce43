//go:build cgo

package nvmlreceiver // import "github.com/otelcol-vllm/otelcol-vllm/receiver/nvmlreceiver"

import (
	"strconv"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/otelcol-vllm/otelcol-vllm/receiver/nvmlreceiver/internal/metadata"
) // refreshMIG re-lists the MIG instances of a GPU: administrators create and destroy them at run time.
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
		for _, old := range d.migOrder {
			s.freeGPM(old)
		}
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
	newMigs := make(map[string]*gpuDevice, len(order))
	for _, mig := range order {
		newMigs[mig.uuid] = mig
	}
	for uuid, old := range d.migs {
		if newMigs[uuid] == nil {
			s.freeGPM(old) // the instance was destroyed
		}
	}
	d.migs = newMigs
	d.migOrder = order
}

func (s *nvmlScraper) newMIGDevice(parent *gpuDevice, h nvml.Device, migIndex int, uuid string) *gpuDevice {
	mig := &gpuDevice{
		handle:        h,
		uuid:          uuid,
		index:         parent.index,
		model:         parent.model,
		parent:        parent,
		parentOpts:    []metadata.MetricAttributeOption{metadata.WithHwParentMetricAttribute(parent.uuid)},
		selected:      true,
		name:          parent.name + "/mig" + strconv.Itoa(migIndex),
		gpuInstanceID: -1,
	}
	if s.syms.has(fnDeviceGetGpuInstanceID) && s.syms.has(fnDeviceGetComputeInstanceID) {
		gi, ret1 := h.GetGpuInstanceId()
		ci, ret2 := h.GetComputeInstanceId()
		if ret1 == nvml.SUCCESS && ret2 == nvml.SUCCESS {
			mig.name = parent.name + "/gi" + strconv.Itoa(gi) + "/ci" + strconv.Itoa(ci)
			mig.gpuInstanceID = gi
		}
	}
	if s.syms.has(fnDeviceGetName) {
		if model, ret := h.GetName(); ret == nvml.SUCCESS && model != "" {
			mig.model = model
		}
	}
	return mig
}
