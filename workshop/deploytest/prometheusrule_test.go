package deploytest

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	sigsyaml "sigs.k8s.io/yaml"
)

const prometheusRuleComponentDir = "kubernetes/prometheusrule"

// TestKubernetesPrometheusRuleComponent: the optional kustomize component is a Component that adds exactly its
// PrometheusRule, and that PrometheusRule holds the groups of deploy/prometheus's rule files.
func TestKubernetesPrometheusRuleComponent(t *testing.T) {
	var kust struct {
		APIVersion string   `yaml:"apiVersion"`
		Kind       string   `yaml:"kind"`
		Resources  []string `yaml:"resources"`
	}
	decodeYAMLFile(t, filepath.Join(prometheusRuleComponentDir, "kustomization.yaml"), &kust)
	if kust.APIVersion != "kustomize.config.k8s.io/v1alpha1" || kust.Kind != "Component" {
		t.Errorf("%s/kustomization.yaml: %s %s, want a kustomize.config.k8s.io/v1alpha1 Component", prometheusRuleComponentDir, kust.APIVersion, kust.Kind)
	}
	var onDisk []string
	for _, path := range glob(t, filepath.Join(prometheusRuleComponentDir, "*.yaml")) {
		if filepath.Base(path) != "kustomization.yaml" {
			onDisk = append(onDisk, filepath.Base(path))
		}
	}
	if !slices.Equal(kust.Resources, []string{"prometheusrule.yaml"}) || !slices.Equal(onDisk, kust.Resources) {
		t.Errorf("component resources %q, files %q; want prometheusrule.yaml alone", kust.Resources, onDisk)
	}

	path := filepath.Join(prometheusRuleComponentDir, "prometheusrule.yaml")
	objs := kubernetesObjects(t, path)
	if len(objs) != 1 || objs[0].Kind != "PrometheusRule" {
		t.Fatalf("%s: want one PrometheusRule, got %v", path, objs)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	checkRuleGroupsEqual(t, path, data)
}

// checkRuleGroupsEqual compares the spec.groups of a PrometheusRule with the groups of deploy/prometheus's
// rule files: the same group names, each group identical (every field, as generic YAML values).
func checkRuleGroupsEqual(t *testing.T, where string, manifest []byte) {
	t.Helper()
	compareRuleGroups(t, where, manifest, func(groups []any) []any { return groups })
}

// compareRuleGroups is checkRuleGroupsEqual with both sides' groups passed through normalize first.
func compareRuleGroups(t *testing.T, where string, manifest []byte, normalize func([]any) []any) {
	t.Helper()
	var rule prometheusRule
	if err := sigsyaml.UnmarshalStrict(manifest, &rule); err != nil {
		t.Fatalf("%s: no PrometheusRule: %v", where, err)
	}
	var got struct {
		Spec struct {
			Groups []any `json:"groups"`
		} `json:"spec"`
	}
	if err := sigsyaml.Unmarshal(manifest, &got); err != nil {
		t.Fatal(err)
	}
	var want []any
	for _, path := range ruleFiles {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var f struct {
			Groups []any `json:"groups"`
		}
		if err := sigsyaml.Unmarshal(data, &f); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		want = append(want, f.Groups...)
	}
	if len(want) == 0 {
		t.Fatal("deploy/prometheus has no rule groups")
	}
	if diff := cmp.Diff(groupsByName(t, normalize(want)), groupsByName(t, normalize(got.Spec.Groups))); diff != "" {
		t.Errorf("%s: groups differ from deploy/prometheus (-want +got):\n%s", where, diff)
	}
}

func groupsByName(t *testing.T, groups []any) map[string]any {
	t.Helper()
	byName := map[string]any{}
	for _, g := range groups {
		name, _ := at(g, "name").(string)
		if _, dup := byName[name]; dup || name == "" {
			t.Errorf("group name %q empty or repeated", name)
		}
		byName[name] = g
	}
	return byName
}

// exprWhitespaceCollapsed returns the groups with every rule's expr reduced to its words separated by single
// spaces. PromQL ignores whitespace.
func exprWhitespaceCollapsed(groups []any) []any {
	var out []any
	for _, g := range groups {
		// A deep copy. The groups were decoded from JSON, so they encode and decode again without error.
		data, _ := json.Marshal(g)
		var group map[string]any
		_ = json.Unmarshal(data, &group)
		rules, _ := group["rules"].([]any)
		for _, r := range rules {
			if rule, ok := r.(map[string]any); ok {
				if expr, ok := rule["expr"].(string); ok {
					rule["expr"] = strings.Join(strings.Fields(expr), " ")
				}
			}
		}
		out = append(out, group)
	}
	return out
}
