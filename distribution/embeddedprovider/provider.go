// Package embeddedprovider is a confmap provider that serves the configuration compiled into the
// otelcol-vllm binary under the URI "embedded:default". The binary uses that URI when it is started
// without --config, and it can be layered like any other source:
//
//	otelcol-vllm --config embedded:default --config my-overrides.yaml
//
// The default configuration receives OTLP, runs the vllm processor and connector and the nvml receiver,
// and serves the derived metrics on a status page and JSON API (vllm_status) and for Prometheus to scrape. Exporters to a trace backend (OTLP/gRPC, e.g.
// Jaeger) and to Prometheus (remote write) are merged in only when their environment variables are set,
// so that a machine without those backends gets no exporter errors.
package embeddedprovider // import "github.com/otelcol-vllm/otelcol-vllm/distribution/embeddedprovider"

import (
	"context"
	"embed"
	"fmt"
	"os"
	"strings"

	"go.opentelemetry.io/collector/confmap"
	"go.uber.org/zap"
)

const (
	schemeName = "embedded"

	// DefaultURI names the default configuration.
	DefaultURI = schemeName + ":default"

	// EnvJaegerEndpoint switches on the OTLP/gRPC trace exporter (host:port of Jaeger's OTLP gRPC port).
	EnvJaegerEndpoint = "OTELCOL_VLLM_JAEGER_ENDPOINT"
	// EnvRemoteWriteEndpoint switches on the Prometheus remote-write exporter (full URL, e.g.
	// http://localhost:9090/api/v1/write).
	EnvRemoteWriteEndpoint = "OTELCOL_VLLM_REMOTE_WRITE_ENDPOINT"
	// EnvVLLMMetricsTarget switches on a scrape of vLLM's own /metrics (host:port of vLLM's HTTP server).
	EnvVLLMMetricsTarget = "OTELCOL_VLLM_VLLM_METRICS_TARGET"
)

//go:embed config/*.yaml
var configFiles embed.FS

// layer is an optional piece of configuration merged over the base when its environment variable is set.
// Maps merge key by key; lists (a pipeline's exporters) are replaced, so a layer restates the full
// exporter list of each pipeline it extends.
type layer struct {
	env  string
	file string
}

var layers = []layer{
	{env: EnvJaegerEndpoint, file: "config/jaeger.yaml"},
	{env: EnvRemoteWriteEndpoint, file: "config/remote_write.yaml"},
	{env: EnvVLLMMetricsTarget, file: "config/vllm_metrics.yaml"},
}

type provider struct {
	logger    *zap.Logger
	lookupEnv func(string) (string, bool)
}

// NewFactory returns a factory for the "embedded" scheme provider.
func NewFactory() confmap.ProviderFactory {
	return confmap.NewProviderFactory(func(set confmap.ProviderSettings) confmap.Provider {
		logger := set.Logger
		if logger == nil {
			logger = zap.NewNop()
		}
		return &provider{logger: logger, lookupEnv: os.LookupEnv}
	})
}

func (p *provider) Retrieve(_ context.Context, uri string, _ confmap.WatcherFunc) (*confmap.Retrieved, error) {
	name, ok := strings.CutPrefix(uri, schemeName+":")
	if !ok {
		return nil, fmt.Errorf("%q uri is not supported by %q provider", uri, schemeName)
	}
	if name != "default" {
		return nil, fmt.Errorf("unknown embedded configuration %q (available: %s)", name, DefaultURI)
	}
	conf, err := p.defaultConf()
	if err != nil {
		return nil, err
	}
	return confmap.NewRetrieved(conf.ToStringMap())
}

// defaultConf is the base configuration with every layer whose environment variable is non-empty merged in.
func (p *provider) defaultConf() (*confmap.Conf, error) {
	conf, err := loadFile("config/default.yaml")
	if err != nil {
		return nil, err
	}
	for _, l := range layers {
		value, _ := p.lookupEnv(l.env)
		if strings.TrimSpace(value) == "" {
			continue
		}
		extra, err := loadFile(l.file)
		if err != nil {
			return nil, err
		}
		if err := conf.Merge(extra); err != nil {
			return nil, fmt.Errorf("merging %s: %w", l.file, err)
		}
		p.logger.Info("Embedded default config: exporter enabled by environment",
			zap.String("variable", l.env), zap.String("layer", l.file))
	}
	return conf, nil
}

func loadFile(name string) (*confmap.Conf, error) {
	raw, err := configFiles.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("reading embedded %s: %w", name, err)
	}
	retrieved, err := confmap.NewRetrievedFromYAML(raw)
	if err != nil {
		return nil, fmt.Errorf("parsing embedded %s: %w", name, err)
	}
	conf, err := retrieved.AsConf()
	if err != nil {
		return nil, fmt.Errorf("parsing embedded %s: %w", name, err)
	}
	return conf, nil
}

func (*provider) Scheme() string { return schemeName }

func (*provider) Shutdown(context.Context) error { return nil }
