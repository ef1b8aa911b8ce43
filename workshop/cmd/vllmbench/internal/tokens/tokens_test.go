package tokens

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// cases is testdata/cases.json: what the Python `tokenizers` library answers for the fixtures.
type cases struct {
	VocabSize  int `json:"vocab_size"`
	NumSpecial int `json:"num_special_tokens_to_add"`
	Encode     []struct {
		Text string `json:"text"`
		IDs  []int  `json:"ids"`
	} `json:"encode"`
	Decode []struct {
		IDs  []int  `json:"ids"`
		Text string `json:"text"`
	} `json:"decode"`
}

func loadCases(t *testing.T) map[string]cases {
	t.Helper()
	data, err := os.ReadFile("testdata/cases.json")
	require.NoError(t, err)
	var c map[string]cases
	require.NoError(t, json.Unmarshal(data, &c))
	return c
}

// TestSameAsReference holds Encode and Decode to the reference implementation, id for id and byte for byte,
// on hand-picked strings (spaces, newlines, contractions, digits, accents, emoji, added tokens) and on
// decoded random ids, the text random prompts are made of.
func TestSameAsReference(t *testing.T) {
	for name, c := range loadCases(t) {
		t.Run(name, func(t *testing.T) {
			tok, err := Load(filepath.Join("testdata", name)) // a directory holding tokenizer.json
			require.NoError(t, err)
			assert.Equal(t, c.VocabSize, tok.VocabSize())
			assert.Equal(t, c.NumSpecial, tok.NumSpecialTokensToAdd())
			require.Len(t, c.Encode, 322)
			for _, e := range c.Encode {
				want := e.IDs
				if len(want) == 0 {
					want = nil
				}
				assert.Equal(t, want, tok.Encode(e.Text), "encode %q", e.Text)
				assert.Equal(t, len(e.IDs), tok.Count(e.Text))
			}
			require.Len(t, c.Decode, 100)
			for _, d := range c.Decode {
				assert.Equal(t, d.Text, tok.Decode(d.IDs), "decode %v", d.IDs)
			}
		})
	}
}

func TestLoadFileAndSpecials(t *testing.T) {
	tok, err := Load("testdata/llama3/tokenizer.json")
	require.NoError(t, err)
	assert.Equal(t, []int{0, 1}, tok.SpecialIDs())
	assert.Equal(t, []int{0}, tok.Encode("<|begin_of_text|>"))
	assert.Equal(t, "<|begin_of_text|>", tok.Decode([]int{0}))
	gpt2, err := Load("testdata/gpt2/tokenizer.json")
	require.NoError(t, err)
	assert.Equal(t, []int{0}, gpt2.SpecialIDs())
	assert.Equal(t, 0, gpt2.NumSpecialTokensToAdd())
}

func TestLoadRejects(t *testing.T) {
	dir := t.TempDir()
	_, err := Load(dir)
	assert.ErrorContains(t, err, "tokenizer.json")
	write := func(s string) string {
		p := filepath.Join(dir, "t.json")
		require.NoError(t, os.WriteFile(p, []byte(s), 0o600))
		return p
	}
	tests := map[string]struct{ json, err string }{
		"not JSON":      {`nope`, "not a tokenizer.json"},
		"WordPiece":     {`{"model":{"type":"WordPiece","vocab":{"a":0}},"decoder":{"type":"WordPiece"}}`, "only byte-level BPE"},
		"byte fallback": {`{"model":{"type":"BPE","vocab":{"a":0},"byte_fallback":true},"decoder":{"type":"ByteLevel"}}`, "byte_fallback"},
		"metaspace":     {`{"model":{"type":"BPE","vocab":{"a":0}},"decoder":{"type":"Metaspace"}}`, "ByteLevel decoder"},
		"no bytelevel":  {`{"model":{"type":"BPE","vocab":{"a":0}},"decoder":{"type":"ByteLevel"},"pre_tokenizer":{"type":"Whitespace"}}`, "not supported"},
		"bad regex":     {`{"model":{"type":"BPE","vocab":{"a":0}},"decoder":{"type":"ByteLevel"},"pre_tokenizer":{"type":"Split","pattern":{"Regex":"("},"behavior":"Isolated","invert":false}}`, "pattern"},
		"NFKC":          {`{"model":{"type":"BPE","vocab":{"a":0}},"decoder":{"type":"ByteLevel"},"normalizer":{"type":"NFKC"},"pre_tokenizer":{"type":"ByteLevel"}}`, "NFKC"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := Load(write(tt.json))
			assert.ErrorContains(t, err, tt.err)
		})
	}
}

func TestLossyUTF8(t *testing.T) {
	for in, want := range map[string]string{
		"ok é":         "ok é",
		"a\xe6\x9cb":   "a\ufffdb",           // a cut 3-byte sequence is one replacement
		"\xff\xfe":     "\ufffd\ufffd",       // bytes that never start a sequence: one each
		"\xed\xa0\x80": "\ufffd\ufffd\ufffd", // a surrogate: ED may not be followed by A0
		"\xf0\x9f\x98": "\ufffd",
		"x\xc3":        "x\ufffd",
	} {
		assert.Equal(t, want, lossyUTF8([]byte(in)), "%q", in)
	}
}
