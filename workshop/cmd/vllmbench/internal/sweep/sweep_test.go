package sweep

import (
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmbench/internal/metrics"
)

func TestParseSeedShapeAndCombinations(t *testing.T) {
	c, err := Parse([]byte(`
model: "microsoft/DialoGPT-medium"
base_url: "http://localhost:8000"
tokenizer: "microsoft/DialoGPT-medium"
input_output:
  - [256, 128]
  - [512, 256]
concurrency_prompts:
  - [1, 20]
  - [4, 80]
request_rates: [2, inf]
goodput: {ttft: 200, tpot: 50}
metadata: {config: A}
`))
	require.NoError(t, err)
	assert.Equal(t, metrics.Goodput{"ttft": 200, "tpot": 50}, c.ParsedGoodput)
	combos := c.Combinations(Defaults{})
	require.Len(t, combos, 8)
	assert.Equal(t, Combination{InputLen: 256, OutputLen: 128, MaxConcurrency: 1, NumPrompts: 20, RequestRate: 2}, combos[0])
	assert.Equal(t, Combination{InputLen: 256, OutputLen: 128, MaxConcurrency: 1, NumPrompts: 20, RequestRate: math.Inf(1)}, combos[1])
	assert.Equal(t, Combination{InputLen: 512, OutputLen: 256, MaxConcurrency: 4, NumPrompts: 80, RequestRate: math.Inf(1)}, combos[7])
	assert.Equal(t, "in256-out128-c1-n20-rate2.json", combos[0].FileName())
	assert.Equal(t, "in=512 out=256 concurrency=4 prompts=80 rate=inf", combos[7].String())

	// a missing list is the command line's single value
	c, err = Parse([]byte("goodput: \"ttft:200 tpot:50\"\nrequest_rates: [\"0.5\", 1]\n"))
	require.NoError(t, err)
	assert.Equal(t, metrics.Goodput{"ttft": 200, "tpot": 50}, c.ParsedGoodput)
	combos = c.Combinations(Defaults{InputLen: 8, OutputLen: 4, NumPrompts: 10})
	assert.Equal(t, []Combination{{InputLen: 8, OutputLen: 4, NumPrompts: 10, RequestRate: 0.5}, {InputLen: 8, OutputLen: 4, NumPrompts: 10, RequestRate: 1}}, combos)
	assert.Equal(t, "c0-n10-rate0.5.json", Combination{NumPrompts: 10, RequestRate: 0.5}.FileName(), "no lengths with a custom dataset")
}

func TestParseRejects(t *testing.T) {
	for doc, want := range map[string]string{
		"input_output: [[128]]":           "input_output[0]",
		"concurrency_prompts: [[4, 0]]":   "concurrency_prompts[0]",
		"request_rates: [fast]":           "request_rates[0]",
		"request_rates: [0]":              "request_rates[0]",
		"goodput: \"queue:100\"":          "goodput",
		"goodput: [1, 2]":                 "goodput",
		"concurency_prompts: [[1, 2]]":    "concurency_prompts", // a typo is not silently ignored
		"input_output: [[128, 64, 3]]":    "input_output[0]",
		"concurrency_prompts: [[-1, 10]]": "concurrency_prompts[0]",
	} {
		_, err := Parse([]byte(doc))
		assert.ErrorContains(t, err, want, doc)
	}
}
