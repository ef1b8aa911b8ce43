package deploytest

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/otelcol-vllm/otelcol-vllm/workshop/testkit"
)

const datasourceVar = "${datasource}"

type dashboard struct {
	UID           string `json:"uid"`
	Title         string `json:"title"`
	SchemaVersion int    `json:"schemaVersion"`
	Templating    struct {
		List []variable `json:"list"`
	} `json:"templating"`
	Panels []panel `json:"panels"`
}

type datasourceRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type variable struct {
	Type       string          `json:"type"`
	Name       string          `json:"name"`
	Query      json.RawMessage `json:"query"`
	Definition string          `json:"definition"`
	Datasource *datasourceRef  `json:"datasource"`
	IncludeAll bool            `json:"includeAll"`
	AllValue   string          `json:"allValue"`
}

// queryText is the variable's query: a string for datasource variables, {"query": ...} for query variables.
func (v variable) queryText() string {
	var s string
	if json.Unmarshal(v.Query, &s) == nil {
		return s
	}
	var q struct {
		Query string `json:"query"`
	}
	_ = json.Unmarshal(v.Query, &q)
	return q.Query
}

type panel struct {
	ID         int            `json:"id"`
	Type       string         `json:"type"`
	Title      string         `json:"title"`
	Datasource *datasourceRef `json:"datasource"`
	GridPos    struct {
		H, W, X, Y int
	} `json:"gridPos"`
	Targets []target `json:"targets"`
	Panels  []panel  `json:"panels"` // a collapsed row's panels
}

type target struct {
	RefID      string         `json:"refId"`
	Expr       string         `json:"expr"`
	Exemplar   bool           `json:"exemplar"`
	Datasource *datasourceRef `json:"datasource"`
}

func loadDashboard(t *testing.T) dashboard {
	t.Helper()
	data, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	return d
}

// allPanels flattens rows: top-level panels and the panels of collapsed rows.
func allPanels(d dashboard) []panel {
	var out []panel
	for _, p := range d.Panels {
		out = append(out, p)
		out = append(out, p.Panels...)
	}
	return out
}

type dashboardQuery struct {
	where string
	expr  string
}

// labelValues matches a Grafana label_values(selector, label) variable query.
var labelValues = regexp.MustCompile(`^label_values\((.*),\s*(\w+)\)$`)

// dashboardQueries returns every PromQL expression of the dashboard: panel targets and the selectors of
// label_values() variable queries.
func dashboardQueries(t *testing.T, d dashboard) []dashboardQuery {
	t.Helper()
	var qs []dashboardQuery
	for _, p := range allPanels(d) {
		for _, tg := range p.Targets {
			qs = append(qs, dashboardQuery{fmt.Sprintf("panel %d %q target %s", p.ID, p.Title, tg.RefID), tg.Expr})
		}
	}
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		m := labelValues.FindStringSubmatch(v.queryText())
		if m == nil {
			t.Errorf("variable %s: query %q is not label_values(selector, label)", v.Name, v.queryText())
			continue
		}
		qs = append(qs, dashboardQuery{"variable " + v.Name, m[1]})
	}
	return qs
}

var (
	// Grafana's interval variables, replaced by a duration for promtool.
	builtinVar = regexp.MustCompile(`\$(__rate_interval|__interval|__range)\b|\$\{(__rate_interval|__interval|__range)\}`)
	userVar    = regexp.MustCompile(`\$(\w+)|\$\{(\w+)(:\w+)?\}`)
	// A regex label matcher; the only place a multi-value variable may appear.
	regexMatcher = regexp.MustCompile(`=~\s*"[^"]*"`)
)

// substituteVariables turns a panel query into plain PromQL: interval variables become 5m and the other
// variables, which must appear only inside =~ matchers, become ".*" (their "All" value).
func substituteVariables(expr string, defined map[string]bool) (string, error) {
	expr = builtinVar.ReplaceAllString(expr, "5m")
	if stray := userVar.FindString(regexMatcher.ReplaceAllString(expr, "")); stray != "" {
		return "", fmt.Errorf("variable %s outside a =~ matcher", stray)
	}
	var err error
	expr = userVar.ReplaceAllStringFunc(expr, func(v string) string {
		m := userVar.FindStringSubmatch(v)
		name := m[1] + m[2]
		if !defined[name] {
			err = fmt.Errorf("undefined variable $%s", name)
		}
		return ".*"
	})
	return expr, err
}

func TestDashboard(t *testing.T) {
	d := loadDashboard(t)
	if d.UID == "" || d.Title == "" {
		t.Errorf("uid %q, title %q: both must be set", d.UID, d.Title)
	}
	if d.SchemaVersion < 36 {
		t.Errorf("schemaVersion %d: want a current Grafana schema (>= 36)", d.SchemaVersion)
	}

	vars := map[string]variable{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v
	}
	if ds := vars["datasource"]; ds.Type != "datasource" || ds.queryText() != "prometheus" {
		t.Errorf("variable datasource: type %q query %q, want a prometheus datasource variable", ds.Type, ds.queryText())
	}
	for _, name := range []string{"model", "instance"} {
		if _, ok := vars[name]; !ok {
			t.Errorf("no %s variable", name)
		}
	}
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		if v.Datasource == nil || v.Datasource.UID != datasourceVar {
			t.Errorf("variable %s: datasource %+v, want uid %s", v.Name, v.Datasource, datasourceVar)
		}
		if v.Definition != v.queryText() {
			t.Errorf("variable %s: definition %q differs from query %q", v.Name, v.Definition, v.queryText())
		}
		// The panels use the variables in =~ matchers, so "All" must be a regex matching every value.
		if !v.IncludeAll || v.AllValue != ".*" {
			t.Errorf("variable %s: includeAll %v allValue %q, want true and .*", v.Name, v.IncludeAll, v.AllValue)
		}
	}

	ids := map[int]bool{}
	for _, p := range allPanels(d) {
		if ids[p.ID] {
			t.Errorf("panel id %d used twice", p.ID)
		}
		ids[p.ID] = true
		if g := p.GridPos; g.W <= 0 || g.H <= 0 || g.X < 0 || g.X+g.W > 24 {
			t.Errorf("panel %q: gridPos %+v outside the 24-column grid", p.Title, g)
		}
		if p.Type == "row" {
			continue
		}
		if p.Datasource == nil || p.Datasource.UID != datasourceVar {
			t.Errorf("panel %q: datasource %+v, want uid %s", p.Title, p.Datasource, datasourceVar)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q: no queries", p.Title)
		}
		refs := map[string]bool{}
		for _, tg := range p.Targets {
			if tg.Expr == "" || tg.RefID == "" || refs[tg.RefID] {
				t.Errorf("panel %q: target %q: empty expression or missing/duplicate refId", p.Title, tg.RefID)
			}
			refs[tg.RefID] = true
			if tg.Datasource == nil || tg.Datasource.UID != datasourceVar {
				t.Errorf("panel %q target %s: datasource %+v, want uid %s", p.Title, tg.RefID, tg.Datasource, datasourceVar)
			}
		}
	}

	defined := map[string]bool{}
	for name := range vars {
		defined[name] = true
	}
	for _, q := range dashboardQueries(t, d) {
		if _, err := substituteVariables(q.expr, defined); err != nil {
			t.Errorf("%s: %v", q.where, err)
		}
	}
}

// TestDashboardContent: the panels the operations kit promises are there.
func TestDashboardContent(t *testing.T) {
	d := loadDashboard(t)
	panelReads := map[string]bool{}
	for _, p := range allPanels(d) {
		for _, tg := range p.Targets {
			names, err := metricNames(tg.Expr)
			if err != nil {
				t.Fatalf("panel %q: %v", p.Title, err)
			}
			for _, n := range names {
				panelReads[n] = true
			}
		}
	}
	for _, name := range []string{
		"vllm_slo_requests_total", "vllm_tokens_total", "vllm_requests_total",
		"vllm:num_requests_running", "vllm:num_requests_waiting", "vllm:kv_cache_usage_perc",
		"hw_gpu_utilization_ratio", "hw_gpu_memory_usage_bytes", "hw_power_watts", "hw_temperature_celsius",
		"nvidia_gpu_clock_frequency_hertz",
	} {
		if !panelReads[name] {
			t.Errorf("no panel reads %s", name)
		}
	}

	// Latency panels: p50, p95 and p99 from the buckets and the mean, exemplars on a bucket query.
	for _, hist := range []string{
		"gen_ai_server_time_to_first_token_seconds", "gen_ai_server_time_per_output_token_seconds",
		"gen_ai_server_request_duration_seconds", "vllm_request_queue_duration_seconds",
		"vllm_request_prefill_duration_seconds", "vllm_request_decode_duration_seconds",
	} {
		i := slices.IndexFunc(allPanels(d), func(p panel) bool {
			return slices.ContainsFunc(p.Targets, func(tg target) bool { return strings.Contains(tg.Expr, hist+"_bucket") })
		})
		if i < 0 {
			t.Errorf("no panel reads %s_bucket", hist)
			continue
		}
		p := allPanels(d)[i]
		var all strings.Builder
		exemplar := false
		for _, tg := range p.Targets {
			all.WriteString(tg.Expr + "\n")
			exemplar = exemplar || (tg.Exemplar && strings.Contains(tg.Expr, hist+"_bucket"))
		}
		for _, want := range []string{"histogram_quantile(0.5,", "histogram_quantile(0.95,", "histogram_quantile(0.99,", hist + "_sum", hist + "_count"} {
			if !strings.Contains(all.String(), want) {
				t.Errorf("panel %q: no query with %s", p.Title, want)
			}
		}
		if !exemplar {
			t.Errorf("panel %q: no exemplars on its %s_bucket queries", p.Title, hist)
		}
	}
}

// TestDashboardQueriesParse has promtool parse every dashboard query, variables substituted, as a recording
// rule of a temporary rule file.
func TestDashboardQueriesParse(t *testing.T) {
	promtool := testkit.Tool(t, testkit.Promtool)
	d := loadDashboard(t)
	defined := map[string]bool{}
	for _, v := range d.Templating.List {
		defined[v.Name] = true
	}
	type recording struct {
		Record string `yaml:"record"`
		Expr   string `yaml:"expr"`
	}
	var rules []recording
	var index strings.Builder // query_N -> panel, printed when promtool fails
	for i, q := range dashboardQueries(t, d) {
		expr, err := substituteVariables(q.expr, defined)
		if err != nil {
			t.Fatalf("%s: %v", q.where, err)
		}
		rules = append(rules, recording{Record: fmt.Sprintf("dashboard:query_%d:check", i), Expr: expr})
		fmt.Fprintf(&index, "query_%d: %s\n", i, q.where)
	}
	file := map[string]any{"groups": []map[string]any{{"name": "dashboard_queries", "rules": rules}}}
	data, err := yaml.Marshal(file)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "dashboard-queries.yaml")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.CommandContext(t.Context(), promtool, "check", "rules", path).CombinedOutput()
	if want := fmt.Sprintf("SUCCESS: %d rules found", len(rules)); err != nil || !strings.Contains(string(out), want) {
		t.Errorf("promtool check rules (want %q): %v\n%s\nqueries:\n%s", want, err, out, index.String())
	}
}

// TestGrafanaDatasources: the provisioned Prometheus datasource turns exemplars' trace_id into a link to the
// provisioned Jaeger datasource.
func TestGrafanaDatasources(t *testing.T) {
	var f struct {
		APIVersion  int `yaml:"apiVersion"`
		Datasources []struct {
			Name     string `yaml:"name"`
			UID      string `yaml:"uid"`
			Type     string `yaml:"type"`
			Access   string `yaml:"access"`
			URL      string `yaml:"url"`
			JSONData struct {
				ExemplarTraceIDDestinations []struct {
					Name          string `yaml:"name"`
					DatasourceUID string `yaml:"datasourceUid"`
				} `yaml:"exemplarTraceIdDestinations"`
			} `yaml:"jsonData"`
		} `yaml:"datasources"`
	}
	decodeYAMLFile(t, datasourcesFile, &f)
	typeOf := map[string]string{}
	for _, ds := range f.Datasources {
		typeOf[ds.UID] = ds.Type
	}
	linked := false
	for _, ds := range f.Datasources {
		if ds.Type != "prometheus" {
			continue
		}
		for _, dest := range ds.JSONData.ExemplarTraceIDDestinations {
			// prometheus_remote_write stores an exemplar's trace id in the label trace_id.
			if dest.Name == "trace_id" && typeOf[dest.DatasourceUID] == "jaeger" {
				linked = true
			}
		}
	}
	if !linked {
		t.Errorf("%s: no prometheus datasource links exemplar label trace_id to a jaeger datasource", datasourcesFile)
	}
}

// TestDashboardEfficiencyRow checks the efficiency row: energy per token by model, tokens per joule, SM activity
// beside tokens/s in one panel, and GPU panels grouped by pod.
func TestDashboardEfficiencyRow(t *testing.T) {
	d := loadDashboard(t)
	row := slices.IndexFunc(d.Panels, func(p panel) bool { return p.Type == "row" && strings.HasPrefix(p.Title, "Efficiency") })
	if row < 0 {
		t.Fatal("no Efficiency row")
	}
	var efficiency []panel
	for _, p := range d.Panels[row+1:] {
		if p.Type == "row" {
			break
		}
		if p.ID < 200 || p.ID > 299 {
			t.Errorf("panel %q: id %d, want 200-299 for the efficiency row", p.Title, p.ID)
		}
		efficiency = append(efficiency, p)
	}
	reads := func(p panel, name string) bool {
		return slices.ContainsFunc(p.Targets, func(tg target) bool {
			names, err := metricNames(tg.Expr)
			return err == nil && slices.Contains(names, name)
		})
	}
	for _, want := range [][]string{
		{"model:vllm_joules_per_output_token:ratio_rate5m"},
		{"model:vllm_output_tokens_per_joule:ratio_rate5m"},
		{"nvidia_gpu_sm_activity_ratio", "namespace_pod_model:vllm_output_tokens:rate5m"}, // in one panel
		{"namespace_pod:hw_energy_joules:rate5m"},
		{"nvidia_gpu_allocation"},
		{"namespace_pod_model:vllm_cost_per_1m_output_tokens:ratio_rate5m"},
	} {
		if !slices.ContainsFunc(efficiency, func(p panel) bool {
			return !slices.ContainsFunc(want, func(n string) bool { return !reads(p, n) })
		}) {
			t.Errorf("no efficiency panel reads all of %v", want)
		}
	}
	for _, p := range efficiency {
		for _, tg := range p.Targets {
			if strings.Contains(tg.Expr, "nvidia_gpu_") && strings.Contains(tg.Expr, "by (") && !strings.Contains(tg.Expr, "k8s_pod_name") {
				t.Errorf("panel %q: GPU query %q is not grouped by pod", p.Title, tg.Expr)
			}
		}
	}
}
