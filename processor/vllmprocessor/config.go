package vllmprocessor // import "github.com/otelcol-vllm/otelcol-vllm/processor/vllmprocessor"

import (
	"go.opentelemetry.io/collector/confmap"

	"github.com/otelcol-vllm/otelcol-vllm/internal/confcheck"
	"github.com/otelcol-vllm/otelcol-vllm/internal/vllmrequest"
)

// Config of the vllm processor: how vLLM request spans are recognised and labelled, and the optional SLOs.
// The keys are shared with the vllm connector.
type Config struct {
	Request vllmrequest.Config `mapstructure:",squash"`
	// SamplingPriority writes sampling.priority = 1 on every request span that broke the SLO or failed, so that
	// a probabilistic_sampler after this processor keeps all of them (see the README's SLO-aware sampling).
	SamplingPriority bool `mapstructure:"sampling_priority"`
	_                struct{}
}

var (
	_ confmap.Validator   = (*Config)(nil)
	_ confmap.Unmarshaler = (*Config)(nil)
)

// Unmarshal rejects values the decoder would reinterpret (`slo: {ttft: 200}` would be 200ns) before decoding.
func (c *Config) Unmarshal(conf *confmap.Conf) error { return confcheck.Unmarshal(conf, c) }

// Validate names the key of every invalid setting.
func (c *Config) Validate() error { return c.Request.Validate() }
