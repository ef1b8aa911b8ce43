package embeddedprovider

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/confmap"
	"go.uber.org/zap"
)

func newTestProvider(env map[string]string) *provider {
	return &provider{
		logger: zap.NewNop(),
		lookupEnv: func(key string) (string, bool) {
			v, ok := env[key]
			return v, ok
		},
	}
}

func retrieveConf(t *testing.T, p *provider, uri string) *confmap.Conf {
	t.Helper()
	retrieved, err := p.Retrieve(context.Background(), uri, nil)
	require.NoError(t, err)
	conf, err := retrieved.AsConf()
	require.NoError(t, err)
	return conf
}

func TestRetrieveDefaultLayers(t *testing.T) {
	tests := []struct {
		name            string
		env             map[string]string
		tracesExporters []any
		metricsExporter []any
		exporterKeys    []string
		metricsReceiver []any
	}{
		{
			name:            "no backends",
			env:             map[string]string{},
			tracesExporters: []any{"vllm"},
			metricsExporter: []any{"debug", "vllm_status", "prometheus"},
			exporterKeys:    []string{"debug", "vllm_status", "prometheus"},
		},
		{
			name:            "blank values do not switch exporters on",
			env:             map[string]string{EnvJaegerEndpoint: " ", EnvRemoteWriteEndpoint: ""},
			tracesExporters: []any{"vllm"},
			metricsExporter: []any{"debug", "vllm_status", "prometheus"},
			exporterKeys:    []string{"debug", "vllm_status", "prometheus"},
		},
		{
			name:            "jaeger only",
			env:             map[string]string{EnvJaegerEndpoint: "localhost:14317"},
			tracesExporters: []any{"vllm", "otlp_grpc/jaeger"},
			metricsExporter: []any{"debug", "vllm_status", "prometheus"},
			exporterKeys:    []string{"debug", "vllm_status", "prometheus", "otlp_grpc/jaeger"},
		},
		{
			name:            "remote write only",
			env:             map[string]string{EnvRemoteWriteEndpoint: "http://localhost:9090/api/v1/write"},
			tracesExporters: []any{"vllm"},
			metricsExporter: []any{"debug", "vllm_status", "prometheus", "prometheus_remote_write"},
			exporterKeys:    []string{"debug", "vllm_status", "prometheus", "prometheus_remote_write"},
		},
		{
			name:            "vLLM's /metrics scraped",
			env:             map[string]string{EnvVLLMMetricsTarget: "localhost:8000"},
			tracesExporters: []any{"vllm"},
			metricsExporter: []any{"debug", "vllm_status", "prometheus"},
			exporterKeys:    []string{"debug", "vllm_status", "prometheus"},
			metricsReceiver: []any{"vllm", "nvml", "prometheus/vllm"},
		},
		{
			name: "both",
			env: map[string]string{
				EnvJaegerEndpoint:      "localhost:14317",
				EnvRemoteWriteEndpoint: "http://localhost:9090/api/v1/write",
			},
			tracesExporters: []any{"vllm", "otlp_grpc/jaeger"},
			metricsExporter: []any{"debug", "vllm_status", "prometheus", "prometheus_remote_write"},
			exporterKeys:    []string{"debug", "vllm_status", "prometheus", "otlp_grpc/jaeger", "prometheus_remote_write"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conf := retrieveConf(t, newTestProvider(tt.env), DefaultURI)
			assert.Equal(t, tt.tracesExporters, conf.Get("service::pipelines::traces::exporters"))
			assert.Equal(t, tt.metricsExporter, conf.Get("service::pipelines::metrics::exporters"))
			exporters, ok := conf.Get("exporters").(map[string]any)
			require.True(t, ok)
			assert.ElementsMatch(t, tt.exporterKeys, mapKeys(exporters))
			// the layers only add exporters and receivers: processors stay those of the base
			assert.Equal(t, []any{"otlp"}, conf.Get("service::pipelines::traces::receivers"))
			assert.Equal(t, []any{"memory_limiter", "vllm", "batch"}, conf.Get("service::pipelines::traces::processors"))
			receivers := tt.metricsReceiver
			if receivers == nil {
				receivers = []any{"vllm", "nvml"}
			}
			assert.Equal(t, receivers, conf.Get("service::pipelines::metrics::receivers"))
		})
	}
}

// A merge replaces lists, so each layer restates the exporter (or receiver) list of the pipelines it extends. This
// guards against a layer silently dropping an exporter or receiver that default.yaml gained later.
func TestLayersKeepBaseExporters(t *testing.T) {
	base, err := loadFile("config/default.yaml")
	require.NoError(t, err)
	for _, l := range layers {
		t.Run(l.file, func(t *testing.T) {
			extra, err := loadFile(l.file)
			require.NoError(t, err)
			pipelines, ok := extra.Get("service::pipelines").(map[string]any)
			require.True(t, ok, "layer extends no pipeline")
			for name := range pipelines {
				extended := 0
				for _, list := range []string{"exporters", "receivers"} {
					key := "service::pipelines::" + name + "::" + list
					layerList, ok := extra.Get(key).([]any)
					if !ok {
						continue
					}
					baseList, ok := base.Get(key).([]any)
					require.True(t, ok, "layer extends pipeline %q that default.yaml does not have", name)
					assert.Subset(t, layerList, baseList)
					assert.Greater(t, len(layerList), len(baseList), "layer adds nothing to %s of %q", list, name)
					extended++
				}
				assert.Positive(t, extended, "layer extends neither exporters nor receivers of %q", name)
			}
		})
	}
}

func TestRetrieveErrors(t *testing.T) {
	p := newTestProvider(nil)
	for _, uri := range []string{"embedded:production", "embedded:", "file:default.yaml"} {
		t.Run(uri, func(t *testing.T) {
			_, err := p.Retrieve(context.Background(), uri, nil)
			require.Error(t, err)
		})
	}
}

func TestFactory(t *testing.T) {
	p := NewFactory().Create(confmap.ProviderSettings{})
	assert.Equal(t, "embedded", p.Scheme())
	retrieved, err := p.Retrieve(context.Background(), DefaultURI, nil)
	require.NoError(t, err)
	_, err = retrieved.AsConf()
	require.NoError(t, err)
	require.NoError(t, p.Shutdown(context.Background()))
}

func mapKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	return keys
}
