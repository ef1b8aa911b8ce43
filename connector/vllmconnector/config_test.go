package vllmconnector

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/confmaptest"

	"github.com/otelcol-vllm/otelcol-vllm/connector/vllmconnector/internal/metadata"
	"github.com/otelcol-vllm/otelcol-vllm/internal/vllmrequest"
)

func dur(d time.Duration) *time.Duration { return &d }
func str(s string) *string               { return &s }

func TestLoadConfig(t *testing.T) {
	cm, err := confmaptest.LoadConf(filepath.Join("testdata", "config.yaml"))
	require.NoError(t, err)
	tests := []struct {
		name         string
		expected     *Config
		unmarshalErr string
		validateErr  string
	}{
		{name: "", expected: createDefaultConfig().(*Config)},
		{name: "full", expected: &Config{
			Request: vllmrequest.Config{
				SpanNames:  []string{"llm_request"},
				Model:      vllmrequest.ModelConfig{Attributes: []string{"gen_ai.request.model"}, Default: "my-model"},
				Provider:   "vllm",
				MaxLatency: time.Hour,
				SLO:        vllmrequest.SLOConfig{TTFT: dur(200 * time.Millisecond), TPOT: dur(50 * time.Millisecond), E2E: dur(5 * time.Second)},
			},
			Dimensions:         []Dimension{{Name: "gen_ai.request.n"}, {Name: "tenant", Default: str("shared")}},
			ResourceAttributes: []string{"service.name", "service.instance.id"},
			Histograms: HistogramsConfig{Type: HistogramExponential, MaxSize: 80, Preset: PresetSemconv, SingleTokenTPOT: SingleTokenTPOTZero, Buckets: map[string][]float64{
				"gen_ai.server.time_to_first_token": {0.05, 0.1, 0.5, 1},
			}},
			Exemplars:              ExemplarsConfig{Enabled: true, MaxPerDataPoint: 3},
			AggregationTemporality: TemporalityDelta,
			MetricsFlushInterval:   30 * time.Second,
			MetricsExpiration:      time.Hour,
			CardinalityLimit:       100,
			MaxAttributeLength:     128,
			MaxRequestBytes:        2 << 20,
			Sampling:               SamplingConfig{Ratio: 0.5, ServiceRatios: map[string]float64{"vllm-llama": 0.1}},
		}},
		{name: "all_resource_attributes", expected: func() *Config {
			c := createDefaultConfig().(*Config)
			c.ResourceAttributes = []string{}
			return c
		}()},
		{name: "unsorted_buckets", validateErr: "histograms.buckets.gen_ai.server.request.duration: bounds must be sorted in increasing order: 0.5 follows 1"},
		{name: "duplicate_buckets", validateErr: "histograms.buckets.vllm.request.queue.duration: bound 0.1 is listed twice"},
		{name: "unknown_histogram", validateErr: "histograms.buckets.gen_ai.server.ttft: unknown histogram; known: gen_ai.server.time_to_first_token,"},
		{name: "zero_flush", validateErr: "metrics_flush_interval: must be at least 1s, got 0s"},
		{name: "nanosecond_flush", validateErr: "metrics_flush_interval: must be at least 1s, got 1ns"},
		{name: "negative_expiration", validateErr: "metrics_expiration: must be at least metrics_flush_interval (15s), got -1m0s"},
		{name: "expiration_below_flush", validateErr: "metrics_expiration: must be at least metrics_flush_interval (1m0s), got 30s"},
		{name: "bad_temporality", validateErr: `aggregation_temporality: must be "cumulative" or "delta", got "DELTA"`},
		{name: "bad_histogram_type", validateErr: `histograms.type: must be "explicit" or "exponential", got "exponetial"`},
		{name: "zero_ratio", validateErr: "sampling.ratio: must be a sampling probability from 2^-56 (1.3877787807814457e-17, the smallest OTEP 235 expresses) to 1, got 0"},
		{name: "ratio_above_one", validateErr: "sampling.ratio: must be a sampling probability from 2^-56 (1.3877787807814457e-17, the smallest OTEP 235 expresses) to 1, got 1.5"},
		{name: "nan_service_ratio", validateErr: "sampling.service_ratios.vllm-llama: must be a sampling probability from 2^-56 (1.3877787807814457e-17, the smallest OTEP 235 expresses) to 1, got NaN"},
		{name: "negative_service_ratio", validateErr: "sampling.service_ratios.b: must be a sampling probability from 2^-56 (1.3877787807814457e-17, the smallest OTEP 235 expresses) to 1, got -0.1"},
		{name: "bad_preset", validateErr: `histograms.preset: must be "vllm" or "semconv", got "otel"`},
		{name: "bad_single_token_tpot", validateErr: `histograms.single_token_tpot: must be "omit" or "zero", got "0"`},
		{name: "reserved_request_model", validateErr: `dimensions[0].name: "gen_ai.request.model" is set by the connector itself`},
		{name: "reserved_error_type", validateErr: `dimensions[0].name: "error.type" is set by the connector itself`},
		{name: "reserved_dimension", validateErr: `dimensions[0].name: "gen_ai.response.model" is set by the connector itself`},
		{name: "zero_exemplars", validateErr: "exemplars.max_per_data_point: must be between 1 and 100, got 0"},
		{name: "huge_exemplars", validateErr: "exemplars.max_per_data_point: must be between 1 and 100, got 2000000000"},
		{name: "zero_cardinality", validateErr: "cardinality_limit: must be between 1 and 1000000, got 0"},
		{name: "huge_cardinality", validateErr: "cardinality_limit: must be between 1 and 1000000, got 1000001"},
		{name: "huge_max_size", validateErr: "histograms.max_size: must be between 2 and 1024, got 100000"},
		{name: "too_many_bounds", validateErr: "histograms.buckets.vllm.request.queue.duration: at most 256 bucket bounds, got 300"},
		{name: "too_many_dimensions", validateErr: "dimensions: at most 32, got 33"},
		{name: "zero_attribute_length", validateErr: "max_attribute_length: must be between 1 and 4096, got 0"},
		{name: "huge_duplicate_window", validateErr: "duplicate_window: must be between 0 and 1048576, got 2000000"},
		{name: "small_request", validateErr: "max_request_bytes: must be between 65536 and 67108864, got 1000"},
		{name: "bare_duration", unmarshalErr: "slo.ttft: 200 has no unit; write a duration with its unit, such as 200ms"},
		{name: "fractional_duration", unmarshalErr: "slo.ttft: 0.2 has no unit"},
		{name: "bare_flush_interval", unmarshalErr: "metrics_flush_interval: 15 has no unit"},
		{name: "fractional_cardinality", unmarshalErr: "cardinality_limit: 10.5 is not an integer"},
		{name: "overflowing_cardinality", unmarshalErr: "cardinality_limit: 1e+20 is out of range"},
		{name: "overflowing_max_size", unmarshalErr: "histograms.max_size: 4294967296 is out of range (at most 2147483647)"},
		{name: "denormal_ratio", validateErr: "sampling.ratio: must be a sampling probability from 2^-56 (1.3877787807814457e-17, the smallest OTEP 235 expresses) to 1, got 1e-320"},
		{name: "tiny_service_ratio", validateErr: "sampling.service_ratios.vllm: must be a sampling probability from 2^-56 (1.3877787807814457e-17, the smallest OTEP 235 expresses) to 1, got 1e-300"},
		{name: "smallest_ratio", expected: func() *Config {
			cfg := NewFactory().CreateDefaultConfig().(*Config)
			cfg.Sampling.Ratio = 0x1p-56
			return cfg
		}()},
		{name: "zero_slo", validateErr: "slo.e2e: must be positive, got 0s"},
		{name: "typo", unmarshalErr: "has invalid keys: metrics_flush_intervall"},
		{name: "nested_typo", unmarshalErr: "has invalid keys: enable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := NewFactory().CreateDefaultConfig()
			sub, err := cm.Sub(component.NewIDWithName(metadata.Type, tt.name).String())
			require.NoError(t, err)
			err = sub.Unmarshal(cfg)
			if tt.unmarshalErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.unmarshalErr)
				return
			}
			require.NoError(t, err)
			err = confmap.Validate(cfg)
			if tt.validateErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.validateErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.expected, cfg)
		})
	}
}

func TestBucketBoundsInsertSLOThresholds(t *testing.T) {
	cfg := createDefaultConfig().(*Config)
	cfg.Request.SLO = vllmrequest.SLOConfig{TTFT: dur(200 * time.Millisecond), TPOT: dur(50 * time.Millisecond), E2E: dur(7 * time.Second), Queue: dur(250 * time.Millisecond)}
	cfg.Histograms.Buckets = map[string][]float64{metricQueue: {0.1, 1}}
	b := bucketBounds(cfg)
	assert.Equal(t, []float64{0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.2, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0}, b[histTTFT])
	assert.Equal(t, perTokenBuckets, b[histTPOT], "50ms is already a TPOT bound")
	assert.Equal(t, []float64{0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 7.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0}, b[histRequestDuration])
	assert.Equal(t, []float64{0.1, 0.25, 1}, b[histQueue], "override plus threshold")
	assert.Equal(t, requestBuckets, b[histPrefill], "no objective on prefill")
	assert.Equal(t, []float64{0.1, 1}, cfg.Histograms.Buckets[metricQueue], "the configured slice is not modified")
	assert.Len(t, ttftBuckets, 22, "the default slice is not modified")
}
