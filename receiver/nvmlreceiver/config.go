package nvmlreceiver // import "github.com/otelcol-vllm/otelcol-vllm/receiver/nvmlreceiver"

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/scraper/scraperhelper"

	"github.com/otelcol-vllm/otelcol-vllm/internal/confcheck"
	"github.com/otelcol-vllm/otelcol-vllm/receiver/nvmlreceiver/internal/metadata"
)

const (
	defaultCollectionInterval = 10 * time.Second

	// DefaultPodResourcesSocket is the kubelet's pod-resources gRPC socket.
	DefaultPodResourcesSocket = "/var/lib/kubelet/pod-resources/kubelet.sock"
	defaultPodRefreshInterval = 10 * time.Second
	minPodRefreshInterval     = time.Second
	// A scrape reads every GPU through NVML (tens of calls each); more often than once a second only burns CPU
	// (NVML refreshes most values at 1/6 s or slower), and a deadline shorter than 100ms fails every scrape.
	minCollectionInterval = time.Second
	minTimeout            = 100 * time.Millisecond
)

// Config is the configuration of the nvml receiver.
type Config struct {
	scraperhelper.ControllerConfig `mapstructure:",squash"`
	metadata.MetricsBuilderConfig  `mapstructure:",squash"`

	// Devices limits the GPUs that are reported. Each entry is an NVML index ("0"), a GPU UUID ("GPU-…") or a
	// MIG instance UUID ("MIG-…"). A MIG instance is reported when it or its parent GPU is selected.
	// Empty means every GPU NVML can see.
	Devices []string `mapstructure:"devices"`

	// LibraryPath is the NVML library to load. Empty means the system's libnvidia-ml.so.1, found through the
	// dynamic loader's search path.
	LibraryPath string `mapstructure:"library_path"`

	// Kubernetes configures which pod, namespace and container a GPU is allocated to.
	Kubernetes KubernetesConfig `mapstructure:"kubernetes"`

	// prevent unkeyed literal initialization
	_ struct{}
}

// KubernetesConfig configures the pod attribution read from the kubelet's pod-resources API.
type KubernetesConfig struct {
	// PodResourcesSocket is the kubelet's pod-resources unix socket (mount it read-only). Empty turns pod
	// attribution off. Where the socket does not exist (not a Kubernetes node) metrics carry no pod attributes.
	PodResourcesSocket string `mapstructure:"pod_resources_socket"`
	// RefreshInterval is how often the GPU allocations are listed; a GPU released by a pod loses its pod
	// attributes at the next refresh.
	RefreshInterval time.Duration `mapstructure:"refresh_interval"`

	// prevent unkeyed literal initialization
	_ struct{}
}

var (
	_ confmap.Validator   = (*Config)(nil)
	_ confmap.Unmarshaler = (*Config)(nil)
)

// Unmarshal refuses what the decoder would reinterpret before decoding, as the vllm connector and processor do:
// a duration without a unit (`timeout: 5` would be 5ns), a fractional or overflowing integer.
func (cfg *Config) Unmarshal(conf *confmap.Conf) error { return confcheck.Unmarshal(conf, cfg) }

func createDefaultConfig() component.Config {
	controller := scraperhelper.NewDefaultControllerConfig()
	controller.CollectionInterval = defaultCollectionInterval
	return &Config{
		ControllerConfig:     controller,
		MetricsBuilderConfig: metadata.NewDefaultMetricsBuilderConfig(),
		Kubernetes: KubernetesConfig{
			PodResourcesSocket: DefaultPodResourcesSocket,
			RefreshInterval:    defaultPodRefreshInterval,
		},
	}
}

// Validate checks the receiver configuration; every error names the offending key.
func (cfg *Config) Validate() error {
	var errs []error
	// collection_interval 0 is refused by scraperhelper's own check, with its message
	if cfg.CollectionInterval > 0 && cfg.CollectionInterval < minCollectionInterval {
		errs = append(errs, fmt.Errorf("collection_interval: must be at least %s, got %s", minCollectionInterval, cfg.CollectionInterval))
	}
	switch {
	case cfg.Timeout < 0:
		errs = append(errs, fmt.Errorf("timeout: must not be negative (0 means no deadline), got %s", cfg.Timeout))
	case cfg.Timeout > 0 && cfg.Timeout < minTimeout:
		errs = append(errs, fmt.Errorf("timeout: must be 0 (no deadline) or at least %s, got %s", minTimeout, cfg.Timeout))
	case cfg.Timeout > cfg.CollectionInterval && cfg.CollectionInterval > 0:
		errs = append(errs, fmt.Errorf("timeout: must be at most collection_interval (%s), got %s", cfg.CollectionInterval, cfg.Timeout))
	}
	if cfg.InitialDelay < 0 {
		errs = append(errs, fmt.Errorf("initial_delay: must not be negative, got %s", cfg.InitialDelay))
	}
	seen := make(map[string]int, len(cfg.Devices))
	for i, device := range cfg.Devices {
		if err := validateDevice(device); err != nil {
			errs = append(errs, fmt.Errorf("devices[%d]: %w", i, err))
			continue
		}
		// "0" and "00" name the same GPU, so indexes are compared by value.
		key := device
		if idx, err := strconv.Atoi(device); err == nil {
			key = strconv.Itoa(idx)
		}
		if first, dup := seen[key]; dup {
			errs = append(errs, fmt.Errorf("devices[%d]: %q names the same GPU as devices[%d] (%q)", i, device, first, cfg.Devices[first]))
			continue
		}
		seen[key] = i
	}
	if p := cfg.Kubernetes.PodResourcesSocket; p != "" && !strings.HasPrefix(p, "/") {
		errs = append(errs, fmt.Errorf("kubernetes.pod_resources_socket: %q must be an absolute path (or empty to turn pod attribution off)", p))
	}
	if cfg.Kubernetes.RefreshInterval < minPodRefreshInterval {
		errs = append(errs, fmt.Errorf("kubernetes.refresh_interval: must be at least %s, got %s", minPodRefreshInterval, cfg.Kubernetes.RefreshInterval))
	}
	if p := cfg.LibraryPath; p != "" {
		switch {
		case strings.TrimSpace(p) != p:
			errs = append(errs, fmt.Errorf("library_path: %q has leading or trailing spaces", p))
		case strings.ContainsRune(p, '/') && !strings.HasPrefix(p, "/"):
			// dlopen would resolve it against the collector's working directory.
			errs = append(errs, fmt.Errorf("library_path: %q must be an absolute path or a bare library name such as libnvidia-ml.so.1", p))
		}
	}
	return errors.Join(errs...)
}

func validateDevice(device string) error {
	switch {
	case device == "":
		return errors.New("empty entry; use an NVML index such as \"0\" or a UUID such as \"GPU-…\"")
	case strings.HasPrefix(device, "GPU-") || strings.HasPrefix(device, "MIG-"):
		if len(device) == len("GPU-") {
			return fmt.Errorf("%q has no UUID after the prefix", device)
		}
		return nil
	}
	if _, err := strconv.ParseUint(device, 10, 31); err != nil {
		return fmt.Errorf("%q is neither an NVML index (0, 1, …) nor a UUID starting with GPU- or MIG-", device)
	}
	return nil
}

// deviceSelector answers whether a GPU or MIG instance is selected by the devices setting.
type deviceSelector struct {
	all     bool
	indexes map[int]string    // NVML index -> the entry that names it
	uuids   map[string]string // UUID -> the entry that names it
	anyMIG  bool              // some entry names a MIG instance
	matched map[string]bool   // entries that matched something, to warn about the others
	entries []string
}

func newDeviceSelector(devices []string) *deviceSelector {
	s := &deviceSelector{
		all:     len(devices) == 0,
		indexes: map[int]string{},
		uuids:   map[string]string{},
		matched: map[string]bool{},
		entries: devices,
	}
	for _, d := range devices {
		if idx, err := strconv.Atoi(d); err == nil {
			s.indexes[idx] = d
			continue
		}
		s.uuids[d] = d
		if strings.HasPrefix(d, "MIG-") {
			s.anyMIG = true
		}
	}
	return s
}

func (s *deviceSelector) gpuSelected(index int, uuid string) bool {
	if s.all {
		return true
	}
	if e, ok := s.indexes[index]; ok {
		s.matched[e] = true
		return true
	}
	if e, ok := s.uuids[uuid]; ok {
		s.matched[e] = true
		return true
	}
	return false
}

// migSelected reports whether a MIG instance is reported: its parent GPU is selected or it is named itself.
func (s *deviceSelector) migSelected(parentSelected bool, uuid string) bool {
	if parentSelected {
		return true
	}
	if e, ok := s.uuids[uuid]; ok {
		s.matched[e] = true
		return true
	}
	return false
}

// unmatched lists the configured entries that matched no GPU or MIG instance so far.
func (s *deviceSelector) unmatched() []string {
	var out []string
	for _, e := range s.entries {
		if !s.matched[e] {
			out = append(out, e)
		}
	}
	return out
}
