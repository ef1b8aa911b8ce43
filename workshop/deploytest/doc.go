// Package deploytest holds no code: it is the home of the tests of the operations kit in deploy/ at the
// repository root, the Prometheus recording and alerting rules (prometheus/), the Grafana dashboard (grafana/),
// the Kubernetes manifests (kubernetes/) and the Helm chart (helm/). The tests run in deploy/ (TestMain), so the
// paths they name are the kit's own. The tests run promtool and the otelcol-vllm binary when PROMTOOL and OTELCOL_VLLM_BIN name
// them, as `make test` does.
//
// kubernetes/prometheusrule/prometheusrule.yaml (the PrometheusRule of the kustomize component) is generated
// from the rule files by `go generate` (`make generate`).
package deploytest // import "github.com/otelcol-vllm/otelcol-vllm/workshop/deploytest"

//go:generate go run ./internal/genprometheusrule -o ../../deploy/kubernetes/prometheusrule/prometheusrule.yaml ../../deploy/prometheus/recording-rules.yaml ../../deploy/prometheus/alerts.yaml
