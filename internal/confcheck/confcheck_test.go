package confcheck

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/confmap"
)

type inner struct {
	TTFT  *time.Duration `mapstructure:"ttft"`
	Count int32          `mapstructure:"count"`
}

type shared struct {
	Wait time.Duration `mapstructure:"wait"`
}

type testConfig struct {
	Shared   shared           `mapstructure:",squash"`
	Limit    int              `mapstructure:"limit"`
	Size     uint8            `mapstructure:"size"`
	Interval time.Duration    `mapstructure:"interval"`
	SLO      inner            `mapstructure:"slo"`
	List     []inner          `mapstructure:"list"`
	ByName   map[string]inner `mapstructure:"by_name"`
	Name     string           `mapstructure:"name"`
	Ignored  int              `mapstructure:"-"`
}

func TestCheck(t *testing.T) {
	tests := []struct {
		name string
		yaml map[string]any
		want []string // substrings of the error; none means valid
	}{
		{name: "valid", yaml: map[string]any{
			"limit": 10, "size": 255, "interval": "15s", "wait": "1m", "name": "x",
			"slo": map[string]any{"ttft": "200ms", "count": 5},
		}},
		{name: "whole float is an integer", yaml: map[string]any{"limit": 10.0}},
		{name: "bare duration", yaml: map[string]any{"slo": map[string]any{"ttft": 200}},
			want: []string{"slo.ttft: 200 has no unit; write a duration with its unit, such as 200ms"}},
		{name: "fractional duration", yaml: map[string]any{"slo": map[string]any{"ttft": 0.2}},
			want: []string{"slo.ttft: 0.2 has no unit"}},
		{name: "squashed duration", yaml: map[string]any{"wait": 5}, want: []string{"wait: 5 has no unit"}},
		{name: "fractional integer", yaml: map[string]any{"limit": 10.5}, want: []string{"limit: 10.5 is not an integer"}},
		{name: "overflowing integer", yaml: map[string]any{"limit": 1e20}, want: []string{"limit: 1e+20 is out of range"}},
		{name: "uint64 beyond int", yaml: map[string]any{"limit": uint64(1 << 63)}, want: []string{"limit: 9223372036854775808 is out of range"}},
		{name: "int32 overflow", yaml: map[string]any{"slo": map[string]any{"count": 1 << 40}},
			want: []string{"slo.count: 1099511627776 is out of range (at most 2147483647)"}},
		{name: "uint8 overflow", yaml: map[string]any{"size": 256}, want: []string{"size: 256 is out of range (at most 255)"}},
		{name: "negative unsigned", yaml: map[string]any{"size": -1}, want: []string{"size: -1 must not be negative"}},
		{name: "in a list", yaml: map[string]any{"list": []any{map[string]any{"ttft": "1s"}, map[string]any{"ttft": 3}}},
			want: []string{"list[1].ttft: 3 has no unit"}},
		{name: "in a map", yaml: map[string]any{"by_name": map[string]any{"a": map[string]any{"count": 1.5}}},
			want: []string{"by_name.a.count: 1.5 is not an integer"}},
		{name: "every error", yaml: map[string]any{"limit": 1.5, "interval": 1},
			want: []string{"limit: 1.5 is not an integer", "interval: 1 has no unit"}},
		{name: "strings are left to the decoder", yaml: map[string]any{"limit": "ten", "interval": "soon"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// through confmap, as a component's Unmarshal receives it
			raw := confmap.NewFromStringMap(tt.yaml).ToStringMap()
			err := Check(raw, &testConfig{})
			if len(tt.want) == 0 {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			for _, w := range tt.want {
				require.Contains(t, err.Error(), w)
			}
		})
	}
}

func TestCheckRejectsNonStruct(t *testing.T) {
	require.ErrorContains(t, Check(map[string]any{}, new(int)), "not a struct")
}
