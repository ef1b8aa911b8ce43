package dataset

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRandom(t *testing.T) {
	a, err := Random(3, 50, 7, 1)
	require.NoError(t, err)
	b, err := Random(3, 50, 7, 1)
	require.NoError(t, err)
	c, err := Random(3, 50, 7, 2)
	require.NoError(t, err)
	assert.Equal(t, a, b, "same seed, same prompts")
	assert.NotEqual(t, a[0].Text, c[0].Text)
	for _, p := range a {
		assert.Len(t, strings.Fields(p.Text), 50)
		assert.Equal(t, Prompt{Text: p.Text, InputLen: 50, OutputLen: 7, IgnoreEOS: true}, p)
	}
	assert.NotEqual(t, a[0].Text, a[1].Text)
}

func TestRandomRejects(t *testing.T) {
	for _, args := range [][3]int{{0, 1, 1}, {1, 0, 1}, {1, 1, 0}, {-1, 5, 5}} {
		_, err := Random(args[0], args[1], args[2], 0)
		assert.Error(t, err, "%v", args)
	}
}

func TestReadJSONL(t *testing.T) {
	in := `{"prompt": "hello there", "output_len": 12}

{"prompt": "second"}
`
	got, err := ReadJSONL(strings.NewReader(in), 5)
	require.NoError(t, err)
	want := []Prompt{{Text: "hello there", OutputLen: 12}, {Text: "second"}}
	assert.Equal(t, []Prompt{want[0], want[1], want[0], want[1], want[0]}, got, "fewer lines than prompts: start over")

	got, err = ReadJSONL(strings.NewReader(in), 1)
	require.NoError(t, err)
	assert.Equal(t, want[:1], got)
}

func TestReadJSONLBadInput(t *testing.T) {
	tests := map[string]string{
		"not JSON":          "{\"prompt\": \"a\"}\nnope\n",
		"no prompt":         `{"text": "a"}`,
		"empty prompt":      `{"prompt": ""}`,
		"prompt not string": `{"prompt": 5}`,
		"bad output_len":    `{"prompt": "a", "output_len": 0}`,
		"empty file":        "\n\n",
	}
	for name, in := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := ReadJSONL(strings.NewReader(in), 3)
			assert.Error(t, err)
		})
	}
	_, err := ReadJSONL(strings.NewReader("{\"prompt\": \"a\"}\nnope\n"), 3)
	assert.ErrorContains(t, err, "line 2")
}

func TestLoadJSONLMissingFile(t *testing.T) {
	_, err := LoadJSONL(t.TempDir()+"/missing.jsonl", 1)
	assert.ErrorContains(t, err, "missing.jsonl")
}
