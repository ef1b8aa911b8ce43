// Package deploy holds no code: it is the home of the tests of the operations kit beside it, the Prometheus
// recording and alerting rules (prometheus/), the Grafana dashboard (grafana/) and the Kubernetes manifests
// (kubernetes/). The tests run promtool and the otelcol-vllm binary when PROMTOOL and OTELCOL_VLLM_BIN name
// them, as `make test` does.
//
// kubernetes/prometheusrule/prometheusrule.yaml (the PrometheusRule of the kustomize component) is generated
// from the rule files by `go generate` (`make generate`).
package deploy // import "github.com/otelcol-vllm/otelcol-vllm/deploy"

//go:generate go run ./internal/genprometheusrule -o kubernetes/prometheusrule/prometheusrule.yaml prometheus/recording-rules.yaml prometheus/alerts.yaml
