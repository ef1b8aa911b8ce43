package vllmconnector // import "github.com/otelcol-vllm/otelcol-vllm/connector/vllmconnector"

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"go.opentelemetry.io/collector/confmap"

	"github.com/otelcol-vllm/otelcol-vllm/internal/confcheck"
	"github.com/otelcol-vllm/otelcol-vllm/internal/vllmrequest"
)

// Aggregation temporalities accepted by aggregation_temporality.
const (
	TemporalityCumulative = "cumulative"
	TemporalityDelta      = "delta"
)

// Histogram types accepted by histograms.type.
const (
	HistogramExplicit    = "explicit"
	HistogramExponential = "exponential"
)

// Bucket presets accepted by histograms.preset.
const (
	// PresetVLLM is vLLM's own bounds, so the histograms equal vLLM's /metrics bucket for bucket.
	PresetVLLM = "vllm"
	// PresetSemconv is the explicit bounds the GenAI semantic conventions recommend.
	PresetSemconv = "semconv"
)

// What histograms.single_token_tpot does with a request of at most one output token, which has no TPOT.
const (
	// SingleTokenTPOTOmit records nothing, the conventions' meaning of TPOT.
	SingleTokenTPOTOmit = "omit"
	// SingleTokenTPOTZero records 0, as vLLM's vllm:request_time_per_output_token_seconds does.
	SingleTokenTPOTZero = "zero"
)

// Config of the vllm connector. The request recognition keys (span_names, model, provider, max_latency, slo)
// are shared with the vllm processor.
type Config struct {
	Request vllmrequest.Config `mapstructure:",squash"`

	// Dimensions are span attributes added to every data point, each with an optional default.
	Dimensions []Dimension `mapstructure:"dimensions"`
	// ResourceAttributes is the allow-list of resource attributes copied to the metrics' resource and used to
	// tell resources apart; an empty list keeps all. The default keeps the service identity only: vLLM's resource
	// also carries vllm.process_id, which changes at every restart and differs between API-server processes, and
	// series split by it collide in Prometheus, whose job/instance labels cannot tell them apart.
	ResourceAttributes []string         `mapstructure:"resource_attributes"`
	Histograms         HistogramsConfig `mapstructure:"histograms"`
	Exemplars          ExemplarsConfig  `mapstructure:"exemplars"`
	// AggregationTemporality is cumulative (default) or delta.
	AggregationTemporality string `mapstructure:"aggregation_temporality"`
	// MetricsFlushInterval is how often metrics are sent; they are also sent on shutdown.
	MetricsFlushInterval time.Duration `mapstructure:"metrics_flush_interval"`
	// MetricsExpiration forgets a series that has seen no request for this long.
	MetricsExpiration time.Duration `mapstructure:"metrics_expiration"`
	// CardinalityLimit is the most series kept; requests beyond it go to one otel.metric.overflow=true series.
	CardinalityLimit int `mapstructure:"cardinality_limit"`
	// MaxAttributeLength caps, in bytes, every attribute value that becomes part of a series (model, provider,
	// operation, dimensions, resource attributes): longer values are truncated, so the memory of a series and
	// the size of its data points do not grow with its input.
	MaxAttributeLength int `mapstructure:"max_attribute_length"`
	// MaxRequestBytes caps the encoded size of one request sent downstream: a flush is split into requests of
	// at most this many bytes (protobuf), so that no flush exceeds a receiver's message limit (OTLP/gRPC: 4 MiB).
	MaxRequestBytes int `mapstructure:"max_request_bytes"`
	// DuplicateWindow is how many of the most recent request spans are remembered by trace and span id, so that
	// a span delivered again (a client retrying a request the collector had processed) counts once. 0 turns it
	// off. Memory: 32 bytes per span of the window (2 MiB at the default).
	DuplicateWindow int `mapstructure:"duplicate_window"`
	// Sampling says what a sampled span stands for when its tracestate carries no OTEP 235 threshold.
	Sampling SamplingConfig `mapstructure:"sampling"`
	_        struct{}
}

// SamplingConfig gives the sampling probability of spans without an OTEP 235 threshold in their tracestate (the
// Python SDK's TraceIdRatioBased sampler writes none). Spans with a threshold count with it, whatever is set here.
type SamplingConfig struct {
	// Ratio is the probability such spans were sampled with: each stands for 1/ratio requests. 1 = unsampled.
	Ratio float64 `mapstructure:"ratio"`
	// ServiceRatios overrides Ratio for the spans of a service.name.
	ServiceRatios map[string]float64 `mapstructure:"service_ratios"`
	_             struct{}
}

// Bounds on the settings, so that every configuration that validates also runs in bounded memory and CPU.
const (
	minFlushInterval          = time.Second
	maxCardinalityLimit       = 1_000_000
	maxExemplarsPerDataPoint  = 100
	maxExponentialSize        = 1024
	maxExplicitBounds         = 256
	maxDimensions             = 32
	maxResourceAttributeNames = 64
	maxAttributeLength        = 4096
	minRequestBytes           = 64 << 10
	maxRequestBytes           = 64 << 20
	maxDuplicateWindow        = 1 << 20
	// maxKeptResourceAttributes bounds the attributes kept from one resource when resource_attributes is empty
	// (keep all): the first ones in key order are kept, the rest dropped and counted.
	maxKeptResourceAttributes = 128
)

// Dimension is a span attribute copied onto the data points.
type Dimension struct {
	Name string `mapstructure:"name"`
	// Default is used when the span lacks the attribute; without one the attribute is left out.
	Default *string `mapstructure:"default"`
	_       struct{}
}

// HistogramsConfig chooses the histogram aggregation and its buckets.
type HistogramsConfig struct {
	// Type is explicit (default) or exponential.
	Type string `mapstructure:"type"`
	// MaxSize is the most buckets of an exponential histogram.
	MaxSize int32 `mapstructure:"max_size"`
	// Preset chooses the default explicit bounds: vllm (vLLM's own) or semconv.
	Preset string `mapstructure:"preset"`
	// SingleTokenTPOT is omit (no TPOT point for ≤ 1 output token) or zero (a 0 point, as vLLM records).
	SingleTokenTPOT string `mapstructure:"single_token_tpot"`
	// Buckets overrides the explicit bounds of a metric, by metric name, in the metric's unit.
	Buckets map[string][]float64 `mapstructure:"buckets"`
	_       struct{}
}

// ExemplarsConfig attaches the trace and span ids of requests to histogram data points.
type ExemplarsConfig struct {
	Enabled         bool `mapstructure:"enabled"`
	MaxPerDataPoint int  `mapstructure:"max_per_data_point"`
	_               struct{}
}

var (
	_ confmap.Validator   = (*Config)(nil)
	_ confmap.Unmarshaler = (*Config)(nil)
)

// Unmarshal rejects values the decoder would reinterpret (a duration without a unit, a fractional or
// overflowing integer) before decoding.
func (c *Config) Unmarshal(conf *confmap.Conf) error { return confcheck.Unmarshal(conf, c) }

// reservedAttributes are data point attributes the connector sets itself; a dimension may not shadow them.
var reservedAttributes = map[string]bool{
	vllmrequest.AttrProviderName: true, vllmrequest.AttrOperationName: true, vllmrequest.AttrResponseModel: true,
	vllmrequest.AttrRequestModel: true, vllmrequest.AttrErrorType: true,
	attrTokenType: true, attrSLOObjective: true, attrSLOMet: true, attrOverflow: true,
}

// Validate names the key of every invalid setting.
func (c *Config) Validate() error {
	errs := []error{c.Request.Validate()}
	if len(c.Dimensions) > maxDimensions {
		errs = append(errs, fmt.Errorf("dimensions: at most %d, got %d", maxDimensions, len(c.Dimensions)))
	}
	seen := map[string]bool{}
	for i, d := range c.Dimensions {
		switch {
		case d.Name == "":
			errs = append(errs, fmt.Errorf("dimensions[%d].name: must not be empty", i))
		case reservedAttributes[d.Name]:
			errs = append(errs, fmt.Errorf("dimensions[%d].name: %q is set by the connector itself", i, d.Name))
		case seen[d.Name]:
			errs = append(errs, fmt.Errorf("dimensions[%d].name: %q is listed twice", i, d.Name))
		}
		seen[d.Name] = true
	}
	if len(c.ResourceAttributes) > maxResourceAttributeNames {
		errs = append(errs, fmt.Errorf("resource_attributes: at most %d, got %d", maxResourceAttributeNames, len(c.ResourceAttributes)))
	}
	for i, a := range c.ResourceAttributes {
		if a == "" {
			errs = append(errs, fmt.Errorf("resource_attributes[%d]: must not be empty", i))
		}
	}
	errs = append(errs, c.Histograms.validate())
	if c.Exemplars.Enabled {
		errs = append(errs, inRange("exemplars.max_per_data_point", c.Exemplars.MaxPerDataPoint, 1, maxExemplarsPerDataPoint))
	}
	if c.AggregationTemporality != TemporalityCumulative && c.AggregationTemporality != TemporalityDelta {
		errs = append(errs, fmt.Errorf("aggregation_temporality: must be %q or %q, got %q", TemporalityCumulative, TemporalityDelta, c.AggregationTemporality))
	}
	if c.MetricsFlushInterval < minFlushInterval {
		errs = append(errs, fmt.Errorf("metrics_flush_interval: must be at least %v, got %v", minFlushInterval, c.MetricsFlushInterval))
	}
	if c.MetricsExpiration < c.MetricsFlushInterval {
		errs = append(errs, fmt.Errorf("metrics_expiration: must be at least metrics_flush_interval (%v), got %v", c.MetricsFlushInterval, c.MetricsExpiration))
	}
	errs = append(errs, validRatio("sampling.ratio", c.Sampling.Ratio))
	services := make([]string, 0, len(c.Sampling.ServiceRatios))
	for s := range c.Sampling.ServiceRatios {
		services = append(services, s)
	}
	sort.Strings(services)
	for _, s := range services {
		errs = append(errs, validRatio("sampling.service_ratios."+s, c.Sampling.ServiceRatios[s]))
	}
	errs = append(errs,
		inRange("cardinality_limit", c.CardinalityLimit, 1, maxCardinalityLimit),
		inRange("max_attribute_length", c.MaxAttributeLength, 1, maxAttributeLength),
		inRange("max_request_bytes", c.MaxRequestBytes, minRequestBytes, maxRequestBytes),
		inRange("duplicate_window", c.DuplicateWindow, 0, maxDuplicateWindow))
	return errors.Join(errs...)
}

// minRatio is the smallest sampling probability OTEP 235 expresses (a threshold has 56 bits): a span stands for
// at most 2^56 requests. Smaller ratios would weigh a span beyond what any counter holds (1e-320 is +Inf).
const minRatio = 0x1p-56

// validRatio accepts a sampling probability from 2^-56 to 1.
func validRatio(key string, r float64) error {
	if !(r >= minRatio && r <= 1) { // NaN fails both
		return fmt.Errorf("%s: must be a sampling probability from 2^-56 (%v, the smallest OTEP 235 expresses) to 1, got %v", key, minRatio, r)
	}
	return nil
}

func inRange(key string, v, lo, hi int) error {
	if v < lo || v > hi {
		return fmt.Errorf("%s: must be between %d and %d, got %d", key, lo, hi, v)
	}
	return nil
}

func (h *HistogramsConfig) validate() error {
	var errs []error
	switch h.Type {
	case HistogramExplicit:
	case HistogramExponential:
		errs = append(errs, inRange("histograms.max_size", int(h.MaxSize), 2, maxExponentialSize))
	default:
		errs = append(errs, fmt.Errorf("histograms.type: must be %q or %q, got %q", HistogramExplicit, HistogramExponential, h.Type))
	}
	if h.Preset != PresetVLLM && h.Preset != PresetSemconv {
		errs = append(errs, fmt.Errorf("histograms.preset: must be %q or %q, got %q", PresetVLLM, PresetSemconv, h.Preset))
	}
	if h.SingleTokenTPOT != SingleTokenTPOTOmit && h.SingleTokenTPOT != SingleTokenTPOTZero {
		errs = append(errs, fmt.Errorf("histograms.single_token_tpot: must be %q or %q, got %q", SingleTokenTPOTOmit, SingleTokenTPOTZero, h.SingleTokenTPOT))
	}
	names := make([]string, 0, len(h.Buckets))
	for name := range h.Buckets {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		key := "histograms.buckets." + name
		if _, ok := histogramByName(name); !ok {
			errs = append(errs, fmt.Errorf("%s: unknown histogram; known: %s", key, strings.Join(histogramNames(), ", ")))
			continue
		}
		if err := validateBounds(h.Buckets[name]); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", key, err))
		}
	}
	return errors.Join(errs...)
}

func validateBounds(bounds []float64) error {
	if len(bounds) == 0 {
		return errors.New("must list at least one bucket bound")
	}
	if len(bounds) > maxExplicitBounds {
		return fmt.Errorf("at most %d bucket bounds, got %d", maxExplicitBounds, len(bounds))
	}
	for i, b := range bounds {
		if math.IsNaN(b) || math.IsInf(b, 0) {
			return fmt.Errorf("bound %d is %v; bounds must be finite", i, b)
		}
		if i > 0 && b <= bounds[i-1] {
			if b == bounds[i-1] {
				return fmt.Errorf("bound %v is listed twice", b)
			}
			return fmt.Errorf("bounds must be sorted in increasing order: %v follows %v", b, bounds[i-1])
		}
	}
	return nil
}
