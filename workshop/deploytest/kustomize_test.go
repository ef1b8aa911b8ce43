package deploytest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/otelcol-vllm/otelcol-vllm/workshop/testkit"
)

// readmeOverlayMarker is the first line of the overlay example in deploy/README.md.
const readmeOverlayMarker = "# overlays/production/kustomization.yaml, beside a deploy/ directory of this repository"

func kustomizeBuild(t *testing.T, kustomize, dir string) string {
	t.Helper()
	return runTool(t, ".", nil, kustomize, "build", dir)
}

// TestKustomizeBuild: `kustomize build deploy/kubernetes` renders objects that decode strictly as their
// Kubernetes types and pass the manifest checks.
func TestKustomizeBuild(t *testing.T) {
	kustomize := testkit.Tool(t, testkit.Kustomize)
	r := decodeRendered(t, kustomizeBuild(t, kustomize, kubernetesDir), "otelcol-vllm")
	wantKinds(t, r, "ClusterRole", "ClusterRoleBinding", "ConfigMap", "DaemonSet", "Namespace", "Service", "ServiceAccount")
	checkDaemonSet(t, r.kit)
	checkOTLPService(t, r.kit)
	checkCollectorConfig(t, r.kit)
}

// TestKustomizeReadmeOverlay: the overlay in deploy/README.md, pasted into overlays/production beside a
// deploy directory, builds the base plus the PrometheusRule component, labelled and in the base's namespace.
func TestKustomizeReadmeOverlay(t *testing.T) {
	kustomize := testkit.Tool(t, testkit.Kustomize)
	root := t.TempDir()
	deployDir, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(deployDir, filepath.Join(root, "deploy")); err != nil {
		t.Fatal(err)
	}
	overlay := filepath.Join(root, "overlays", "production")
	if err := os.MkdirAll(overlay, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(overlay, "kustomization.yaml"), []byte(readmeYAMLBlock(t, readmeOverlayMarker)), 0o600); err != nil {
		t.Fatal(err)
	}

	r := decodeRendered(t, kustomizeBuild(t, kustomize, overlay), "otelcol-vllm")
	wantKinds(t, r, "ClusterRole", "ClusterRoleBinding", "ConfigMap", "DaemonSet", "Namespace", "PrometheusRule", "Service", "ServiceAccount")
	rule := theTyped[*prometheusRule](t, r, "PrometheusRule")
	if rule.Labels["release"] != "kube-prometheus-stack" {
		t.Errorf("PrometheusRule labels %v: the README's patch did not add release", rule.Labels)
	}
	// kustomize's YAML emitter rewrites a folded (>-) expr whose lines are indented further into a literal
	// one with an extra blank line: the same PromQL, other whitespace. (The generated file itself matches
	// the rule files exactly: TestKubernetesPrometheusRuleComponent.)
	compareRuleGroups(t, "the README's overlay", r.raw["PrometheusRule/"+rule.Name], exprWhitespaceCollapsed)
}

// readmeYAMLBlock returns the fenced block of deploy/README.md that starts with the line first.
func readmeYAMLBlock(t *testing.T, first string) string {
	t.Helper()
	data, err := os.ReadFile(readmeFile)
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(data), "```yaml\n"+first+"\n")
	if !ok {
		t.Fatalf("%s: no yaml block starting with %q", readmeFile, first)
	}
	block, _, ok := strings.Cut(rest, "```")
	if !ok {
		t.Fatalf("%s: the block starting with %q does not end", readmeFile, first)
	}
	return first + "\n" + block
}
