package dataset

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmbench/internal/tokens"
)

func TestRandomTokensExactLength(t *testing.T) {
	for _, fixture := range []string{"gpt2", "llama3"} {
		tok, err := tokens.Load("../tokens/testdata/" + fixture)
		require.NoError(t, err)
		special := tok.NumSpecialTokensToAdd()
		for _, n := range []int{2, 3, 17, 128, 1024} {
			prompts, err := RandomTokens(8, n, 5, 7, tok)
			require.NoError(t, err)
			for i, p := range prompts {
				assert.Equal(t, n, p.InputLen, "%s prompt %d of %d tokens", fixture, i, n)
				assert.Equal(t, n-special, tok.Count(p.Text), "%s: the text re-encodes to the wanted length", fixture)
				assert.Equal(t, 5, p.OutputLen)
				assert.True(t, p.IgnoreEOS)
				for _, id := range tok.Encode(p.Text) {
					assert.NotContains(t, tok.SpecialIDs(), id, "no special token in a random prompt")
				}
			}
			assert.NotEqual(t, prompts[0].Text, prompts[1].Text)
		}
	}
}

func TestRandomTokensReproducible(t *testing.T) {
	tok, err := tokens.Load("../tokens/testdata/llama3")
	require.NoError(t, err)
	a, err := RandomTokens(4, 64, 8, 3, tok)
	require.NoError(t, err)
	b, err := RandomTokens(4, 64, 8, 3, tok)
	require.NoError(t, err)
	c, err := RandomTokens(4, 64, 8, 4, tok)
	require.NoError(t, err)
	assert.Equal(t, a, b)
	assert.NotEqual(t, a[0].Text, c[0].Text)

	_, err = RandomTokens(1, 1, 8, 0, tok)
	assert.ErrorContains(t, err, "special tokens", "one token is the BOS alone")
	_, err = RandomTokens(0, 10, 8, 0, tok)
	assert.Error(t, err)
}

func TestCountTokens(t *testing.T) {
	tok, err := tokens.Load("../tokens/testdata/llama3")
	require.NoError(t, err)
	prompts := []Prompt{{Text: "the server token"}, {Text: "hello world, café"}, {Text: "the server token"}}
	CountTokens(prompts, tok)
	assert.Equal(t, len(tok.Encode("the server token"))+1, prompts[0].InputLen)
	assert.Equal(t, len(tok.Encode("hello world, café"))+1, prompts[1].InputLen)
	assert.Equal(t, prompts[0].InputLen, prompts[2].InputLen)
	assert.Greater(t, prompts[1].InputLen, 3)
}
