//go:build !cgo

package nvmlreceiver // import "github.com/otelcol-vllm/otelcol-vllm/receiver/nvmlreceiver"

import (
	"context"
	"errors"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/receiver"

	"github.com/otelcol-vllm/otelcol-vllm/receiver/nvmlreceiver/internal/metadata"
)

// errNoCgo is what a collector built without cgo answers for a configured nvml receiver: go-nvml loads
// libnvidia-ml.so.1 through cgo, so such a build cannot read GPUs at all.
var errNoCgo = errors.New("the nvml receiver needs a collector built with cgo (CGO_ENABLED=1 and a C compiler); " +
	"this binary was built with CGO_ENABLED=0. Remove nvml from the pipelines or use a cgo build")

// NewFactory creates the factory of the nvml receiver. Without cgo the configuration still loads and validates,
// so `validate` and the other components work; creating the receiver fails with a clear error.
func NewFactory() receiver.Factory {
	return receiver.NewFactory(
		metadata.Type,
		createDefaultConfig,
		receiver.WithMetrics(func(context.Context, receiver.Settings, component.Config, consumer.Metrics) (receiver.Metrics, error) {
			return nil, errNoCgo
		}, metadata.MetricsStability),
	)
}
