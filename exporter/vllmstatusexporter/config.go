package vllmstatusexporter // import "github.com/otelcol-vllm/otelcol-vllm/exporter/vllmstatusexporter"

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"time"

	"go.opentelemetry.io/collector/config/confighttp"
	"go.opentelemetry.io/collector/confmap"
)

// Config of the vllm_status exporter.
type Config struct {
	// ServerConfig is the HTTP server (endpoint, TLS, CORS, auth...) that serves the page and the API.
	ServerConfig confighttp.ServerConfig `mapstructure:",squash"`
	// Window is the default sliding window of percentiles, rates and alerts.
	Window time.Duration `mapstructure:"window"`
	// Windows are the windows a client may ask for (?window=1m); the largest sets how much history is kept.
	Windows []time.Duration `mapstructure:"windows"`
	// SnapshotInterval is how often the running totals are copied into the window (its resolution).
	SnapshotInterval time.Duration `mapstructure:"snapshot_interval"`
	// MaxModels bounds the models kept; further models are counted in one "otel.metric.overflow" row.
	MaxModels int `mapstructure:"max_models"`
	// MaxGPUs bounds the GPUs kept.
	MaxGPUs int `mapstructure:"max_gpus"`
	// MaxSeries bounds the input series remembered to turn cumulative points into increments.
	MaxSeries int `mapstructure:"max_series"`
	// Stale is how long a gauge (running, waiting, a GPU) is shown after its last point.
	Stale time.Duration `mapstructure:"stale"`
	// JaegerURL, when set, links the slowest requests to <jaeger_url>/trace/<trace id>.
	JaegerURL string `mapstructure:"jaeger_url"`
	// SlowestRequests is how many of the slowest recent requests (from exemplars) are listed.
	SlowestRequests int `mapstructure:"slowest_requests"`
	// Alerts are the built-in alert rules.
	Alerts AlertsConfig `mapstructure:"alerts"`

	_ struct{}
}

// AlertsConfig holds the built-in rules; each is evaluated per model over Config.Window.
type AlertsConfig struct {
	Queue     AlertRule `mapstructure:"queue"`
	TTFTP95   AlertRule `mapstructure:"ttft_p95"`
	ErrorRate AlertRule `mapstructure:"error_rate"`
	Goodput   AlertRule `mapstructure:"goodput"`

	_ struct{}
}

// AlertRule fires when its value crosses Threshold (above, or below for goodput) for at least For.
type AlertRule struct {
	Enabled   bool          `mapstructure:"enabled"`
	Threshold float64       `mapstructure:"threshold"`
	For       time.Duration `mapstructure:"for"`

	_ struct{}
}

var _ confmap.Validator = (*Config)(nil)

// Validate checks the window, the bounds and the alert rules.
func (c *Config) Validate() error {
	var errs []error
	if c.SnapshotInterval < time.Second {
		errs = append(errs, fmt.Errorf("snapshot_interval must be at least 1s, got %s", c.SnapshotInterval))
	}
	if len(c.Windows) == 0 || len(c.Windows) > 8 {
		errs = append(errs, errors.New("windows must list 1 to 8 durations"))
	}
	for _, w := range c.Windows {
		if w < 2*c.SnapshotInterval || w > 24*time.Hour {
			errs = append(errs, fmt.Errorf("window %s must be at least twice snapshot_interval and at most 24h", w))
		}
	}
	if !slices.Contains(c.Windows, c.Window) {
		errs = append(errs, fmt.Errorf("window %s must be one of windows %v", c.Window, c.Windows))
	}
	if c.SnapshotInterval >= time.Second && len(c.Windows) > 0 && slices.Max(c.Windows)/c.SnapshotInterval > 10000 {
		errs = append(errs, errors.New("the largest window holds more than 10000 snapshots: raise snapshot_interval"))
	}
	for name, v := range map[string]int{"max_models": c.MaxModels, "max_gpus": c.MaxGPUs, "max_series": c.MaxSeries, "slowest_requests": c.SlowestRequests} {
		if v < 1 || v > 100000 {
			errs = append(errs, fmt.Errorf("%s must be between 1 and 100000, got %d", name, v))
		}
	}
	if c.Stale <= 0 {
		errs = append(errs, errors.New("stale must be positive"))
	}
	if c.JaegerURL != "" {
		u, err := url.Parse(c.JaegerURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("jaeger_url must be an absolute http(s) URL, got %q", c.JaegerURL))
		}
	}
	for name, r := range map[string]AlertRule{"queue": c.Alerts.Queue, "ttft_p95": c.Alerts.TTFTP95, "error_rate": c.Alerts.ErrorRate, "goodput": c.Alerts.Goodput} {
		if r.For < 0 || r.Threshold < 0 || r.Threshold != r.Threshold {
			errs = append(errs, fmt.Errorf("alerts.%s: threshold and for must not be negative", name))
		}
	}
	if c.Alerts.ErrorRate.Threshold > 1 || c.Alerts.Goodput.Threshold > 1 {
		errs = append(errs, errors.New("alerts.error_rate and alerts.goodput thresholds are ratios (0..1)"))
	}
	return errors.Join(errs...)
}
