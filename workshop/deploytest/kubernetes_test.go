package deploytest

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/otelcol-vllm/otelcol-vllm/workshop/testkit"
)

type objectMeta struct {
	Name        string            `yaml:"name"`
	Namespace   string            `yaml:"namespace"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

type envVar struct {
	Name      string `yaml:"name"`
	Value     string `yaml:"value"`
	ValueFrom *struct {
		FieldRef *struct {
			FieldPath string `yaml:"fieldPath"`
		} `yaml:"fieldRef"`
	} `yaml:"valueFrom"`
}

type containerPort struct {
	Name          string `yaml:"name"`
	ContainerPort int    `yaml:"containerPort"`
	HostPort      int    `yaml:"hostPort"`
}

type toleration struct {
	Key string `yaml:"key"`
}

type policyRule struct {
	APIGroups []string `yaml:"apiGroups"`
	Resources []string `yaml:"resources"`
	Verbs     []string `yaml:"verbs"`
}

type subject struct {
	Kind      string `yaml:"kind"`
	Name      string `yaml:"name"`
	Namespace string `yaml:"namespace"`
}

type container struct {
	Name      string          `yaml:"name"`
	Image     string          `yaml:"image"`
	Args      []string        `yaml:"args"`
	Env       []envVar        `yaml:"env"`
	Ports     []containerPort `yaml:"ports"`
	Resources struct {
		Requests map[string]string `yaml:"requests"`
		Limits   map[string]string `yaml:"limits"`
	} `yaml:"resources"`
	SecurityContext *struct {
		Privileged               *bool `yaml:"privileged"`
		AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
		ReadOnlyRootFilesystem   *bool `yaml:"readOnlyRootFilesystem"`
		RunAsNonRoot             *bool `yaml:"runAsNonRoot"`
	} `yaml:"securityContext"`
	VolumeMounts []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
		ReadOnly  bool   `yaml:"readOnly"`
	} `yaml:"volumeMounts"`
}

func (c container) env(name string) (envVar, bool) {
	i := slices.IndexFunc(c.Env, func(e envVar) bool { return e.Name == name })
	if i < 0 {
		return envVar{}, false
	}
	return c.Env[i], true
}

// arg returns the value of --name=value or --name value.
func (c container) arg(name string) (string, bool) {
	for i, a := range c.Args {
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v, true
		}
		if a == name && i+1 < len(c.Args) {
			return c.Args[i+1], true
		}
	}
	return "", false
}

func (c container) portNamed(name string) int {
	for _, p := range c.Ports {
		if p.Name == name {
			return p.ContainerPort
		}
	}
	return 0
}

type podTemplate struct {
	Metadata objectMeta `yaml:"metadata"`
	Spec     struct {
		ServiceAccountName string            `yaml:"serviceAccountName"`
		RuntimeClassName   string            `yaml:"runtimeClassName"`
		NodeSelector       map[string]string `yaml:"nodeSelector"`
		Affinity           map[string]any    `yaml:"affinity"`
		HostNetwork        bool              `yaml:"hostNetwork"`
		HostPID            bool              `yaml:"hostPID"`
		Tolerations        []toleration      `yaml:"tolerations"`
		SecurityContext    struct {
			RunAsNonRoot *bool `yaml:"runAsNonRoot"`
		} `yaml:"securityContext"`
		Containers []container `yaml:"containers"`
		Volumes    []struct {
			Name      string `yaml:"name"`
			ConfigMap *struct {
				Name string `yaml:"name"`
			} `yaml:"configMap"`
			HostPath *struct {
				Path string `yaml:"path"`
			} `yaml:"hostPath"`
		} `yaml:"volumes"`
	} `yaml:"spec"`
}

type workload struct {
	Metadata objectMeta `yaml:"metadata"`
	Spec     struct {
		Selector struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		} `yaml:"selector"`
		Template podTemplate `yaml:"template"`
	} `yaml:"spec"`
}

type service struct {
	Metadata objectMeta `yaml:"metadata"`
	Spec     struct {
		Selector              map[string]string `yaml:"selector"`
		InternalTrafficPolicy string            `yaml:"internalTrafficPolicy"`
		Ports                 []servicePort     `yaml:"ports"`
	} `yaml:"spec"`
}

type servicePort struct {
	Name       string `yaml:"name"`
	Port       int    `yaml:"port"`
	TargetPort string `yaml:"targetPort"`
}

type k8sObject struct {
	Kind     string
	Name     string
	File     string
	document *yaml.Node
}

func (o k8sObject) decode(t *testing.T, into any) {
	t.Helper()
	if err := o.document.Decode(into); err != nil {
		t.Fatalf("%s: %s %s: %v", o.File, o.Kind, o.Name, err)
	}
}

// kubernetesObjects parses every manifest under dir (recursively), kustomization.yaml excluded.
func kubernetesObjects(t *testing.T, dir string) []k8sObject {
	t.Helper()
	var objs []k8sObject
	err := filepath.WalkDir(dir, func(path string, e os.DirEntry, err error) error {
		if err != nil || e.IsDir() || filepath.Ext(path) != ".yaml" || e.Name() == "kustomization.yaml" {
			return err
		}
		for _, doc := range yamlDocuments(t, path) {
			var head struct {
				APIVersion string     `yaml:"apiVersion"`
				Kind       string     `yaml:"kind"`
				Metadata   objectMeta `yaml:"metadata"`
			}
			if err := doc.Decode(&head); err != nil {
				return fmt.Errorf("%s: %w", path, err)
			}
			if head.APIVersion == "" || head.Kind == "" || head.Metadata.Name == "" {
				return fmt.Errorf("%s: a document without apiVersion, kind or metadata.name", path)
			}
			objs = append(objs, k8sObject{Kind: head.Kind, Name: head.Metadata.Name, File: path, document: doc})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

// theOne returns the only object of a kind in objs.
func theOne(t *testing.T, objs []k8sObject, kind string) k8sObject {
	t.Helper()
	var found []k8sObject
	for _, o := range objs {
		if o.Kind == kind {
			found = append(found, o)
		}
	}
	if len(found) != 1 {
		t.Fatalf("want exactly one %s, found %d", kind, len(found))
	}
	return found[0]
}

// kubernetesKit is the parsed kustomization with the objects that the tests look into.
type kubernetesKit struct {
	namespace string
	objects   []k8sObject
	daemonSet workload
	agent     container
	service   service
	config    string // the collector config inside the ConfigMap
	// externalRBAC: the service account's rights are granted outside these objects (Helm's rbac.create=false).
	externalRBAC bool
}

func loadKubernetesKit(t *testing.T) kubernetesKit {
	t.Helper()
	var kust struct {
		APIVersion string   `yaml:"apiVersion"`
		Kind       string   `yaml:"kind"`
		Namespace  string   `yaml:"namespace"`
		Resources  []string `yaml:"resources"`
		Labels     []any    `yaml:"labels"`
	}
	decodeYAMLFile(t, filepath.Join(kubernetesDir, "kustomization.yaml"), &kust)
	if kust.Namespace == "" {
		t.Fatal("kustomization.yaml: no namespace")
	}
	var onDisk []string
	for _, path := range glob(t, filepath.Join(kubernetesDir, "*.yaml")) {
		if filepath.Base(path) != "kustomization.yaml" {
			onDisk = append(onDisk, filepath.Base(path))
		}
	}
	listed := slices.Sorted(slices.Values(kust.Resources))
	if !slices.Equal(listed, onDisk) {
		t.Errorf("kustomization.yaml resources %q, but the directory holds %q", listed, onDisk)
	}

	var objects []k8sObject
	for _, r := range kust.Resources {
		objects = append(objects, kubernetesObjects(t, filepath.Join(kubernetesDir, r))...)
	}
	return newKubernetesKit(t, kust.Namespace, objects)
}

// newKubernetesKit finds the DaemonSet, its collector container, the OTLP Service and the collector config
// among the objects of one deployment (the kustomize base, or a rendered Helm chart).
func newKubernetesKit(t *testing.T, namespace string, objects []k8sObject) kubernetesKit {
	t.Helper()
	k := kubernetesKit{namespace: namespace, objects: objects}
	theOne(t, k.objects, "DaemonSet").decode(t, &k.daemonSet)
	if len(k.daemonSet.Spec.Template.Spec.Containers) != 1 {
		t.Fatalf("DaemonSet: want one container, got %d", len(k.daemonSet.Spec.Template.Spec.Containers))
	}
	k.agent = k.daemonSet.Spec.Template.Spec.Containers[0]
	// The Service vLLM sends its spans to: the one with an otlp-grpc port (the Helm chart may add a headless
	// Service for the collector's own metrics).
	var otlpServices []service
	for _, o := range k.objects {
		var svc service
		if o.Kind == "Service" {
			o.decode(t, &svc)
			if slices.ContainsFunc(svc.Spec.Ports, func(p servicePort) bool { return p.Name == "otlp-grpc" }) {
				otlpServices = append(otlpServices, svc)
			}
		}
	}
	if len(otlpServices) != 1 {
		t.Fatalf("want exactly one Service with an otlp-grpc port, found %d", len(otlpServices))
	}
	k.service = otlpServices[0]

	// The ConfigMap mounted where --config points.
	configPath, ok := k.agent.arg("--config")
	if !ok {
		t.Fatal("DaemonSet: the collector has no --config argument")
	}
	var cm struct {
		Metadata objectMeta        `yaml:"metadata"`
		Data     map[string]string `yaml:"data"`
	}
	theOne(t, k.objects, "ConfigMap").decode(t, &cm)
	for _, m := range k.agent.VolumeMounts {
		for _, v := range k.daemonSet.Spec.Template.Spec.Volumes {
			if v.Name == m.Name && v.ConfigMap != nil && v.ConfigMap.Name == cm.Metadata.Name {
				if key, ok := strings.CutPrefix(configPath, m.MountPath+"/"); ok {
					k.config = cm.Data[key]
				}
			}
		}
	}
	if k.config == "" {
		t.Fatalf("--config=%s is not a key of ConfigMap %s mounted into the collector", configPath, cm.Metadata.Name)
	}
	return k
}

func TestKubernetesDaemonSet(t *testing.T) {
	k := loadKubernetesKit(t)
	if rc := k.daemonSet.Spec.Template.Spec.RuntimeClassName; rc != "nvidia" {
		t.Errorf("runtimeClassName %q, want nvidia (the NVIDIA runtime mounts NVML and the devices)", rc)
	}
	checkDaemonSet(t, k)
}

// checkDaemonSet checks what every deployment of the node agent needs: GPU nodes only, no privileges, a
// memory limit, NVML through the NVIDIA runtime, and pod discovery rights when the config scrapes pods.
func checkDaemonSet(t *testing.T, k kubernetesKit) {
	t.Helper()
	ds, agent := k.daemonSet, k.agent
	pod := ds.Spec.Template.Spec

	if len(pod.NodeSelector) == 0 && len(pod.Affinity) == 0 {
		t.Error("no nodeSelector or affinity: the agent belongs on GPU nodes only")
	}
	if !slices.ContainsFunc(pod.Tolerations, func(tl toleration) bool { return tl.Key == "nvidia.com/gpu" }) {
		t.Error("no toleration for the nvidia.com/gpu taint of GPU nodes")
	}
	if pod.HostNetwork || pod.HostPID {
		t.Errorf("hostNetwork %v, hostPID %v: the agent needs neither", pod.HostNetwork, pod.HostPID)
	}
	for _, selector := range []map[string]string{ds.Spec.Selector.MatchLabels, k.service.Spec.Selector} {
		for key, v := range selector {
			if ds.Spec.Template.Metadata.Labels[key] != v {
				t.Errorf("selector %s=%s does not select the DaemonSet's pods", key, v)
			}
		}
	}

	sc := agent.SecurityContext
	if sc == nil {
		t.Fatal("the collector container has no securityContext")
	}
	if sc.Privileged != nil && *sc.Privileged {
		t.Error("privileged: NVML works through the NVIDIA runtime, without privileged mode")
	}
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Error("securityContext.readOnlyRootFilesystem must be true")
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Error("securityContext.allowPrivilegeEscalation must be false")
	}
	if (sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot) && (pod.SecurityContext.RunAsNonRoot == nil || !*pod.SecurityContext.RunAsNonRoot) {
		t.Error("runAsNonRoot must be true")
	}
	for _, res := range []map[string]string{agent.Resources.Requests, agent.Resources.Limits} {
		if _, ok := res["nvidia.com/gpu"]; ok {
			t.Error("the agent requests nvidia.com/gpu: it would take a GPU away from vLLM")
		}
	}
	if agent.Resources.Limits["memory"] == "" {
		t.Error("no memory limit (the memory_limiter works in percent of it)")
	}
	if e, _ := agent.env("NVIDIA_VISIBLE_DEVICES"); e.Value != "all" {
		t.Errorf("NVIDIA_VISIBLE_DEVICES %q, want all", e.Value)
	}
	if e, _ := agent.env("NVIDIA_DRIVER_CAPABILITIES"); !strings.Contains(e.Value, "utility") {
		t.Errorf("NVIDIA_DRIVER_CAPABILITIES %q lacks utility (NVML)", e.Value)
	}

	// The kubelet's pod-resources socket (GPU -> pod) is mounted read-only where the nvml receiver looks for it.
	socketMounted := false
	for _, m := range agent.VolumeMounts {
		for _, v := range pod.Volumes {
			if v.Name == m.Name && v.HostPath != nil && v.HostPath.Path == "/var/lib/kubelet/pod-resources" {
				socketMounted = true
				if !m.ReadOnly || m.MountPath != "/var/lib/kubelet/pod-resources" {
					t.Errorf("pod-resources hostPath mounted at %s readOnly %v, want /var/lib/kubelet/pod-resources read-only", m.MountPath, m.ReadOnly)
				}
			}
		}
	}
	if !socketMounted {
		t.Error("the kubelet pod-resources directory is not mounted (no pod labels on GPU metrics)")
	}

	// The service account can list and watch pods (the prometheus receiver's pod discovery).
	if !strings.Contains(k.config, "kubernetes_sd_configs") || k.externalRBAC {
		return
	}
	var role struct {
		Rules []policyRule `yaml:"rules"`
	}
	theOne(t, k.objects, "ClusterRole").decode(t, &role)
	podsListWatch := slices.ContainsFunc(role.Rules, func(r policyRule) bool {
		return slices.Contains(r.Resources, "pods") && slices.Contains(r.Verbs, "list") && slices.Contains(r.Verbs, "watch")
	})
	if !podsListWatch {
		t.Error("ClusterRole: pods list and watch missing")
	}
	var binding struct {
		RoleRef struct {
			Name string `yaml:"name"`
		} `yaml:"roleRef"`
		Subjects []subject `yaml:"subjects"`
	}
	theOne(t, k.objects, "ClusterRoleBinding").decode(t, &binding)
	bound := slices.ContainsFunc(binding.Subjects, func(s subject) bool {
		return s.Kind == "ServiceAccount" && s.Name == pod.ServiceAccountName && s.Namespace == k.namespace
	})
	if theOne(t, k.objects, "ServiceAccount").Name != pod.ServiceAccountName || !bound ||
		binding.RoleRef.Name != theOne(t, k.objects, "ClusterRole").Name {
		t.Errorf("service account %q is not bound to the ClusterRole in namespace %s", pod.ServiceAccountName, k.namespace)
	}
}

func TestKubernetesOTLPEndpoint(t *testing.T) {
	k := loadKubernetesKit(t)
	svcPort := checkOTLPService(t, k)

	// The example vLLM Deployment sends its spans to that Service, names its service and model, and asks
	// to be scraped.
	var vllm workload
	theOne(t, kubernetesObjects(t, filepath.Join(kubernetesDir, "examples")), "Deployment").decode(t, &vllm)
	c := vllm.Spec.Template.Spec.Containers[0]
	endpoint, ok := c.arg("--otlp-traces-endpoint")
	u, err := url.Parse(endpoint)
	if !ok || err != nil {
		t.Fatalf("vLLM: --otlp-traces-endpoint %q: %v", endpoint, err)
	}
	wantHost := fmt.Sprintf("%s.%s.svc.cluster.local:%d", k.service.Metadata.Name, k.namespace, svcPort["otlp-grpc"])
	if u.Host != wantHost || u.Scheme != "http" {
		t.Errorf("vLLM: --otlp-traces-endpoint %q, want http://%s (the node-local Service, OTLP/gRPC)", endpoint, wantHost)
	}
	if e, _ := c.env("OTEL_SERVICE_NAME"); e.Value == "" {
		t.Error("vLLM: OTEL_SERVICE_NAME is not set (the job label of its metrics)")
	}
	// Span coverage joins the span-derived and the scraped series on job: the scrape config sets job from the
	// pod label app.kubernetes.io/name, which must be the pods' OTEL_SERVICE_NAME.
	if e, _ := c.env("OTEL_SERVICE_NAME"); e.Value != vllm.Spec.Template.Metadata.Labels["app.kubernetes.io/name"] {
		t.Errorf("vLLM: OTEL_SERVICE_NAME %q differs from the pod label app.kubernetes.io/name %q (the scraped job)",
			e.Value, vllm.Spec.Template.Metadata.Labels["app.kubernetes.io/name"])
	}
	var scrape struct {
		Receivers struct {
			Prometheus struct {
				Config struct {
					ScrapeConfigs []struct {
						RelabelConfigs []struct {
							SourceLabels []string `yaml:"source_labels"`
							TargetLabel  string   `yaml:"target_label"`
						} `yaml:"relabel_configs"`
					} `yaml:"scrape_configs"`
				} `yaml:"config"`
			} `yaml:"prometheus"`
		} `yaml:"receivers"`
	}
	if err := yaml.Unmarshal([]byte(k.config), &scrape); err != nil {
		t.Fatal(err)
	}
	jobFromLabel := false
	for _, sc := range scrape.Receivers.Prometheus.Config.ScrapeConfigs {
		for _, r := range sc.RelabelConfigs {
			if r.TargetLabel == "job" && slices.Equal(r.SourceLabels, []string{"__meta_kubernetes_pod_label_app_kubernetes_io_name"}) {
				jobFromLabel = true
			}
		}
	}
	if !jobFromLabel {
		t.Error("prometheus receiver: no relabel_configs entry sets job from __meta_kubernetes_pod_label_app_kubernetes_io_name")
	}
	attrs := map[string]string{}
	ra, _ := c.env("OTEL_RESOURCE_ATTRIBUTES")
	for _, kv := range strings.Split(ra.Value, ",") {
		key, v, _ := strings.Cut(kv, "=")
		attrs[strings.TrimSpace(key)] = strings.TrimSpace(v)
	}
	served, _ := c.arg("--served-model-name")
	// The connector reads the model from gen_ai.response.model, then gen_ai.request.model, on the span, then
	// on the resource; vLLM's V1 spans carry neither, so the resource names it.
	if attrs["gen_ai.request.model"] == "" || attrs["gen_ai.request.model"] != served {
		t.Errorf("vLLM: resource attribute gen_ai.request.model %q, want the --served-model-name %q", attrs["gen_ai.request.model"], served)
	}
	if attrs["service.instance.id"] != "$(POD_NAME)" {
		t.Errorf("vLLM: resource attribute service.instance.id %q, want $(POD_NAME) (the scrape's instance)", attrs["service.instance.id"])
	}
	if e, _ := c.env("POD_NAME"); e.ValueFrom == nil || e.ValueFrom.FieldRef == nil || e.ValueFrom.FieldRef.FieldPath != "metadata.name" {
		t.Error("vLLM: POD_NAME does not come from metadata.name")
	}
	// The pod identity the energy-per-token rules join the GPU metrics on.
	if attrs["k8s.pod.name"] != "$(POD_NAME)" || attrs["k8s.namespace.name"] != "$(POD_NAMESPACE)" {
		t.Errorf("vLLM: resource attributes k8s.pod.name %q, k8s.namespace.name %q, want $(POD_NAME) and $(POD_NAMESPACE)",
			attrs["k8s.pod.name"], attrs["k8s.namespace.name"])
	}
	if e, _ := c.env("POD_NAMESPACE"); e.ValueFrom == nil || e.ValueFrom.FieldRef == nil || e.ValueFrom.FieldRef.FieldPath != "metadata.namespace" {
		t.Error("vLLM: POD_NAMESPACE does not come from metadata.namespace")
	}
	ann := vllm.Spec.Template.Metadata.Annotations
	port, _ := c.arg("--port")
	if ann["prometheus.io/scrape"] != "true" || ann["prometheus.io/port"] != port ||
		!slices.ContainsFunc(c.Ports, func(p containerPort) bool { return strconv.Itoa(p.ContainerPort) == port }) {
		t.Errorf("vLLM: scrape annotations %v do not match --port %q and the container ports", ann, port)
	}
}

// checkOTLPService checks that vLLM reaches the collector of its own node, on the ports its OTLP receiver
// listens on, and returns the Service port of each target port.
func checkOTLPService(t *testing.T, k kubernetesKit) map[string]int {
	t.Helper()
	// vLLM must reach the collector of its own node: a node-local Service, or host ports.
	hostPorts := slices.ContainsFunc(k.agent.Ports, func(p containerPort) bool { return p.HostPort != 0 })
	if k.service.Spec.InternalTrafficPolicy != "Local" && !hostPorts {
		t.Error("the Service is not node-local (internalTrafficPolicy: Local) and the DaemonSet has no hostPort")
	}
	svcPort := map[string]int{}
	for _, p := range k.service.Spec.Ports {
		if k.agent.portNamed(p.TargetPort) == 0 {
			t.Errorf("Service port %s: targetPort %q is no container port", p.Name, p.TargetPort)
		}
		svcPort[p.TargetPort] = p.Port
	}

	// The collector's OTLP receiver listens where the Service sends.
	var cfg struct {
		Receivers struct {
			OTLP struct {
				Protocols map[string]struct {
					Endpoint string `yaml:"endpoint"`
				} `yaml:"protocols"`
			} `yaml:"otlp"`
		} `yaml:"receivers"`
	}
	if err := yaml.Unmarshal([]byte(k.config), &cfg); err != nil {
		t.Fatal(err)
	}
	checkBoundedMetricsDelivery(t, "collector config", []byte(k.config))
	for protocol, port := range map[string]string{"grpc": "otlp-grpc", "http": "otlp-http"} {
		// The host is ${env:MY_POD_IP}, so split at the last colon.
		endpoint := cfg.Receivers.OTLP.Protocols[protocol].Endpoint
		if p := endpoint[strings.LastIndexByte(endpoint, ':')+1:]; p != strconv.Itoa(k.agent.portNamed(port)) {
			t.Errorf("otlp %s endpoint %q does not listen on container port %s (%d)", protocol, endpoint, port, k.agent.portNamed(port))
		}
	}
	return svcPort
}

// envReference matches ${env:NAME} and ${NAME} in a collector config.
var envReference = regexp.MustCompile(`\$\{(?:env:)?([A-Za-z_][A-Za-z0-9_]*)(:-[^}]*)?\}`)

func TestKubernetesCollectorConfig(t *testing.T) {
	checkCollectorConfig(t, loadKubernetesKit(t))
}

// checkCollectorConfig checks the collector config against what the rules and the dashboard rely on.
func checkCollectorConfig(t *testing.T, k kubernetesKit) {
	t.Helper()
	var cfg struct {
		Receivers  map[string]map[string]any `yaml:"receivers"`
		Connectors map[string]any            `yaml:"connectors"`
		Service    struct {
			Pipelines map[string]struct {
				Receivers  []string `yaml:"receivers"`
				Processors []string `yaml:"processors"`
				Exporters  []string `yaml:"exporters"`
			} `yaml:"pipelines"`
		} `yaml:"service"`
	}
	if err := yaml.Unmarshal([]byte(k.config), &cfg); err != nil {
		t.Fatal(err)
	}

	// Every environment variable the config reads is set on the container (or has a default).
	for _, m := range envReference.FindAllStringSubmatch(k.config, -1) {
		if _, ok := k.agent.env(m[1]); !ok && m[2] == "" {
			t.Errorf("the config reads ${env:%s}, which the DaemonSet does not set", m[1])
		}
	}

	// hw.status is opt-in in the nvml receiver; the GPULost alert needs it.
	var nvml struct {
		Metrics map[string]struct {
			Enabled bool `yaml:"enabled"`
		} `yaml:"metrics"`
	}
	raw, _ := yaml.Marshal(cfg.Receivers["nvml"])
	if err := yaml.Unmarshal(raw, &nvml); err != nil || !nvml.Metrics["hw.status"].Enabled {
		t.Error("nvml receiver: hw.status is not enabled (the GPULost alert reads it)")
	}

	// The data paths the rules and the dashboard rely on.
	has := func(list []string, prefix string) bool {
		return slices.ContainsFunc(list, func(id string) bool { return id == prefix || strings.HasPrefix(id, prefix+"/") })
	}
	paths := []struct{ kind, receiver, exporter, what string }{
		{"traces", "otlp", "vllm", "vLLM spans into the vllm connector"},
		{"metrics", "vllm", "prometheus_remote_write", "connector metrics to Prometheus"},
		{"metrics", "nvml", "prometheus_remote_write", "GPU metrics to Prometheus"},
		{"metrics", "prometheus", "prometheus_remote_write", "vLLM /metrics to Prometheus"},
	}
	for _, p := range paths {
		found := false
		for id, pl := range cfg.Service.Pipelines {
			if (id == p.kind || strings.HasPrefix(id, p.kind+"/")) && has(pl.Receivers, p.receiver) && has(pl.Exporters, p.exporter) {
				found = true
				if pl.Processors[0] != "memory_limiter" {
					t.Errorf("pipeline %s: memory_limiter must come first, got %q", id, pl.Processors)
				}
			}
		}
		if !found {
			t.Errorf("no %s pipeline from %s to %s (%s)", p.kind, p.receiver, p.exporter, p.what)
		}
	}

	// The vllm connector: exemplars on (the dashboard links them to traces), classic histograms (the rules
	// read _bucket series), and series told apart only by the resource attributes remote write keeps (job,
	// instance): any other one, such as vllm.process_id, would split a pod into series that collide in
	// Prometheus.
	var connector struct {
		Exemplars struct {
			Enabled bool `yaml:"enabled"`
		} `yaml:"exemplars"`
		ResourceAttributes []string `yaml:"resource_attributes"`
		Histograms         struct {
			Type string `yaml:"type"`
		} `yaml:"histograms"`
	}
	raw, _ = yaml.Marshal(cfg.Connectors["vllm"])
	if err := yaml.Unmarshal(raw, &connector); err != nil {
		t.Fatal(err)
	}
	if !connector.Exemplars.Enabled {
		t.Error("vllm connector: exemplars are off; the dashboard's latency panels link exemplars to traces")
	}
	if connector.Histograms.Type != "" && connector.Histograms.Type != "explicit" {
		t.Errorf("vllm connector: histograms.type %q; the rules and the dashboard need explicit buckets", connector.Histograms.Type)
	}
	// k8s.pod.name and k8s.namespace.name are constant per pod, like service.instance.id: they split nothing.
	identity := []string{"service.name", "service.namespace", "service.instance.id", "k8s.pod.name", "k8s.namespace.name"}
	if connector.ResourceAttributes == nil {
		connector.ResourceAttributes = identity // not set: the connector's default, which is this list
	}
	for _, want := range []string{"k8s.pod.name", "k8s.namespace.name"} {
		if !slices.Contains(connector.ResourceAttributes, want) {
			t.Errorf("vllm connector: resource_attributes lacks %s (the energy-per-token rules join on it)", want)
		}
	}
	if len(connector.ResourceAttributes) == 0 {
		t.Error("vllm connector: no resource_attributes allow-list; every resource attribute would split series")
	}
	for _, a := range connector.ResourceAttributes {
		if !slices.Contains(identity, a) {
			t.Errorf("vllm connector: resource attribute %s splits series that remote write merges (keep %q)", a, identity)
		}
	}
}

// TestKubernetesCollectorConfigValidates runs `otelcol-vllm validate` on the config of the ConfigMap, with
// the DaemonSet's environment (field references replaced by sample values).
func TestKubernetesCollectorConfigValidates(t *testing.T) {
	validateCollectorConfig(t, testkit.Tool(t, testkit.CollectorBin), loadKubernetesKit(t))
}

// validateCollectorConfig runs `otelcol-vllm validate` on the kit's collector config with the DaemonSet's
// environment.
func validateCollectorConfig(t *testing.T, bin string, k kubernetesKit) {
	t.Helper()
	sample := map[string]string{"status.podIP": "10.0.0.7", "spec.nodeName": "gpu-node-1", "metadata.name": "otelcol-vllm-abcde"}
	env := os.Environ()
	for _, e := range k.agent.Env {
		v := e.Value
		if e.ValueFrom != nil {
			if e.ValueFrom.FieldRef == nil || sample[e.ValueFrom.FieldRef.FieldPath] == "" {
				t.Fatalf("env %s: no sample value for its valueFrom", e.Name)
			}
			v = sample[e.ValueFrom.FieldRef.FieldPath]
		}
		env = append(env, e.Name+"="+v)
	}
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(k.config), 0o600); err != nil {
		t.Fatal(err)
	}
	abs, err := filepath.Abs(bin)
	if err != nil {
		t.Fatal(err)
	}
	runTool(t, t.TempDir(), env, abs, "validate", "--config="+path)
}
