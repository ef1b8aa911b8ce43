// Package nvmlreceiver scrapes NVIDIA GPU telemetry in-process through NVML (libnvidia-ml.so.1, loaded with
// dlopen through go-nvml's cgo bindings; a build without cgo has a factory that refuses to create the
// receiver): utilization, memory (with the driver's reservation), power and its limit, energy, GPU and
// memory temperature, clocks, clock events and their cumulative duration, PCIe traffic and replays, NVLink
// traffic and errors, ECC errors, remapped rows, XID events, GPU health (hw.status), per-process memory and
// utilization, and, on Hopper and later through GPU Performance Monitoring (GPM), SM activity and occupancy,
// pipe (tensor, FP64/32/16), graphics-engine and DRAM activity, and PCIe and NVLink bandwidth. It uses the hardware semantic conventions (hw.*) where they have a metric and
// nvidia.gpu.* otherwise.
//
// MIG instances are reported as their own devices (hw.parent names the GPU), with their memory, GPM
// activity and processes. The devices setting selects GPUs by index or UUID, or single MIG instances. On
// Kubernetes the kubelet's pod-resources API attributes each GPU, MIG instance or time-slicing replica to the
// pod, namespace and container it is allocated to (nvidia.gpu.allocation and k8s.* attributes).
//
// It never fails the collector when NVML or the GPUs are missing: NVML is attached at the first scrape and
// retried with back-off, GPUs that appear later are found by a periodic rescan, and a GPU that NVML reports
// lost stops being asked while hw.status reports it failed. A value a device cannot provide is asked for
// once. The NVML failures of a scrape are returned as a scrapererror.PartialScrapeError with the metrics that
// were read, so the collector's scraper telemetry counts them; the receiver's own telemetry counts the failed
// NVML calls, the attached GPUs, the pod-resources refresh failures and the dropped XID events.
//
//go:generate mdatagen metadata.yaml
package nvmlreceiver // import "github.com/otelcol-vllm/otelcol-vllm/receiver/nvmlreceiver"
