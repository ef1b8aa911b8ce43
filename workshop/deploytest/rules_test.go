package deploytest

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/otelcol-vllm/otelcol-vllm/workshop/testkit"
)

const runbookPrefix = "https://github.com/otelcol-vllm/otelcol-vllm/blob/main/deploy/README.md#"

// recordName is Prometheus' level:metric:operations naming of recording rules.
var recordName = regexp.MustCompile(`^[a-z][a-z0-9_]*:[a-z][a-z0-9_]*:[a-z0-9_]+$`)

func TestPromtoolCheckRules(t *testing.T) {
	promtool := testkit.Tool(t, testkit.Promtool)
	out := runTool(t, ".", nil, promtool, append([]string{"check", "rules"}, ruleFiles...)...)
	for _, path := range ruleFiles {
		if !strings.Contains(out, "Checking "+path) {
			t.Errorf("promtool did not check %s:\n%s", path, out)
		}
	}
}

func TestPromtoolUnitTests(t *testing.T) {
	promtool := testkit.Tool(t, testkit.Promtool)
	for _, path := range glob(t, promtoolTestsGlob) {
		t.Run(filepath.Base(path), func(t *testing.T) {
			out := runTool(t, ".", nil, promtool, "test", "rules", path)
			if !strings.Contains(out, "SUCCESS") {
				t.Errorf("promtool test rules %s:\n%s", path, out)
			}
		})
	}
}

func TestRuleConventions(t *testing.T) {
	anchors := readmeAnchors(t)
	groups := map[string]string{}
	records := map[string]bool{}
	alerts := map[string]bool{}
	for _, path := range ruleFiles {
		var f ruleFile
		decodeYAMLFile(t, path, &f)
		if len(f.Groups) == 0 {
			t.Errorf("%s: no rule groups", path)
		}
		for _, g := range f.Groups {
			if other, dup := groups[g.Name]; dup {
				t.Errorf("group %q is in both %s and %s", g.Name, other, path)
			}
			groups[g.Name] = path
			for _, r := range g.Rules {
				switch {
				case r.Record != "" && r.Alert != "":
					t.Errorf("%s: rule has both record %q and alert %q", path, r.Record, r.Alert)
				case r.Record != "":
					if path != recordingRulesFile {
						t.Errorf("%s: recording rule %s belongs in %s", path, r.Record, recordingRulesFile)
					}
					if !recordName.MatchString(r.Record) {
						t.Errorf("%s: recording rule %q is not named level:metric:operations", path, r.Record)
					}
					if records[r.Record] {
						t.Errorf("%s: recording rule %s defined twice", path, r.Record)
					}
					records[r.Record] = true
				case r.Alert != "":
					if path != alertsFile {
						t.Errorf("%s: alert %s belongs in %s", path, r.Alert, alertsFile)
					}
					if alerts[r.Alert] {
						t.Errorf("alert %s defined twice", r.Alert)
					}
					alerts[r.Alert] = true
					checkAlert(t, r, anchors)
				default:
					t.Errorf("%s: rule with neither record nor alert: %q", path, r.Expr)
				}
			}
		}
	}
	if len(records) == 0 || len(alerts) == 0 {
		t.Fatalf("found %d recording rules and %d alerts", len(records), len(alerts))
	}
}

func checkAlert(t *testing.T, r rule, anchors map[string]bool) {
	t.Helper()
	if s := r.Labels["severity"]; s != "warning" && s != "critical" {
		t.Errorf("alert %s: severity %q, want warning or critical", r.Alert, s)
	}
	for _, key := range []string{"summary", "description", "runbook_url"} {
		if r.Annotations[key] == "" {
			t.Errorf("alert %s: no %s annotation", r.Alert, key)
		}
	}
	anchor := strings.ToLower(r.Alert)
	if got := r.Annotations["runbook_url"]; got != runbookPrefix+anchor {
		t.Errorf("alert %s: runbook_url %q, want %q", r.Alert, got, runbookPrefix+anchor)
	}
	if !anchors[anchor] {
		t.Errorf("alert %s: %s has no heading %q (what it means, what to do)", r.Alert, readmeFile, r.Alert)
	}
	if r.For != "" {
		if _, err := time.ParseDuration(r.For); err != nil {
			t.Errorf("alert %s: for %q: %v", r.Alert, r.For, err)
		}
	}
}

// promtoolTestFile is the part of a promtool unit test file this package inspects.
type promtoolTestFile struct {
	Tests []struct {
		Name        string `yaml:"name"`
		InputSeries []struct {
			Series string `yaml:"series"`
		} `yaml:"input_series"`
		PromQLExprTest []struct {
			Expr       string `yaml:"expr"`
			ExpSamples []any  `yaml:"exp_samples"`
		} `yaml:"promql_expr_test"`
		AlertRuleTest []struct {
			Alertname string `yaml:"alertname"`
			ExpAlerts []struct {
				ExpLabels map[string]string `yaml:"exp_labels"`
			} `yaml:"exp_alerts"`
		} `yaml:"alert_rule_test"`
	} `yaml:"tests"`
}

func loadPromtoolTests(t *testing.T) []promtoolTestFile {
	t.Helper()
	var files []promtoolTestFile
	for _, path := range glob(t, promtoolTestsGlob) {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var f promtoolTestFile
		if err := yaml.Unmarshal(data, &f); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		files = append(files, f)
	}
	return files
}

// seriesLabels parses the labels of a promtool input series such as `name{a="b",c="d"}`.
var seriesLabel = regexp.MustCompile(`(\w+)\s*=\s*"((?:[^"\\]|\\.)*)"`)

func parseSeries(series string) (name string, labels map[string]string) {
	name, rest, _ := strings.Cut(series, "{")
	labels = map[string]string{}
	for _, m := range seriesLabel.FindAllStringSubmatch(rest, -1) {
		labels[m[1]] = m[2]
	}
	return strings.TrimSpace(name), labels
}

// TestRuleTestCoverage: every recording rule has its value checked by a promtool test (directly, or through
// a checked rule that reads it), and every alert has a test where it fires and input that must not fire it.
func TestRuleTestCoverage(t *testing.T) {
	rules := loadRules(t)
	exprOf := map[string]string{}
	for _, r := range rules {
		if r.Record != "" {
			exprOf[r.Record] = r.Expr
		}
	}
	// reads returns every name an expression reads, following recording rules.
	var reads func(expr string, seen map[string]bool)
	reads = func(expr string, seen map[string]bool) {
		names, err := metricNames(expr)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range names {
			if !seen[n] {
				seen[n] = true
				if e, ok := exprOf[n]; ok {
					reads(e, seen)
				}
			}
		}
	}

	files := loadPromtoolTests(t)
	checked := map[string]bool{}
	for _, f := range files {
		for _, tc := range f.Tests {
			for _, et := range tc.PromQLExprTest {
				if len(et.ExpSamples) > 0 {
					reads(et.Expr, checked)
				}
			}
		}
	}
	for name := range exprOf {
		if !checked[name] {
			t.Errorf("recording rule %s: no promtool test checks its value", name)
		}
	}

	for _, r := range rules {
		if r.Alert == "" {
			continue
		}
		alertReads := map[string]bool{}
		reads(r.Expr, alertReads)
		fires, quiet := false, false
		for _, f := range files {
			for _, tc := range f.Tests {
				var expected []map[string]string
				tested := false
				for _, at := range tc.AlertRuleTest {
					if at.Alertname != r.Alert {
						continue
					}
					tested = true
					if len(at.ExpAlerts) == 0 {
						quiet = true
					}
					for _, a := range at.ExpAlerts {
						fires = true
						expected = append(expected, a.ExpLabels)
					}
				}
				if !tested {
					continue
				}
				// Input series the alert reads that match no expected alert: the quiet case.
				for _, in := range tc.InputSeries {
					name, labels := parseSeries(in.Series)
					if alertReads[name] && !slices.ContainsFunc(expected, func(exp map[string]string) bool {
						return labelsAgree(exp, labels)
					}) {
						quiet = true
					}
				}
			}
		}
		if !fires {
			t.Errorf("alert %s: no promtool test where it fires", r.Alert)
		}
		if !quiet {
			t.Errorf("alert %s: no promtool test input that must not fire it", r.Alert)
		}
	}
}

// labelsAgree is true when every label both sets has the same value in both.
func labelsAgree(a, b map[string]string) bool {
	for k, v := range a {
		if w, ok := b[k]; ok && w != v {
			return false
		}
	}
	return true
}

// TestMetricNamesAreListed: the rules and the dashboard read exactly the names in deploy/metrics.txt, plus
// the names the recording rules define.
func TestMetricNamesAreListed(t *testing.T) {
	listed := loadMetricsList(t)
	for name, source := range listed {
		switch source {
		case "connector", "nvml":
			if strings.Contains(name, ":") {
				t.Errorf("%s: %s names from the %s have no colon", metricsListFile, name, source)
			}
		case "vllm":
			if !strings.HasPrefix(name, "vllm:") {
				t.Errorf("%s: %s: vLLM's own metrics are named vllm:*", metricsListFile, name)
			}
		default:
			t.Errorf("%s: %s: unknown source %q (connector, nvml or vllm)", metricsListFile, name, source)
		}
	}

	recorded := map[string]bool{}
	usedBy := map[string][]string{}
	use := func(where, expr string) {
		names, err := metricNames(expr)
		if err != nil {
			t.Errorf("%s: %v", where, err)
			return
		}
		for _, n := range names {
			usedBy[n] = append(usedBy[n], where)
		}
	}
	for _, r := range loadRules(t) {
		if r.Record != "" {
			recorded[r.Record] = true
			use("recording rule "+r.Record, r.Expr)
		} else {
			use("alert "+r.Alert, r.Expr)
		}
	}
	for _, q := range dashboardQueries(t, loadDashboard(t)) {
		use(q.where, q.expr)
	}

	var unknown []string
	for name, where := range usedBy {
		if listed[name] == "" && !recorded[name] {
			unknown = append(unknown, name+" (in "+where[0]+")")
		}
	}
	sort.Strings(unknown)
	for _, u := range unknown {
		t.Errorf("%s is not in %s", u, metricsListFile)
	}
	for name := range listed {
		if len(usedBy[name]) == 0 {
			t.Errorf("%s: %s is listed but no rule or dashboard panel reads it", metricsListFile, name)
		}
	}
}
