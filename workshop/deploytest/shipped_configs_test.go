package deploytest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// maxQueuedRequests is the most requests a shipped config lets an exporter of the connector's metrics hold
// while its backend is down (each at most max_request_bytes, 1 MiB): the bound the README states.
const maxQueuedRequests = 64

// componentType is the type of a component id: "batch" for "batch/metrics".
func componentType(id string) string {
	typ, _, _ := strings.Cut(id, "/")
	return typ
}

// checkBoundedMetricsDelivery checks a shipped collector config against what keeps the vllm connector's
// metrics deliverable and an outage bounded:
//   - no batch processor in a pipeline the connector feeds: the connector sends requests of at most
//     max_request_bytes, and a batch processor, bounded by data points, would merge them past a default OTLP
//     receiver's 4 MiB (issue: 98,007 points refused with two 4 KiB dimensions);
//   - every exporter of such a pipeline, and of a pipeline fed from a spool of them, holds at most
//     maxQueuedRequests requests during an outage, and prometheus_remote_write has no write-ahead log (it
//     grows without bound while Prometheus is down).
func checkBoundedMetricsDelivery(t *testing.T, name string, config []byte) {
	t.Helper()
	var cfg struct {
		Exporters map[string]map[string]any `yaml:"exporters"`
		Service   struct {
			Pipelines map[string]struct {
				Receivers  []string `yaml:"receivers"`
				Processors []string `yaml:"processors"`
				Exporters  []string `yaml:"exporters"`
			} `yaml:"pipelines"`
		} `yaml:"service"`
	}
	if err := yaml.Unmarshal(config, &cfg); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	checked := 0
	for id, p := range cfg.Service.Pipelines {
		if componentType(id) != "metrics" {
			continue
		}
		fromConnector := false
		for _, r := range p.Receivers {
			fromConnector = fromConnector || componentType(r) == "vllm"
		}
		for _, proc := range p.Processors {
			if fromConnector && componentType(proc) == "batch" {
				t.Errorf("%s: pipeline %s re-batches the vllm connector's requests with %s", name, id, proc)
			}
		}
		for _, e := range p.Exporters {
			checked++
			if err := exporterBounded(e, cfg.Exporters[e]); err != nil {
				t.Errorf("%s: pipeline %s: %v", name, id, err)
			}
		}
	}
	if checked == 0 {
		t.Errorf("%s: no metrics exporter found", name)
	}
}

// exporterBounded says why exporter id (its config) could hold more than maxQueuedRequests requests, if it could.
func exporterBounded(id string, config map[string]any) error {
	queued := func(queue any, defaultSize int) error {
		q, _ := queue.(map[string]any)
		if enabled, ok := q["enabled"].(bool); ok && !enabled {
			return nil
		}
		size := defaultSize
		if v, ok := q["queue_size"].(int); ok {
			size = v
		}
		if size > maxQueuedRequests {
			return fmt.Errorf("%s queues up to %d requests during an outage, more than %d", id, size, maxQueuedRequests)
		}
		return nil
	}
	switch componentType(id) {
	case "prometheus_remote_write", "prometheusremotewrite":
		if _, ok := config["wal"]; ok {
			return fmt.Errorf("%s writes a WAL, which grows without bound while Prometheus is down", id)
		}
		return queued(config["remote_write_queue"], 10000) // the exporter's default
	case "otlp_grpc", "otlp_http", "otlp", "otlphttp":
		return queued(config["sending_queue"], 1000) // exporterhelper's default
	case "debug":
		return nil
	case "prometheus", "vllm_status":
		// pull exporters: they keep the latest value of each series (vllm_status: a bounded window of snapshots,
		// see its README) and send nothing, so an absent scraper queues nothing
		return nil
	}
	return fmt.Errorf("%s: an exporter this check does not know", id)
}

// TestShippedConfigsBoundMetricsDelivery checks the embedded default config and every example; the ConfigMap and
// the Helm chart are checked by checkCollectorConfig.
func TestShippedConfigsBoundMetricsDelivery(t *testing.T) {
	paths := append(glob(t, filepath.Join("..", "examples", "*.yaml")),
		filepath.Join("..", "distribution", "embeddedprovider", "config", "default.yaml"))
	for _, path := range paths {
		config, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if filepath.Base(path) == "default.yaml" {
			// the embedded default's optional exporters, merged over it when their variables are set
			rw, err := os.ReadFile(filepath.Join(filepath.Dir(path), "remote_write.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			var exporters struct {
				Exporters map[string]map[string]any `yaml:"exporters"`
			}
			if err := yaml.Unmarshal(rw, &exporters); err != nil {
				t.Fatal(err)
			}
			for id, c := range exporters.Exporters {
				if err := exporterBounded(id, c); err != nil {
					t.Errorf("remote_write.yaml: %v", err)
				}
			}
		}
		checkBoundedMetricsDelivery(t, filepath.Base(path), config)
	}
}
