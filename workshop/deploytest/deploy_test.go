package deploytest

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// Paths, relative to this package's directory (go test runs here).
const (
	recordingRulesFile = "prometheus/recording-rules.yaml"
	alertsFile         = "prometheus/alerts.yaml"
	promtoolTestsGlob  = "prometheus/tests/*_test.yaml"
	metricsListFile    = "metrics.txt"
	dashboardFile      = "grafana/vllm-dashboard.json"
	datasourcesFile    = "grafana/provisioning/datasources/otelcol-vllm.yaml"
	kubernetesDir      = "kubernetes"
	readmeFile         = "README.md"
)

var ruleFiles = []string{recordingRulesFile, alertsFile}

// runTool runs a command in dir and fails the test with its output when it fails.
func runTool(t *testing.T, dir string, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), name, args...)
	cmd.Dir = dir
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// ruleFile is a Prometheus rule file.
type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []rule `yaml:"rules"`
	} `yaml:"groups"`
}

type rule struct {
	Record      string            `yaml:"record"`
	Alert       string            `yaml:"alert"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

// decodeYAMLFile decodes a single-document YAML file strictly (unknown keys are errors).
func decodeYAMLFile(t *testing.T, path string, into any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(into); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// yamlDocuments returns the documents of a multi-document YAML file.
func yamlDocuments(t *testing.T, path string) []*yaml.Node {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var docs []*yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return docs
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		docs = append(docs, &doc)
	}
}

// loadRules returns the rules of both rule files, in file order.
func loadRules(t *testing.T) []rule {
	t.Helper()
	var rules []rule
	for _, path := range ruleFiles {
		var f ruleFile
		decodeYAMLFile(t, path, &f)
		for _, g := range f.Groups {
			rules = append(rules, g.Rules...)
		}
	}
	return rules
}

// metricsList is deploy/metrics.txt: Prometheus name -> source.
func loadMetricsList(t *testing.T) map[string]string {
	t.Helper()
	f, err := os.Open(metricsListFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	list := map[string]string{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		if len(fields) != 3 {
			t.Errorf("%s:%d: want 3 columns (name, source, OTel metric), got %q", metricsListFile, n, line)
			continue
		}
		name, source := fields[0], fields[1]
		if _, dup := list[name]; dup {
			t.Errorf("%s:%d: %s listed twice", metricsListFile, n, name)
		}
		list[name] = source
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return list
}

// githubAnchor is the anchor GitHub gives a Markdown heading.
func githubAnchor(heading string) string {
	heading = strings.ToLower(strings.TrimSpace(heading))
	heading = regexp.MustCompile(`[^a-z0-9 _-]`).ReplaceAllString(heading, "")
	return strings.ReplaceAll(heading, " ", "-")
}

// readmeAnchors returns the anchors of every heading of deploy/README.md.
func readmeAnchors(t *testing.T) map[string]bool {
	t.Helper()
	data, err := os.ReadFile(readmeFile)
	if err != nil {
		t.Fatal(err)
	}
	anchors := map[string]bool{}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "#") {
			anchors[githubAnchor(strings.TrimLeft(line, "#"))] = true
		}
	}
	return anchors
}

func glob(t *testing.T, pattern string) []string {
	t.Helper()
	files, err := filepath.Glob(pattern)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("no files match %s", pattern)
	}
	return files
}

// at returns the value at a path of nested maps (YAML mapping keys), or nil.
func at(tree any, path ...string) any {
	for _, key := range path {
		m, ok := tree.(map[string]any)
		if !ok {
			return nil
		}
		tree = m[key]
	}
	return tree
}
