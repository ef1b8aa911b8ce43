//go:build !cgo

package nvmlreceiver

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/receiver/receivertest"

	"github.com/otelcol-vllm/otelcol-vllm/receiver/nvmlreceiver/internal/metadata"
)

// Run by TestBuildsWithoutCgo with CGO_ENABLED=0.
func TestFactoryWithoutCgo(t *testing.T) {
	f := NewFactory()
	cfg := f.CreateDefaultConfig()
	require.NoError(t, cfg.(*Config).Validate())
	_, err := f.CreateMetrics(context.Background(), receivertest.NewNopSettings(metadata.Type), cfg, consumertest.NewNop())
	require.ErrorContains(t, err, "needs a collector built with cgo")
}
