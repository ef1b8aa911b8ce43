package deploytest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/otelcol-vllm/otelcol-vllm/workshop/testkit"
)

// Paths, relative to this package's directory, and the release the tests render.
const (
	helmChartDir      = "helm/otelcol-vllm"
	helmValuesFile    = "helm/otelcol-vllm/values.yaml"
	helmAllValuesFile = "helm/otelcol-vllm/ci/all-values.yaml"
	helmReadmeFile    = "helm/otelcol-vllm/README.md"
	helmRulesLink     = "helm/otelcol-vllm/files/prometheus"
	helmRelease       = "vllm-telemetry"
	helmNamespace     = "gpu-monitoring"
	mebibyte          = 1 << 20
)

// kubernetesTypes are the Go types of every kind the chart renders, by apiVersion/kind. A rendered object of
// another kind fails the tests.
var kubernetesTypes = map[string]func() any{
	"v1/Namespace":      func() any { return &corev1.Namespace{} },
	"v1/ConfigMap":      func() any { return &corev1.ConfigMap{} },
	"v1/Service":        func() any { return &corev1.Service{} },
	"v1/ServiceAccount": func() any { return &corev1.ServiceAccount{} },
	"apps/v1/DaemonSet": func() any { return &appsv1.DaemonSet{} },
	"rbac.authorization.k8s.io/v1/ClusterRole":        func() any { return &rbacv1.ClusterRole{} },
	"rbac.authorization.k8s.io/v1/ClusterRoleBinding": func() any { return &rbacv1.ClusterRoleBinding{} },
	"monitoring.coreos.com/v1/ServiceMonitor":         func() any { return &serviceMonitor{} },
	"monitoring.coreos.com/v1/PodMonitor":             func() any { return &podMonitor{} },
	"monitoring.coreos.com/v1/PrometheusRule":         func() any { return &prometheusRule{} },
}

// rendered is the output of `helm template` or `kustomize build`: every object decoded strictly into its Kubernetes type, and the
// loosely typed kit the Kubernetes manifest checks read.
type rendered struct {
	typed  map[string]any // "Kind/name" -> *corev1.ConfigMap, *appsv1.DaemonSet, ...
	raw    map[string][]byte
	kit    kubernetesKit
	config map[string]any // the collector config in the ConfigMap
}

func (r rendered) kinds() []string {
	var kinds []string
	for key := range r.typed {
		kind, _, _ := strings.Cut(key, "/")
		kinds = append(kinds, kind)
	}
	sort.Strings(kinds)
	return kinds
}

func (r rendered) daemonSet(t *testing.T) *appsv1.DaemonSet {
	t.Helper()
	return theTyped[*appsv1.DaemonSet](t, r, "DaemonSet")
}

// theTyped returns the only rendered object of a kind.
func theTyped[T any](t *testing.T, r rendered, kind string) T {
	t.Helper()
	var found []T
	for key, obj := range r.typed {
		if strings.HasPrefix(key, kind+"/") {
			found = append(found, obj.(T))
		}
	}
	if len(found) != 1 {
		t.Fatalf("want exactly one %s, rendered %d", kind, len(found))
	}
	return found[0]
}

// helmCommand runs helm with its cache, config and data homes in a temporary directory, so that the tests
// neither read nor change the user's Helm setup. It returns stdout, and stderr in the error.
func helmCommand(t *testing.T, helm string, args ...string) (string, error) {
	t.Helper()
	home := t.TempDir()
	cmd := exec.CommandContext(t.Context(), helm, args...)
	cmd.Env = append(os.Environ(),
		"HELM_CACHE_HOME="+filepath.Join(home, "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(home, "config"),
		"HELM_DATA_HOME="+filepath.Join(home, "data"))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("helm %s: %w\n%s%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String(), nil
}

// renderChart runs `helm template` on chart with the extra arguments (-f, --set) and decodes its output.
func renderChart(t *testing.T, helm, chart string, args ...string) rendered {
	t.Helper()
	out, err := helmCommand(t, helm, append([]string{"template", helmRelease, chart, "--namespace", helmNamespace}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	r := decodeRendered(t, out, helmNamespace)
	// The pods carry the config's checksum, so that `helm upgrade` rolls them when it changes. (The ConfigMap
	// holds the config as a YAML block, which ends it with a newline.)
	sum := sha256.Sum256([]byte(strings.TrimSuffix(r.kit.config, "\n")))
	if got := r.kit.daemonSet.Spec.Template.Metadata.Annotations["checksum/config"]; got != hex.EncodeToString(sum[:]) {
		t.Errorf("pod annotation checksum/config %q is not the sha256 of the collector config", got)
	}
	return r
}

// decodeRendered decodes the objects of a multi-document YAML stream (`helm template`, `kustomize build`)
// whose namespaced objects belong in namespace.
func decodeRendered(t *testing.T, out, namespace string) rendered {
	t.Helper()
	r := rendered{typed: map[string]any{}, raw: map[string][]byte{}}
	var objects []k8sObject
	dec := yaml.NewDecoder(strings.NewReader(out))
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("helm template output: %v\n%s", err, out)
		}
		if len(doc.Content) == 0 {
			continue // a template that rendered nothing
		}
		var head struct {
			APIVersion string     `yaml:"apiVersion"`
			Kind       string     `yaml:"kind"`
			Metadata   objectMeta `yaml:"metadata"`
		}
		if err := doc.Decode(&head); err != nil {
			t.Fatal(err)
		}
		raw, err := yaml.Marshal(&doc)
		if err != nil {
			t.Fatal(err)
		}
		newTyped, ok := kubernetesTypes[head.APIVersion+"/"+head.Kind]
		if !ok {
			t.Fatalf("rendered %s %s %s: no Kubernetes type known to this test", head.APIVersion, head.Kind, head.Metadata.Name)
		}
		typed := newTyped()
		// Strict: a field the Kubernetes type does not have, a duplicate field or a value of the wrong type
		// is an error.
		if err := sigsyaml.UnmarshalStrict(raw, typed); err != nil {
			t.Fatalf("rendered %s %s does not decode as %T: %v\n%s", head.Kind, head.Metadata.Name, typed, err, raw)
		}
		key := head.Kind + "/" + head.Metadata.Name
		if _, dup := r.typed[key]; dup {
			t.Fatalf("rendered %s twice", key)
		}
		r.typed[key], r.raw[key] = typed, raw
		if clusterScoped := slices.Contains([]string{"Namespace", "ClusterRole", "ClusterRoleBinding"}, head.Kind); !clusterScoped && head.Metadata.Namespace != namespace {
			t.Errorf("%s: namespace %q, want %q", key, head.Metadata.Namespace, namespace)
		}
		objects = append(objects, k8sObject{Kind: head.Kind, Name: head.Metadata.Name, File: "rendered", document: &doc})
	}
	r.kit = newKubernetesKit(t, namespace, objects)
	if err := yaml.Unmarshal([]byte(r.kit.config), &r.config); err != nil {
		t.Fatalf("collector config: %v", err)
	}
	return r
}

// loadYAMLMap reads a YAML file into nested maps.
func loadYAMLMap(t *testing.T, path string) map[string]any {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := yaml.Unmarshal(data, &m); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return m
}

// valueAs decodes a subtree of the values into a Kubernetes type, for comparing with the rendered object.
func valueAs[T any](t *testing.T, values map[string]any, path ...string) T {
	t.Helper()
	var v T
	data, err := json.Marshal(at(values, path...))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatalf("values %s as %T: %v", strings.Join(path, "."), v, err)
	}
	return v
}

// wantMemoryLimiterMiB is the documented formula: the percentage of the memory limit, in whole MiB.
func wantMemoryLimiterMiB(t *testing.T, limit string, percent int64) int {
	t.Helper()
	q, err := resource.ParseQuantity(limit)
	if err != nil {
		t.Fatal(err)
	}
	return int(q.Value() * percent / 100 / mebibyte)
}

func helmBin(t *testing.T) string {
	t.Helper()
	return testkit.Tool(t, testkit.Helm)
}

func TestHelmLint(t *testing.T) {
	helm := helmBin(t)
	for _, args := range [][]string{nil, {"--values", helmAllValuesFile}} {
		out, err := helmCommand(t, helm, append([]string{"lint", "--strict", helmChartDir}, args...)...)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out, "1 chart(s) linted, 0 chart(s) failed") {
			t.Errorf("helm lint %q:\n%s", args, out)
		}
	}
}

func TestHelmChartDefaults(t *testing.T) {
	r := renderChart(t, helmBin(t), helmChartDir)
	want := []string{"ClusterRole", "ClusterRoleBinding", "ConfigMap", "DaemonSet", "Service", "ServiceAccount"}
	if diff := cmp.Diff(want, r.kinds()); diff != "" {
		t.Errorf("rendered kinds (-want +got):\n%s", diff)
	}
	checkDaemonSet(t, r.kit)
	checkOTLPService(t, r.kit)
	checkCollectorConfig(t, r.kit)
	if r.kit.service.Spec.InternalTrafficPolicy != "Local" {
		t.Errorf("OTLP Service: internalTrafficPolicy %q, want Local", r.kit.service.Spec.InternalTrafficPolicy)
	}

	values := loadYAMLMap(t, helmValuesFile)
	chart := loadYAMLMap(t, filepath.Join(helmChartDir, "Chart.yaml"))
	pod := r.daemonSet(t).Spec.Template.Spec
	if got, want := pod.Containers[0].Image, fmt.Sprintf("%s:%s", at(values, "image", "repository"), chart["appVersion"]); got != want {
		t.Errorf("image %q, want %q (the chart's appVersion)", got, want)
	}
	if pod.RuntimeClassName == nil || *pod.RuntimeClassName != "nvidia" {
		t.Errorf("runtimeClassName %v, want nvidia", pod.RuntimeClassName)
	}
	if diff := cmp.Diff(map[string]string{"nvidia.com/gpu.present": "true"}, pod.NodeSelector); diff != "" {
		t.Errorf("nodeSelector (-want +got):\n%s", diff)
	}
	for _, v := range pod.Volumes {
		if v.HostPath != nil && v.Name != "pod-resources" {
			t.Errorf("volume %s: a hostPath by default (%s); only the pod-resources socket directory is", v.Name, v.HostPath.Path)
		}
	}

	// The vLLM scrape sets job from the pod's app.kubernetes.io/name (the span coverage join) and k8s_pod_name
	// (the energy-per-token join).
	targets := map[string]string{}
	scrape := at(r.config, "receivers", "prometheus", "config", "scrape_configs").([]any)[0]
	for _, rc := range at(scrape, "relabel_configs").([]any) {
		if src, ok := at(rc, "source_labels").([]any); ok && len(src) == 1 {
			if target, ok := at(rc, "target_label").(string); ok {
				targets[target] = src[0].(string)
			}
		}
	}
	for target, source := range map[string]string{
		"job": "__meta_kubernetes_pod_label_app_kubernetes_io_name", "k8s_pod_name": "__meta_kubernetes_pod_name",
		"k8s_namespace_name": "__meta_kubernetes_namespace", "instance": "__meta_kubernetes_pod_name",
	} {
		if targets[target] != source {
			t.Errorf("vLLM scrape: %s from %q, want %q", target, targets[target], source)
		}
	}

	// The SLO objectives reach both the processor and the connector.
	wantSLO := map[string]any{"ttft": "200ms", "tpot": "50ms", "e2e": "5s"}
	for _, component := range [][]string{{"processors", "vllm"}, {"connectors", "vllm"}} {
		if diff := cmp.Diff(wantSLO, at(r.config, append(component, "slo")...)); diff != "" {
			t.Errorf("%s slo (-want +got):\n%s", strings.Join(component, "."), diff)
		}
	}
	checkMemoryLimiter(t, r, "1Gi", 80, 20)
	if got := at(r.config, "exporters", "prometheus_remote_write", "endpoint"); got != at(values, "exporters", "remoteWrite", "endpoint") {
		t.Errorf("remote write endpoint %v, want the default value", got)
	}
	if got := at(r.config, "exporters", "otlp_grpc/jaeger", "endpoint"); got != at(values, "exporters", "jaeger", "endpoint") {
		t.Errorf("Jaeger endpoint %v, want the default value", got)
	}
	if at(r.config, "exporters", "otlp_grpc/otlp") != nil {
		t.Error("the OTLP exporter is rendered although exporters.otlp.enabled is false")
	}
}

// checkMemoryLimiter checks the memory_limiter and GOMEMLIMIT against the container's memory limit.
func checkMemoryLimiter(t *testing.T, r rendered, limit string, limitPercent, spikePercent int64) {
	t.Helper()
	agent := r.daemonSet(t).Spec.Template.Spec.Containers[0]
	if want := resource.MustParse(limit); !agent.Resources.Limits.Memory().Equal(want) {
		got := agent.Resources.Limits.Memory().String()
		t.Errorf("container memory limit %s, want %s", got, limit)
	}
	wantLimit := wantMemoryLimiterMiB(t, limit, limitPercent)
	wantSpike := wantMemoryLimiterMiB(t, limit, spikePercent)
	ml := at(r.config, "processors", "memory_limiter")
	if at(ml, "limit_mib") != wantLimit || at(ml, "spike_limit_mib") != wantSpike {
		t.Errorf("memory limit %s: memory_limiter %v, want limit_mib %d (%d%%), spike_limit_mib %d (%d%%)",
			limit, ml, wantLimit, limitPercent, wantSpike, spikePercent)
	}
	if at(ml, "limit_percentage") != nil || at(ml, "spike_limit_percentage") != nil {
		t.Errorf("memory_limiter %v: percentages beside the computed MiB", ml)
	}
	if e, _ := r.kit.agent.env("GOMEMLIMIT"); e.Value != fmt.Sprintf("%dMiB", wantLimit) {
		t.Errorf("GOMEMLIMIT %q, want %dMiB (limit_mib)", e.Value, wantLimit)
	}
}

// TestHelmChartAllValues renders the chart with every value set and checks that each lands where the
// chart's README says.
func TestHelmChartAllValues(t *testing.T) {
	r := renderChart(t, helmBin(t), helmChartDir, "--values", helmAllValuesFile)
	v := loadYAMLMap(t, helmAllValuesFile)
	want := []string{"ClusterRole", "ClusterRoleBinding", "ConfigMap", "DaemonSet", "PodMonitor", "PrometheusRule", "Service", "Service", "ServiceAccount", "ServiceMonitor"}
	if diff := cmp.Diff(want, r.kinds()); diff != "" {
		t.Errorf("rendered kinds (-want +got):\n%s", diff)
	}
	// Not checkCollectorConfig: it wants the recommended connector settings, which these values change.
	checkBoundedMetricsDelivery(t, "collector config, all values", []byte(r.kit.config))
	checkDaemonSet(t, r.kit)
	checkOTLPService(t, r.kit)

	fullname := at(v, "fullnameOverride").(string)
	ds := r.daemonSet(t)
	pod := ds.Spec.Template.Spec
	agent := pod.Containers[0]
	eq := func(what string, want, got any) {
		t.Helper()
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", what, diff)
		}
	}

	// Names and identity.
	eq("DaemonSet name", fullname, ds.Name)
	eq("app.kubernetes.io/name (nameOverride)", at(v, "nameOverride"), ds.Spec.Template.Labels["app.kubernetes.io/name"])
	eq("image", fmt.Sprintf("%s:%s", at(v, "image", "repository"), at(v, "image", "tag")), agent.Image)
	eq("imagePullPolicy", at(v, "image", "pullPolicy"), string(agent.ImagePullPolicy))
	eq("imagePullSecrets", valueAs[[]corev1.LocalObjectReference](t, v, "imagePullSecrets"), pod.ImagePullSecrets)
	sa := theTyped[*corev1.ServiceAccount](t, r, "ServiceAccount")
	eq("service account", at(v, "serviceAccount", "name"), sa.Name)
	eq("service account of the pods", sa.Name, pod.ServiceAccountName)
	eq("service account annotations", valueAs[map[string]string](t, v, "serviceAccount", "annotations"), sa.Annotations)
	binding := theTyped[*rbacv1.ClusterRoleBinding](t, r, "ClusterRoleBinding")
	eq("ClusterRoleBinding subjects", []rbacv1.Subject{{Kind: "ServiceAccount", Name: sa.Name, Namespace: helmNamespace}}, binding.Subjects)

	// Scheduling and security.
	eq("runtimeClassName", at(v, "gpu", "runtimeClassName"), *pod.RuntimeClassName)
	// Helm merges a map value into the default map; a null removes the default's key.
	nodeSelector := map[string]string{}
	for key, value := range at(v, "nodeSelector").(map[string]any) {
		if value != nil {
			nodeSelector[key] = value.(string)
		}
	}
	if _, removed := at(v, "nodeSelector").(map[string]any)["nvidia.com/gpu.present"]; !removed {
		t.Fatalf("%s: nodeSelector does not remove the default label; the test expects it to", helmAllValuesFile)
	}
	eq("nodeSelector", nodeSelector, pod.NodeSelector)
	eq("tolerations", valueAs[[]corev1.Toleration](t, v, "tolerations"), pod.Tolerations)
	eq("affinity", valueAs[*corev1.Affinity](t, v, "affinity"), pod.Affinity)
	eq("priorityClassName", at(v, "priorityClassName"), pod.PriorityClassName)
	eq("podSecurityContext", valueAs[*corev1.PodSecurityContext](t, v, "podSecurityContext"), pod.SecurityContext)
	eq("securityContext", valueAs[*corev1.SecurityContext](t, v, "securityContext"), agent.SecurityContext)
	eq("updateStrategy", valueAs[appsv1.DaemonSetUpdateStrategy](t, v, "updateStrategy"), ds.Spec.UpdateStrategy)
	eq("resources", valueAs[corev1.ResourceRequirements](t, v, "resources"), agent.Resources)
	for key, value := range valueAs[map[string]string](t, v, "podAnnotations") {
		eq("pod annotation "+key, value, ds.Spec.Template.Annotations[key])
	}
	for key, value := range valueAs[map[string]string](t, v, "podLabels") {
		eq("pod label "+key, value, ds.Spec.Template.Labels[key])
	}

	// The pod-resources socket directory, read-only.
	path := at(v, "gpu", "podResources", "path").(string)
	hostPathDir := corev1.HostPathDirectory
	eq("pod-resources volume", []corev1.Volume{{Name: "pod-resources", VolumeSource: corev1.VolumeSource{
		HostPath: &corev1.HostPathVolumeSource{Path: path, Type: &hostPathDir}}}},
		slices.DeleteFunc(slices.Clone(pod.Volumes), func(vol corev1.Volume) bool { return vol.HostPath == nil }))
	eq("pod-resources mount", []corev1.VolumeMount{{Name: "pod-resources", MountPath: path, ReadOnly: true}},
		slices.DeleteFunc(slices.Clone(agent.VolumeMounts), func(m corev1.VolumeMount) bool { return m.Name != "pod-resources" }))

	// Ports: the container, the receivers, the probes and the collector's own metrics.
	ports := map[string]int32{}
	for _, p := range agent.Ports {
		ports[p.Name] = p.ContainerPort
	}
	eq("container ports", map[string]int32{
		"otlp-grpc": int32(at(v, "ports", "otlpGrpc").(int)), "otlp-http": int32(at(v, "ports", "otlpHttp").(int)),
		"health": int32(at(v, "ports", "health").(int)), "metrics": int32(at(v, "ports", "metrics").(int)),
		"scrape": int32(at(v, "ports", "prometheus").(int)),
	}, ports)
	eq("scrape endpoint", fmt.Sprintf("${env:MY_POD_IP}:%d", at(v, "ports", "prometheus")), at(r.config, "exporters", "prometheus", "endpoint"))
	pm := theTyped[*podMonitor](t, r, "PodMonitor")
	eq("PodMonitor interval", at(v, "exporters", "prometheus", "podMonitor", "interval"), pm.Spec.PodMetricsEndpoints[0].Interval)
	eq("PodMonitor label", "kube-prometheus", pm.Labels["release"])
	eq("health_check endpoint", fmt.Sprintf("${env:MY_POD_IP}:%d", at(v, "ports", "health")), at(r.config, "extensions", "health_check", "endpoint"))
	eq("readiness probe port", "health", agent.ReadinessProbe.HTTPGet.Port.String())
	reader := at(r.config, "service", "telemetry", "metrics", "readers").([]any)[0]
	eq("own metrics endpoint", map[string]any{"host": "${env:MY_POD_IP}", "port": at(v, "ports", "metrics")}, at(reader, "pull", "exporter", "prometheus"))
	otlpService, ok := r.typed["Service/"+fullname].(*corev1.Service)
	if !ok {
		t.Fatalf("no Service %s", fullname)
	}
	eq("OTLP Service annotations", valueAs[map[string]string](t, v, "service", "annotations"), otlpService.Annotations)
	eq("OTLP Service internalTrafficPolicy", corev1.ServiceInternalTrafficPolicyLocal, *otlpService.Spec.InternalTrafficPolicy)

	// The collector config.
	slo := at(v, "slo")
	eq("processor slo", slo, at(r.config, "processors", "vllm", "slo"))
	eq("connector slo", slo, at(r.config, "connectors", "vllm", "slo"))
	eq("connector exemplars", at(v, "connector", "exemplars"), at(r.config, "connectors", "vllm", "exemplars", "enabled"))
	eq("connector resource_attributes", at(v, "connector", "resourceAttributes"), at(r.config, "connectors", "vllm", "resource_attributes"))
	eq("nvml collection_interval", at(v, "nvml", "collectionInterval"), at(r.config, "receivers", "nvml", "collection_interval"))
	eq("nvml pod-resources socket", path+"/kubelet.sock", at(r.config, "receivers", "nvml", "kubernetes", "pod_resources_socket"))
	scrape := at(r.config, "receivers", "prometheus", "config", "scrape_configs").([]any)[0]
	eq("vLLM scrape_interval", at(v, "vllmMetrics", "scrapeInterval"), at(scrape, "scrape_interval"))
	eq("memory_limiter check_interval", at(v, "memoryLimiter", "checkInterval"), at(r.config, "processors", "memory_limiter", "check_interval"))
	checkMemoryLimiter(t, r, at(v, "resources", "limits", "memory").(string),
		int64(at(v, "memoryLimiter", "limitPercentage").(int)), int64(at(v, "memoryLimiter", "spikeLimitPercentage").(int)))

	rw, jaeger, otlp := at(v, "exporters", "remoteWrite"), at(v, "exporters", "jaeger"), at(v, "exporters", "otlp")
	eq("prometheus_remote_write", map[string]any{
		"endpoint": at(rw, "endpoint"), "headers": at(rw, "headers"), "tls": at(rw, "tls"),
		"timeout": at(v, "extraConfig", "exporters", "prometheus_remote_write", "timeout"), // from extraConfig
		// the pod labels the energy-per-token rules join on
		"resource_constant_labels": map[string]any{"included": []any{"k8s.pod.name", "k8s.namespace.name"}},
		"remote_write_queue":       map[string]any{"queue_size": 64}, // an outage holds at most 64 requests
	}, at(r.config, "exporters", "prometheus_remote_write"))
	eq("otlp_grpc/jaeger", map[string]any{"endpoint": at(jaeger, "endpoint"), "tls": at(jaeger, "tls")},
		at(r.config, "exporters", "otlp_grpc/jaeger"))
	eq("otlp_grpc/otlp", map[string]any{"endpoint": at(otlp, "endpoint"), "headers": at(otlp, "headers"), "tls": at(otlp, "tls"),
		// cumulative metrics in order; an outage holds at most 64 requests
		"sending_queue": map[string]any{"num_consumers": 1, "queue_size": 64}},
		at(r.config, "exporters", "otlp_grpc/otlp"))
	pipelines := at(r.config, "service", "pipelines")
	// sampling.tracePercentage < 100: every span to the connector, a sample to the trace exporters
	eq("traces exporters", []any{"forward"}, at(pipelines, "traces", "exporters"))
	eq("traces/metrics exporters", []any{"vllm"}, at(pipelines, "traces/metrics", "exporters"))
	eq("traces/sampled exporters", []any{"otlp_grpc/jaeger", "otlp_grpc/otlp"}, at(pipelines, "traces/sampled", "exporters"))
	eq("sampling_percentage", fmt.Sprint(at(v, "sampling", "tracePercentage")), fmt.Sprint(at(r.config, "processors", "probabilistic_sampler", "sampling_percentage")))
	eq("sampling.ratio", at(v, "sampling", "sourceRatio"), at(r.config, "connectors", "vllm", "sampling", "ratio"))
	for _, p := range []string{"metrics/vllm", "metrics/gpu"} {
		eq(p+" exporters", []any{"prometheus_remote_write", "otlp_grpc/otlp", "prometheus"}, at(pipelines, p, "exporters"))
	}
	eq("extraConfig cardinality_limit", at(v, "extraConfig", "connectors", "vllm", "cardinality_limit"), at(r.config, "connectors", "vllm", "cardinality_limit"))

	// ServiceMonitor: it selects the headless metrics Service, which selects the collector pods.
	sm := theTyped[*serviceMonitor](t, r, "ServiceMonitor")
	for key, value := range valueAs[map[string]string](t, v, "serviceMonitor", "labels") {
		eq("ServiceMonitor label "+key, value, sm.Labels[key])
	}
	eq("ServiceMonitor endpoints", []serviceMonitorEndpoint{{Port: "metrics", Interval: at(v, "serviceMonitor", "interval").(string)}}, sm.Spec.Endpoints)
	eq("ServiceMonitor namespaces", []string{helmNamespace}, sm.Spec.NamespaceSelector.MatchNames)
	var selected []string
	for key, obj := range r.typed {
		if svc, ok := obj.(*corev1.Service); ok && labelsMatch(sm.Spec.Selector.MatchLabels, svc.Labels) {
			selected = append(selected, key)
			if svc.Spec.ClusterIP != corev1.ClusterIPNone {
				t.Errorf("%s: clusterIP %q, want None (Prometheus scrapes every pod)", key, svc.Spec.ClusterIP)
			}
			if !labelsMatch(svc.Spec.Selector, ds.Spec.Template.Labels) || len(svc.Spec.Ports) != 1 ||
				svc.Spec.Ports[0].Name != "metrics" || svc.Spec.Ports[0].TargetPort.String() != "metrics" {
				t.Errorf("%s: does not send port metrics to the collector pods: %+v", key, svc.Spec)
			}
		}
	}
	eq("Services the ServiceMonitor selects", []string{"Service/" + fullname + "-metrics"}, selected)

	rule := theTyped[*prometheusRule](t, r, "PrometheusRule")
	for key, value := range valueAs[map[string]string](t, v, "prometheusRule", "labels") {
		eq("PrometheusRule label "+key, value, rule.Labels[key])
	}
}

// labelsMatch is true when labels has every key of selector with its value.
func labelsMatch(selector, labels map[string]string) bool {
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return len(selector) > 0
}

// helmVariant is a values set that switches parts of the chart off or on, with what it must render.
type helmVariant struct {
	name    string
	args    []string
	ownRBAC bool // the pod discovery rights come from outside the chart
	check   func(t *testing.T, r rendered)
}

var helmVariants = []helmVariant{
	{
		name: "SLO-aware trace sampling",
		args: []string{"--set", "sampling.tracePercentage=10,sampling.sourceRatio=0.5"},
		check: func(t *testing.T, r rendered) {
			wantPipelineExporters(t, r, map[string][]any{
				"traces": {"forward"}, "traces/metrics": {"vllm"}, "traces/sampled": {"otlp_grpc/jaeger"},
				"metrics/vllm": {"prometheus_remote_write"}, "metrics/gpu": {"prometheus_remote_write"},
			})
			if got := at(r.config, "service", "pipelines", "traces/sampled", "processors"); !reflect.DeepEqual(got, []any{"probabilistic_sampler", "batch"}) {
				t.Errorf("traces/sampled processors %v, want the sampler before the batch", got)
			}
			sampler := at(r.config, "processors", "probabilistic_sampler")
			if mode, pct := at(sampler, "mode"), fmt.Sprint(at(sampler, "sampling_percentage")); mode != "proportional" || pct != "10" {
				t.Errorf("probabilistic_sampler mode %v at %s%%, want proportional at 10%%", mode, pct)
			}
			if got := at(r.config, "processors", "vllm", "sampling_priority"); got != true {
				t.Errorf("vllm processor sampling_priority %v, want true: the sampler must keep every SLO violator", got)
			}
			if got := at(r.config, "connectors", "vllm", "sampling", "ratio"); got != 0.5 {
				t.Errorf("vllm connector sampling.ratio %v, want 0.5", got)
			}
		},
	},
	{
		name: "metrics to OTLP only",
		args: []string{"--set", "exporters.remoteWrite.enabled=false,exporters.otlp.enabled=true,exporters.otlp.endpoint=gateway:4317,exporters.otlp.traces=false"},
		check: func(t *testing.T, r rendered) {
			wantPipelineExporters(t, r, map[string][]any{
				"traces": {"vllm", "otlp_grpc/jaeger"}, "metrics/vllm": {"otlp_grpc/otlp"}, "metrics/gpu": {"otlp_grpc/otlp"},
			})
			if at(r.config, "exporters", "prometheus_remote_write") != nil {
				t.Error("prometheus_remote_write is rendered although exporters.remoteWrite.enabled is false")
			}
		},
	},
	{
		name: "no Jaeger",
		args: []string{"--set", "exporters.jaeger.enabled=false"},
		check: func(t *testing.T, r rendered) {
			wantPipelineExporters(t, r, map[string][]any{
				"traces": {"vllm"}, "metrics/vllm": {"prometheus_remote_write"}, "metrics/gpu": {"prometheus_remote_write"},
			})
			if at(r.config, "exporters", "otlp_grpc/jaeger") != nil {
				t.Error("otlp_grpc/jaeger is rendered although exporters.jaeger.enabled is false")
			}
		},
	},
	{
		name: "no vLLM scrape",
		args: []string{"--set", "vllmMetrics.enabled=false"},
		check: func(t *testing.T, r rendered) {
			if at(r.config, "receivers", "prometheus") != nil {
				t.Error("the prometheus receiver is rendered although vllmMetrics.enabled is false")
			}
			if got := at(r.config, "service", "pipelines", "metrics/vllm", "receivers"); !reflect.DeepEqual(got, []any{"vllm"}) {
				t.Errorf("metrics/vllm receivers %v, want [vllm]", got)
			}
			wantKinds(t, r, "ConfigMap", "DaemonSet", "Service", "ServiceAccount") // no pod discovery, no RBAC
		},
	},
	{
		name:    "no RBAC, existing service account, no runtime class",
		args:    []string{"--set", "rbac.create=false,serviceAccount.create=false,serviceAccount.name=existing,gpu.runtimeClassName="},
		ownRBAC: true,
		check: func(t *testing.T, r rendered) {
			wantKinds(t, r, "ConfigMap", "DaemonSet", "Service")
			pod := r.daemonSet(t).Spec.Template.Spec
			if pod.ServiceAccountName != "existing" || pod.RuntimeClassName != nil {
				t.Errorf("serviceAccountName %q, runtimeClassName %v; want existing and none", pod.ServiceAccountName, pod.RuntimeClassName)
			}
		},
	},
	{
		name: "extraConfig merges maps and replaces lists and scalars",
		args: []string{"--set-json", `extraConfig={"connectors":{"vllm":{"exemplars":{"enabled":false},"resource_attributes":["service.name"]}},"receivers":{"nvml":{"collection_interval":"30s"}}}`},
		check: func(t *testing.T, r rendered) {
			want := map[string]any{
				"connectors.vllm.exemplars.enabled":        false,
				"connectors.vllm.resource_attributes":      []any{"service.name"},
				"connectors.vllm.slo.ttft":                 "200ms", // kept: the merge is key by key
				"receivers.nvml.collection_interval":       "30s",
				"processors.memory_limiter.check_interval": "1s",
			}
			for path, value := range want {
				if diff := cmp.Diff(value, at(r.config, strings.Split(path, ".")...)); diff != "" {
					t.Errorf("%s (-want +got):\n%s", path, diff)
				}
			}
			if got := at(r.config, "receivers", "nvml", "metrics", "hw.status", "enabled"); got != true {
				t.Errorf("receivers.nvml.metrics[hw.status].enabled %v: the merge dropped a key extraConfig does not set", got)
			}
		},
	},
	{
		name: "scrape mode instead of remote write",
		args: []string{"--set", "exporters.prometheus.enabled=true,exporters.remoteWrite.enabled=false,exporters.prometheus.podMonitor.labels.release=prom"},
		check: func(t *testing.T, r rendered) {
			wantPipelineExporters(t, r, map[string][]any{
				"metrics/vllm": {"prometheus"},
				"metrics/gpu":  {"prometheus"},
			})
			if got := at(r.config, "exporters", "prometheus", "endpoint"); got != "${env:MY_POD_IP}:8889" {
				t.Errorf("prometheus exporter endpoint %v", got)
			}
			if at(r.config, "exporters", "prometheus_remote_write") != nil {
				t.Error("remote write rendered although disabled")
			}
			var port bool
			for _, p := range r.daemonSet(t).Spec.Template.Spec.Containers[0].Ports {
				port = port || (p.Name == "scrape" && p.ContainerPort == 8889)
			}
			if !port {
				t.Error("no container port scrape: 8889")
			}
			pm := theTyped[*podMonitor](t, r, "PodMonitor")
			if len(pm.Spec.PodMetricsEndpoints) != 1 || !pm.Spec.PodMetricsEndpoints[0].HonorLabels || pm.Spec.PodMetricsEndpoints[0].Port != "scrape" {
				t.Errorf("PodMonitor endpoints %+v: want port scrape with honorLabels", pm.Spec.PodMetricsEndpoints)
			}
			if pm.Labels["release"] != "prom" {
				t.Errorf("PodMonitor labels %v", pm.Labels)
			}
		},
	},
	{
		name: "two objectives",
		args: []string{"--set", "slo.tpot=,slo.e2e=,slo.queue=1s"},
		check: func(t *testing.T, r rendered) {
			want := map[string]any{"ttft": "200ms", "queue": "1s"}
			for _, c := range []string{"processors", "connectors"} {
				if diff := cmp.Diff(want, at(r.config, c, "vllm", "slo")); diff != "" {
					t.Errorf("%s vllm slo (-want +got):\n%s", c, diff)
				}
			}
		},
	},
}

func wantPipelineExporters(t *testing.T, r rendered, want map[string][]any) {
	t.Helper()
	for pipeline, exporters := range want {
		if diff := cmp.Diff(exporters, at(r.config, "service", "pipelines", pipeline, "exporters")); diff != "" {
			t.Errorf("pipeline %s exporters (-want +got):\n%s", pipeline, diff)
		}
	}
}

func wantKinds(t *testing.T, r rendered, kinds ...string) {
	t.Helper()
	if diff := cmp.Diff(kinds, r.kinds()); diff != "" {
		t.Errorf("rendered kinds (-want +got):\n%s", diff)
	}
}

func TestHelmChartVariants(t *testing.T) {
	helm := helmBin(t)
	for _, tc := range helmVariants {
		t.Run(tc.name, func(t *testing.T) {
			r := renderChart(t, helm, helmChartDir, tc.args...)
			r.kit.externalRBAC = tc.ownRBAC
			checkDaemonSet(t, r.kit)
			checkOTLPService(t, r.kit)
			tc.check(t, r)
		})
	}
}

// TestHelmCollectorConfigValidates runs `otelcol-vllm validate` on the collector config of every rendering
// the tests check: the defaults, every value set, and each variant.
func TestHelmCollectorConfigValidates(t *testing.T) {
	helm := helmBin(t)
	bin := testkit.Tool(t, testkit.CollectorBin)
	cases := append([]helmVariant{{name: "defaults"}, {name: "all values", args: []string{"--values", helmAllValuesFile}}}, helmVariants...)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			validateCollectorConfig(t, bin, renderChart(t, helm, helmChartDir, tc.args...).kit)
		})
	}
}

// TestHelmMemoryLimiter: the memory_limiter's limits and GOMEMLIMIT follow the container's memory limit in
// every quantity form the chart accepts, and anything it cannot compute fails the render, naming the key.
func TestHelmMemoryLimiter(t *testing.T) {
	helm := helmBin(t)
	for _, limit := range []string{"1Gi", "512Mi", "1.5Gi", "3G", "2500M", "800000k", "4194304Ki", "1Ti", "2147483648"} {
		t.Run(limit, func(t *testing.T) {
			// A values file, so that 2147483648 reaches the chart as a YAML number.
			values := filepath.Join(t.TempDir(), "values.yaml")
			if err := os.WriteFile(values, []byte("resources:\n  limits:\n    memory: "+limit+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			r := renderChart(t, helm, helmChartDir, "--values", values, "--set", "memoryLimiter.limitPercentage=70,memoryLimiter.spikeLimitPercentage=25")
			checkMemoryLimiter(t, r, limit, 70, 25)
		})
	}
}

func TestHelmRenderErrors(t *testing.T) {
	helm := helmBin(t)
	for _, tc := range []struct {
		name, set, wantErr string
	}{
		{"no memory limit", "resources.limits.memory=null", "resources.limits.memory is required"},
		{"exponent", "resources.limits.memory=1e9", `resources.limits.memory "1e9"`},
		{"milli", "resources.limits.memory=500m", `resources.limits.memory "500m"`},
		{"peta", "resources.limits.memory=1Pi", `resources.limits.memory "1Pi"`},
		{"negative", "resources.limits.memory=-1Gi", `resources.limits.memory "-1Gi"`},
		{"too small", "resources.limits.memory=1Mi", "resources.limits.memory 1Mi is too small"},
		{"no limit percentage", "memoryLimiter.limitPercentage=0", "memoryLimiter.limitPercentage 0"},
		{"limit over 100%", "memoryLimiter.limitPercentage=120", "memoryLimiter.limitPercentage 120"},
		{"spike not below limit", "memoryLimiter.spikeLimitPercentage=80", "memoryLimiter.spikeLimitPercentage 80"},
		{"no Jaeger endpoint", "exporters.jaeger.endpoint=", "exporters.jaeger.endpoint is required"},
		{"no OTLP endpoint", "exporters.otlp.enabled=true", "exporters.otlp.endpoint is required"},
		{"OTLP for nothing", "exporters.otlp.enabled=true,exporters.otlp.endpoint=gw:4317,exporters.otlp.traces=false,exporters.otlp.metrics=false", "neither exporters.otlp.traces nor exporters.otlp.metrics"},
		{"no remote-write endpoint", "exporters.remoteWrite.endpoint=", "exporters.remoteWrite.endpoint is required"},
		{"no metrics exporter", "exporters.remoteWrite.enabled=false", "no metrics exporter"},
		{"no service account name", "serviceAccount.create=false", "serviceAccount.name is required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := helmCommand(t, helm, "template", helmRelease, helmChartDir, "--set", tc.set)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("--set %s: error %v, want one containing %q", tc.set, err, tc.wantErr)
			}
		})
	}
}

// TestHelmRulesLinkMissing: where the link to deploy/prometheus is a plain file (a checkout without symbolic
// links), the chart renders without rules, and a PrometheusRule is refused with a message instead of being
// rendered empty.
func TestHelmRulesLinkMissing(t *testing.T) {
	helm := helmBin(t)
	chart := filepath.Join(t.TempDir(), "otelcol-vllm")
	if err := os.CopyFS(chart, os.DirFS(helmChartDir)); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(chart, "files", "prometheus")
	if err := os.RemoveAll(link); err != nil {
		t.Fatal(err)
	}
	// What git writes for a symbolic link where it cannot make one: a file holding the link's target.
	if err := os.WriteFile(link, []byte("../../../prometheus"), 0o644); err != nil {
		t.Fatal(err)
	}
	renderChart(t, helm, chart)
	_, err := helmCommand(t, helm, "template", helmRelease, chart, "--set", "prometheusRule.enabled=true")
	if err == nil || !strings.Contains(err.Error(), "files/prometheus holds no rule files") {
		t.Errorf("prometheusRule.enabled without the rule files: error %v, want one about the missing link", err)
	}
}

// TestHelmPrometheusRule: the chart's PrometheusRule holds exactly the groups of deploy/prometheus, read
// through the chart's link to that directory, from the chart directory and from the packaged chart.
func TestHelmPrometheusRule(t *testing.T) {
	helm := helmBin(t)
	target, err := os.Readlink(helmRulesLink)
	if err != nil {
		t.Fatalf("%s is no symbolic link to deploy/prometheus: %v", helmRulesLink, err)
	}
	if resolved := filepath.Join(filepath.Dir(helmRulesLink), target); resolved != filepath.Dir(recordingRulesFile) {
		t.Errorf("%s links to %s, want %s", helmRulesLink, resolved, filepath.Dir(recordingRulesFile))
	}

	dir := t.TempDir()
	if _, err := helmCommand(t, helm, "package", helmChartDir, "--destination", dir); err != nil {
		t.Fatal(err)
	}
	packages := glob(t, filepath.Join(dir, "*.tgz"))
	files := tarFiles(t, packages[0])
	for _, want := range []string{"otelcol-vllm/files/prometheus/recording-rules.yaml", "otelcol-vllm/files/prometheus/alerts.yaml"} {
		if !slices.Contains(files, want) {
			t.Errorf("the packaged chart lacks %s: %q", want, files)
		}
	}
	for _, f := range files {
		if strings.Contains(f, "/tests/") || strings.HasPrefix(f, "otelcol-vllm/ci/") {
			t.Errorf("the packaged chart holds %s (.helmignore)", f)
		}
	}

	for _, chart := range []string{helmChartDir, packages[0]} {
		t.Run(filepath.Base(chart), func(t *testing.T) {
			r := renderChart(t, helm, chart, "--set", "prometheusRule.enabled=true")
			raw := r.raw["PrometheusRule/"+helmRelease+"-otelcol-vllm"]
			if raw == nil {
				t.Fatalf("no PrometheusRule %s-otelcol-vllm rendered", helmRelease)
			}
			checkRuleGroupsEqual(t, "helm template "+chart, raw)
		})
	}
}

func tarFiles(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return names
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
	}
}

// TestHelmValuesDocumented: every value of values.yaml is in the README's values table, every key of the
// table is a value, and ci/all-values.yaml sets every one of them.
func TestHelmValuesDocumented(t *testing.T) {
	values := loadYAMLMap(t, helmValuesFile)
	all := loadYAMLMap(t, helmAllValuesFile)
	documented := readmeValueKeys(t)
	if len(documented) == 0 {
		t.Fatalf("%s: no values table", helmReadmeFile)
	}
	for _, key := range documented {
		path := strings.Split(key, ".")
		if _, ok := lookup(values, path); !ok {
			t.Errorf("%s documents %s, which is not in %s", helmReadmeFile, key, helmValuesFile)
		}
		if _, ok := lookup(all, path); !ok {
			t.Errorf("%s does not set %s", helmAllValuesFile, key)
		}
	}
	// A leaf of values.yaml is documented by its own key or by a map key above it (nodeSelector documents
	// nodeSelector.nvidia.com/gpu.present).
	for _, leaf := range leafPaths(values, "") {
		if !slices.ContainsFunc(documented, func(key string) bool { return leaf == key || strings.HasPrefix(leaf, key+".") }) {
			t.Errorf("%s: value %s is not in the values table of %s", helmValuesFile, leaf, helmReadmeFile)
		}
	}
}

// readmeValueKeys returns the keys of the values table: rows of the "## Values" section starting with a key
// in backquotes.
func readmeValueKeys(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile(helmReadmeFile)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	inValues := false
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "## ") {
			inValues = line == "## Values"
		}
		if rest, ok := strings.CutPrefix(line, "| `"); ok && inValues {
			key, _, _ := strings.Cut(rest, "`")
			keys = append(keys, key)
		}
	}
	return keys
}

func lookup(tree map[string]any, path []string) (any, bool) {
	var node any = tree
	for _, key := range path {
		m, ok := node.(map[string]any)
		if !ok {
			return nil, false
		}
		if node, ok = m[key]; !ok {
			return nil, false
		}
	}
	return node, true
}

// leafPaths returns the dotted paths of the scalars, lists and empty maps of a values tree.
func leafPaths(tree map[string]any, prefix string) []string {
	var paths []string
	for key, v := range tree {
		if m, ok := v.(map[string]any); ok && len(m) > 0 {
			paths = append(paths, leafPaths(m, prefix+key+".")...)
		} else {
			paths = append(paths, prefix+key)
		}
	}
	sort.Strings(paths)
	return paths
}
