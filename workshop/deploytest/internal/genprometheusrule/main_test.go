package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The arguments of the go:generate line in workshop/deploytest/doc.go, relative to this package's directory.
var (
	ruleFiles = []string{"../../../../deploy/prometheus/recording-rules.yaml", "../../../../deploy/prometheus/alerts.yaml"}
	generated = "../../../../deploy/kubernetes/prometheusrule/prometheusrule.yaml"
)

// TestGeneratedFileIsCurrent fails when the rule files changed and `make generate` did not run.
func TestGeneratedFileIsCurrent(t *testing.T) {
	want, err := generate(ruleFiles)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(generated)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Errorf("%s is not what the rule files generate: run `make generate`", generated)
	}
}

func TestGenerate(t *testing.T) {
	for _, tc := range []struct {
		name, file, want, wantErr string
	}{
		{
			name: "comments and block scalars keep their place",
			file: "# header\ngroups:\n  - name: a\n    rules:\n      # why\n      - record: x:y:z\n        expr: |\n          sum(y)\n\n",
			want: "    - name: a\n      rules:\n        # why\n        - record: x:y:z\n          expr: |\n            sum(y)\n",
		},
		{name: "no groups", file: "rules: []\n", wantErr: "no top-level groups: key"},
		{name: "content after the groups", file: "groups:\n  - name: a\nextra: 1\n", wantErr: `top-level content after groups: "extra: 1"`},
		{name: "tabs", file: "groups:\n\t- name: a\n", wantErr: "tab indentation"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "rules.yaml")
			if err := os.WriteFile(path, []byte(tc.file), 0o600); err != nil {
				t.Fatal(err)
			}
			out, err := generate([]string{path})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			_, groups, ok := strings.Cut(string(out), "  groups:\n    # deploy/prometheus/rules.yaml\n")
			if !ok || groups != tc.want {
				t.Errorf("generated groups:\n%s\nwant:\n%s", groups, tc.want)
			}
		})
	}
}
