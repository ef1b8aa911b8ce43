package vllmrequest // import "github.com/otelcol-vllm/otelcol-vllm/internal/vllmrequest"

import (
	"errors"
	"fmt"
	"time"
)

// Config is how vLLM request spans are recognised and labelled; the vllm processor and the vllm connector
// both squash it into their own configuration, so the keys are the same in both.
type Config struct {
	// SpanNames are the span names vLLM request spans carry (vLLM: "llm_request").
	SpanNames []string `mapstructure:"span_names"`
	// Model says where the model name comes from.
	Model ModelConfig `mapstructure:"model"`
	// Provider is the gen_ai.provider.name value for spans that carry none.
	Provider string `mapstructure:"provider"`
	// MaxLatency rejects latencies above it (a clock or sentinel error, not a real request).
	MaxLatency time.Duration `mapstructure:"max_latency"`
	// SLO holds the optional service level objectives; an unset objective is not evaluated.
	SLO SLOConfig `mapstructure:"slo"`
	_   struct{}
}

// ModelConfig says where the model name of a request comes from.
type ModelConfig struct {
	// Attributes are looked up in order on the span, then on its resource.
	Attributes []string `mapstructure:"attributes"`
	// Default is used when none of Attributes is found.
	Default string `mapstructure:"default"`
	_       struct{}
}

// SLOConfig holds latency objectives: a request meets an objective when its value is at most the threshold.
type SLOConfig struct {
	TTFT  *time.Duration `mapstructure:"ttft"`
	TPOT  *time.Duration `mapstructure:"tpot"`
	E2E   *time.Duration `mapstructure:"e2e"`
	Queue *time.Duration `mapstructure:"queue"`
	_     struct{}
}

// NewDefaultConfig returns the defaults documented in the component READMEs.
func NewDefaultConfig() Config {
	return Config{
		SpanNames:  []string{"llm_request"},
		Model:      ModelConfig{Attributes: []string{AttrResponseModel, AttrRequestModel}, Default: "unknown"},
		Provider:   "vllm",
		MaxLatency: 24 * time.Hour,
	}
}

// Validate names the key of every invalid setting.
func (c *Config) Validate() error {
	var errs []error
	if len(c.SpanNames) == 0 {
		errs = append(errs, errors.New("span_names: must list at least one span name"))
	}
	for i, n := range c.SpanNames {
		if n == "" {
			errs = append(errs, fmt.Errorf("span_names[%d]: must not be empty", i))
		}
	}
	for i, a := range c.Model.Attributes {
		if a == "" {
			errs = append(errs, fmt.Errorf("model.attributes[%d]: must not be empty", i))
		}
	}
	if c.Model.Default == "" {
		errs = append(errs, errors.New("model.default: must not be empty"))
	}
	if c.Provider == "" {
		errs = append(errs, errors.New("provider: must not be empty"))
	}
	if c.MaxLatency <= 0 {
		errs = append(errs, fmt.Errorf("max_latency: must be positive, got %v", c.MaxLatency))
	}
	for _, o := range Objectives() {
		if d := c.SLO.threshold(o); d != nil && *d <= 0 {
			errs = append(errs, fmt.Errorf("slo.%s: must be positive, got %v", o, *d))
		}
	}
	return errors.Join(errs...)
}

// Enabled is true when at least one objective is set.
func (s *SLOConfig) Enabled() bool {
	return s.TTFT != nil || s.TPOT != nil || s.E2E != nil || s.Queue != nil
}

// Threshold returns the objective's threshold and whether it is set.
func (s *SLOConfig) Threshold(o Objective) (time.Duration, bool) {
	if d := s.threshold(o); d != nil {
		return *d, true
	}
	return 0, false
}

func (s *SLOConfig) threshold(o Objective) *time.Duration {
	switch o {
	case ObjectiveTTFT:
		return s.TTFT
	case ObjectiveTPOT:
		return s.TPOT
	case ObjectiveE2E:
		return s.E2E
	case ObjectiveQueue:
		return s.Queue
	}
	return nil
}
