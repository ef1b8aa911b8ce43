// Package nvmlreceiver scrapes NVIDIA GPU telemetry through NVML (libnvidia-ml.so.1): utilization, memory,
// power, energy, temperature, clocks, clock events, PCIe traffic, ECC and XID errors, per-process memory and
// MIG instances. It never fails the collector when NVML or the GPUs are missing.
//
//go:generate mdatagen metadata.yaml
package nvmlreceiver // import "github.com/otelcol-vllm/otelcol-vllm/receiver/nvmlreceiver"
