package vllmrequest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
)

func dur(d time.Duration) *time.Duration { return &d }

func TestEvaluateSLO(t *testing.T) {
	// seed 003's goodput example: ttft:200 tpot:50 e2el:5000 (ms)
	seed := SLOConfig{TTFT: dur(200 * time.Millisecond), TPOT: dur(50 * time.Millisecond), E2E: dur(5 * time.Second)}
	tests := []struct {
		name       string
		slo        SLOConfig
		attrs      map[string]any
		want       [NumObjectives]Verdict
		allMet     bool
		violations []string
	}{
		{
			name:  "all met",
			slo:   seed,
			attrs: map[string]any{AttrTimeToFirstToken: 0.15, AttrEndToEnd: 2.0, AttrDecode: 1.0, AttrCompletionTokens: int64(41)}, // TPOT 25ms
			want:  [NumObjectives]Verdict{Met, Met, Met, NotEvaluated}, allMet: true,
		},
		{
			name:  "threshold itself is met",
			slo:   seed,
			attrs: map[string]any{AttrTimeToFirstToken: 0.2, AttrEndToEnd: 5.0, AttrDecode: 1.0, AttrCompletionTokens: int64(21)}, // TPOT 50ms
			want:  [NumObjectives]Verdict{Met, Met, Met, NotEvaluated}, allMet: true,
		},
		{
			name:       "ttft and tpot violated",
			slo:        seed,
			attrs:      map[string]any{AttrTimeToFirstToken: 0.35, AttrEndToEnd: 4.0, AttrDecode: 3.0, AttrCompletionTokens: int64(31)}, // TPOT 100ms
			want:       [NumObjectives]Verdict{Violated, Violated, Met, NotEvaluated},
			violations: []string{"ttft", "tpot"},
		},
		{
			// vLLM's serving benchmark: TPOT 0 for one output token, so the objective is met
			name:  "1-token output meets TPOT",
			slo:   seed,
			attrs: map[string]any{AttrTimeToFirstToken: 0.1, AttrEndToEnd: 0.1, AttrDecode: 0.0, AttrCompletionTokens: int64(1)},
			want:  [NumObjectives]Verdict{Met, Met, Met, NotEvaluated}, allMet: true,
		},
		{
			name:  "0-token output meets TPOT",
			slo:   seed,
			attrs: map[string]any{AttrRequestID: "chatcmpl-1", AttrTimeToFirstToken: 0.1, AttrEndToEnd: 0.1, AttrCompletionTokens: int64(0)},
			want:  [NumObjectives]Verdict{Met, Met, Met, NotEvaluated}, allMet: true,
		},
		{
			name:  "no output token count: TPOT not evaluated",
			slo:   seed,
			attrs: map[string]any{AttrTimeToFirstToken: 0.1, AttrEndToEnd: 0.1},
			want:  [NumObjectives]Verdict{Met, NotEvaluated, Met, NotEvaluated}, allMet: true,
		},
		{
			name:  "embeddings: no TTFT or TPOT objective",
			slo:   seed,
			attrs: map[string]any{AttrRequestID: "embd-1", AttrTimeToFirstToken: 0.5, AttrEndToEnd: 0.5, AttrCompletionTokens: int64(0)},
			want:  [NumObjectives]Verdict{NotEvaluated, NotEvaluated, Met, NotEvaluated}, allMet: true,
		},
		{
			name:       "aborted request never meets all",
			slo:        seed,
			attrs:      map[string]any{AttrTimeToFirstToken: 0.1, AttrEndToEnd: 0.5, AttrDecode: 0.2, AttrCompletionTokens: int64(11), AttrFinishReasons: `["abort"]`},
			want:       [NumObjectives]Verdict{Met, Met, Met, NotEvaluated},
			violations: []string{"error"},
		},
		{
			name:       "rejected e2e is not evaluated, queue violated",
			slo:        SLOConfig{E2E: dur(time.Second), Queue: dur(100 * time.Millisecond)},
			attrs:      map[string]any{AttrEndToEnd: "oops", AttrQueue: 0.5},
			want:       [NumObjectives]Verdict{NotEvaluated, NotEvaluated, NotEvaluated, Violated},
			violations: []string{"queue"},
		},
		{
			name:  "no objectives configured",
			attrs: map[string]any{AttrEndToEnd: 100.0},
			want:  [NumObjectives]Verdict{}, allMet: true,
		},
	}
	d := NewDeriver(NewDefaultConfig())
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var rec Record
			require.True(t, d.Derive(span(tt.attrs), resourceOf(pcommon.NewMap()), &rec))
			got := tt.slo.EvaluateSLO(&rec)
			assert.Equal(t, tt.want, got.Verdicts)
			assert.Equal(t, tt.allMet, got.AllMet)
			assert.Equal(t, tt.violations, got.Violations(nil))
		})
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(*Config)
		wantErr string
	}{
		{"defaults", func(*Config) {}, ""},
		{"with SLOs", func(c *Config) { c.SLO = SLOConfig{TTFT: dur(time.Second), Queue: dur(time.Millisecond)} }, ""},
		{"no span names", func(c *Config) { c.SpanNames = nil }, "span_names: must list at least one span name"},
		{"empty span name", func(c *Config) { c.SpanNames = []string{"llm_request", ""} }, "span_names[1]: must not be empty"},
		{"empty model attribute", func(c *Config) { c.Model.Attributes = []string{""} }, "model.attributes[0]: must not be empty"},
		{"empty model default", func(c *Config) { c.Model.Default = "" }, "model.default: must not be empty"},
		{"empty provider", func(c *Config) { c.Provider = "" }, "provider: must not be empty"},
		{"zero max_latency", func(c *Config) { c.MaxLatency = 0 }, "max_latency: must be positive, got 0s"},
		{"zero slo", func(c *Config) { c.SLO.TPOT = dur(0) }, "slo.tpot: must be positive, got 0s"},
		{"negative slo", func(c *Config) { c.SLO.E2E = dur(-time.Second) }, "slo.e2e: must be positive, got -1s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := NewDefaultConfig()
			tt.mutate(&cfg)
			err := cfg.Validate()
			if tt.wantErr == "" {
				assert.NoError(t, err)
				return
			}
			assert.EqualError(t, err, tt.wantErr)
		})
	}
}
