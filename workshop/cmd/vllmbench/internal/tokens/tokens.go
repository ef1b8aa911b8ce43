// Package tokens reads a Hugging Face tokenizer.json of the byte-level BPE family (GPT-2, Llama 3, Qwen,
// Mistral-Nemo, DeepSeek, ...) and encodes and decodes text as the Rust `tokenizers` library does, so that
// vllmbench can build prompts of an exact token length and count tokens the way the server does.
//
// What is read: the BPE model (vocab, merges in either serialization, ignore_merges), the added tokens
// (matched verbatim in the text before anything else, as `tokenizers` does), the NFC normalizer or none, the
// pre-tokenizers ByteLevel, Split (regex or string, behaviours Isolated and Removed) and Sequence of them, the
// ByteLevel decoder, and the post-processor only for how many special tokens it adds. Anything else is
// refused with an error rather than tokenized differently. The pre-tokenization regexes of these models use
// look-ahead and inline flags that Go's regexp cannot express; they run on github.com/dlclark/regexp2.
package tokens // import "github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmbench/internal/tokens"

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"unicode/utf8"

	"github.com/dlclark/regexp2"
	"golang.org/x/text/unicode/norm"
)

// gpt2Split is the split of the ByteLevel pre-tokenizer with use_regex (the GPT-2 pattern).
const gpt2Split = `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`

// Tokenizer is a loaded tokenizer.json. It is safe for concurrent use.
type Tokenizer struct {
	vocab        map[string]int
	idToToken    []string // base vocabulary, by id ("" for gaps)
	ranks        map[[2]string]int
	ignoreMerges bool
	nfc          bool
	pre          []preStep
	added        []addedToken // longest content first
	addedByID    map[int]addedToken
	specialIDs   []int
	numSpecial   int

	cache     sync.Map // byte-level piece → []int, the BPE of pieces already seen
	cacheSize atomic.Int64
}

// maxCache bounds the pieces whose BPE is remembered.
const maxCache = 1 << 17

type addedToken struct {
	ID      int    `json:"id"`
	Content string `json:"content"`
	Special bool   `json:"special"`
}

// preStep splits every piece of text further: by a regex (matches isolated or removed), then optionally
// maps the pieces to byte-level characters.
type preStep struct {
	re          *regexp2.Regexp
	remove      bool // Split behaviour Removed: matches are dropped
	byteLevel   bool // map to byte-level characters after splitting
	prefixSpace bool // ByteLevel add_prefix_space
}

type fileJSON struct {
	AddedTokens   []addedToken    `json:"added_tokens"`
	Normalizer    json.RawMessage `json:"normalizer"`
	PreTokenizer  json.RawMessage `json:"pre_tokenizer"`
	PostProcessor json.RawMessage `json:"post_processor"`
	Decoder       json.RawMessage `json:"decoder"`
	Model         struct {
		Type         string            `json:"type"`
		Vocab        map[string]int    `json:"vocab"`
		Merges       []json.RawMessage `json:"merges"`
		IgnoreMerges bool              `json:"ignore_merges"`
		ByteFallback bool              `json:"byte_fallback"`
	} `json:"model"`
}

type component struct {
	Type           string            `json:"type"`
	Pretokenizers  []json.RawMessage `json:"pretokenizers"`
	Normalizers    []json.RawMessage `json:"normalizers"`
	Processors     []json.RawMessage `json:"processors"`
	Decoders       []json.RawMessage `json:"decoders"`
	AddPrefixSpace bool              `json:"add_prefix_space"`
	UseRegex       *bool             `json:"use_regex"`
	Pattern        struct {
		Regex  *string `json:"Regex"`
		String *string `json:"String"`
	} `json:"pattern"`
	Behavior      string                       `json:"behavior"`
	Invert        bool                         `json:"invert"`
	Single        []map[string]json.RawMessage `json:"single"`
	SpecialTokens map[string]struct {
		IDs []int `json:"ids"`
	} `json:"special_tokens"`
}

func isNull(raw json.RawMessage) bool { return len(raw) == 0 || string(raw) == "null" }

// Load reads path: a tokenizer.json, or a directory (a model directory, as vLLM's --tokenizer takes) that
// holds one.
func Load(path string) (*Tokenizer, error) {
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		path = filepath.Join(path, "tokenizer.json")
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	t, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}

// Parse reads the contents of a tokenizer.json.
func Parse(data []byte) (*Tokenizer, error) {
	var f fileJSON
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("not a tokenizer.json: %w", err)
	}
	if f.Model.Type != "BPE" && f.Model.Type != "" || len(f.Model.Vocab) == 0 {
		return nil, fmt.Errorf("model type %q: only byte-level BPE tokenizers are supported", f.Model.Type)
	}
	if f.Model.ByteFallback {
		return nil, errors.New("BPE with byte_fallback (SentencePiece-style) is not supported, only byte-level BPE")
	}
	if err := checkDecoder(f.Decoder); err != nil {
		return nil, err
	}
	t := &Tokenizer{vocab: f.Model.Vocab, ignoreMerges: f.Model.IgnoreMerges, addedByID: map[int]addedToken{}}
	maxID := 0
	for tok, id := range f.Model.Vocab {
		if id < 0 {
			return nil, fmt.Errorf("negative id %d for %q", id, tok)
		}
		maxID = max(maxID, id)
	}
	t.idToToken = make([]string, maxID+1)
	for tok, id := range f.Model.Vocab {
		t.idToToken[id] = tok
	}
	t.ranks = make(map[[2]string]int, len(f.Model.Merges))
	for i, raw := range f.Model.Merges {
		var pair [2]string
		var s string
		if err := json.Unmarshal(raw, &s); err == nil {
			a, b, ok := strings.Cut(s, " ")
			if !ok {
				return nil, fmt.Errorf("merge %d: %q is not two symbols", i, s)
			}
			pair = [2]string{a, b}
		} else if err := json.Unmarshal(raw, &pair); err != nil {
			return nil, fmt.Errorf("merge %d: %w", i, err)
		}
		if _, dup := t.ranks[pair]; !dup {
			t.ranks[pair] = i
		}
	}
	for _, a := range f.AddedTokens {
		if a.Content == "" {
			continue
		}
		t.added = append(t.added, a)
		t.addedByID[a.ID] = a
		if a.Special {
			t.specialIDs = append(t.specialIDs, a.ID)
		}
	}
	slices.SortStableFunc(t.added, func(a, b addedToken) int { return len(b.Content) - len(a.Content) })
	slices.Sort(t.specialIDs)
	var err error
	if t.nfc, err = parseNormalizer(f.Normalizer); err != nil {
		return nil, err
	}
	if t.pre, err = parsePre(f.PreTokenizer); err != nil {
		return nil, err
	}
	if !slices.ContainsFunc(t.pre, func(s preStep) bool { return s.byteLevel }) {
		return nil, errors.New("no ByteLevel pre-tokenizer: only byte-level BPE tokenizers are supported")
	}
	if t.numSpecial, err = countSpecial(f.PostProcessor); err != nil {
		return nil, err
	}
	return t, nil
}

func checkDecoder(raw json.RawMessage) error {
	var c component
	if isNull(raw) || json.Unmarshal(raw, &c) != nil {
		return errors.New("no ByteLevel decoder: only byte-level BPE tokenizers are supported")
	}
	switch c.Type {
	case "ByteLevel":
		return nil
	case "Sequence":
		if len(c.Decoders) == 1 {
			return checkDecoder(c.Decoders[0])
		}
	}
	return fmt.Errorf("decoder %q: only the ByteLevel decoder is supported", c.Type)
}

func parseNormalizer(raw json.RawMessage) (nfc bool, err error) {
	if isNull(raw) {
		return false, nil
	}
	var c component
	if err := json.Unmarshal(raw, &c); err != nil {
		return false, fmt.Errorf("normalizer: %w", err)
	}
	switch c.Type {
	case "NFC":
		return true, nil
	case "Sequence":
		for _, n := range c.Normalizers {
			v, err := parseNormalizer(n)
			if err != nil {
				return false, err
			}
			nfc = nfc || v
		}
		return nfc, nil
	}
	return false, fmt.Errorf("normalizer %q is not supported (only NFC)", c.Type)
}

func compile(pattern string) (*regexp2.Regexp, error) {
	re, err := regexp2.Compile(pattern, regexp2.None)
	if err != nil {
		return nil, fmt.Errorf("pre-tokenizer pattern %q: %w", pattern, err)
	}
	return re, nil // no MatchTimeout: it runs a clock goroutine for the process's life
}

func parsePre(raw json.RawMessage) ([]preStep, error) {
	if isNull(raw) {
		return nil, nil
	}
	var c component
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, fmt.Errorf("pre_tokenizer: %w", err)
	}
	switch c.Type {
	case "Sequence":
		var steps []preStep
		for _, p := range c.Pretokenizers {
			s, err := parsePre(p)
			if err != nil {
				return nil, err
			}
			steps = append(steps, s...)
		}
		return steps, nil
	case "ByteLevel":
		s := preStep{byteLevel: true, prefixSpace: c.AddPrefixSpace}
		if c.UseRegex == nil || *c.UseRegex {
			re, err := compile(gpt2Split)
			if err != nil {
				return nil, err
			}
			s.re = re
		}
		return []preStep{s}, nil
	case "Split":
		if c.Invert {
			return nil, errors.New("pre-tokenizer Split with invert is not supported")
		}
		var pattern string
		switch {
		case c.Pattern.Regex != nil:
			pattern = *c.Pattern.Regex
		case c.Pattern.String != nil:
			pattern = regexp2.Escape(*c.Pattern.String)
		default:
			return nil, errors.New("pre-tokenizer Split without a pattern")
		}
		if c.Behavior != "Isolated" && c.Behavior != "Removed" {
			return nil, fmt.Errorf("pre-tokenizer Split behaviour %q is not supported (Isolated, Removed)", c.Behavior)
		}
		re, err := compile(pattern)
		if err != nil {
			return nil, err
		}
		return []preStep{{re: re, remove: c.Behavior == "Removed"}}, nil
	}
	return nil, fmt.Errorf("pre-tokenizer %q is not supported", c.Type)
}

func countSpecial(raw json.RawMessage) (int, error) {
	if isNull(raw) {
		return 0, nil
	}
	var c component
	if err := json.Unmarshal(raw, &c); err != nil {
		return 0, fmt.Errorf("post_processor: %w", err)
	}
	switch c.Type {
	case "ByteLevel":
		return 0, nil
	case "RobertaProcessing", "BertProcessing":
		return 2, nil
	case "TemplateProcessing":
		n := 0
		for _, item := range c.Single {
			sp, ok := item["SpecialToken"]
			if !ok {
				continue
			}
			var ref struct {
				ID string `json:"id"`
			}
			if err := json.Unmarshal(sp, &ref); err != nil {
				return 0, fmt.Errorf("post_processor: %w", err)
			}
			if st, ok := c.SpecialTokens[ref.ID]; ok {
				n += len(st.IDs)
			} else {
				n++
			}
		}
		return n, nil
	case "Sequence":
		n := 0
		for _, p := range c.Processors {
			v, err := countSpecial(p)
			if err != nil {
				return 0, err
			}
			n += v
		}
		return n, nil
	}
	return 0, fmt.Errorf("post-processor %q is not supported", c.Type)
}

// VocabSize is the size of the base vocabulary without the added tokens (transformers' vocab_size).
func (t *Tokenizer) VocabSize() int { return len(t.idToToken) }

// SpecialIDs are the ids of the added tokens marked special, ascending (transformers' all_special_ids, as
// far as tokenizer.json tells them).
func (t *Tokenizer) SpecialIDs() []int { return slices.Clone(t.specialIDs) }

// NumSpecialTokensToAdd is how many tokens the post-processor adds to a single sequence (a BOS token for
// Llama), which the server adds to a completion prompt.
func (t *Tokenizer) NumSpecialTokensToAdd() int { return t.numSpecial }

// Count is the number of tokens of text, without special tokens added.
func (t *Tokenizer) Count(text string) int { return len(t.Encode(text)) }

// Encode returns the token ids of text without the post-processor's special tokens (add_special_tokens=False).
// Added tokens in the text are recognised, as `tokenizers` does by default.
func (t *Tokenizer) Encode(text string) []int {
	var ids []int
	for text != "" {
		pos, tok := t.nextAdded(text)
		if pos < 0 {
			return t.encodePlain(text, ids)
		}
		ids = t.encodePlain(text[:pos], ids)
		ids = append(ids, tok.ID)
		text = text[pos+len(tok.Content):]
	}
	return ids
}

// nextAdded finds the leftmost added token in text, the longest one at that position.
func (t *Tokenizer) nextAdded(text string) (int, addedToken) {
	best, bestTok := -1, addedToken{}
	for _, a := range t.added {
		i := strings.Index(text, a.Content)
		if i >= 0 && (best < 0 || i < best) { // t.added is longest first: ties keep the longest
			best, bestTok = i, a
		}
	}
	return best, bestTok
}

func (t *Tokenizer) encodePlain(text string, ids []int) []int {
	if text == "" {
		return ids
	}
	if t.nfc {
		text = norm.NFC.String(text)
	}
	pieces := []string{text}
	for _, step := range t.pre {
		var next []string
		for _, p := range pieces {
			if step.prefixSpace && !strings.HasPrefix(p, " ") {
				p = " " + p
			}
			if step.re != nil {
				next = appendSplit(next, step.re, p, step.remove)
			} else {
				next = append(next, p)
			}
		}
		if step.byteLevel {
			for i, p := range next {
				next[i] = toByteLevel(p)
			}
		}
		pieces = next
	}
	for _, p := range pieces {
		ids = t.bpe(p, ids)
	}
	return ids
}

// appendSplit splits s by re's matches: matches and the text between them become pieces (Isolated), or
// only the text between them (Removed).
func appendSplit(out []string, re *regexp2.Regexp, s string, remove bool) []string {
	runes := []rune(s)
	last := 0
	m, err := re.FindRunesMatch(runes)
	for err == nil && m != nil {
		if m.Index > last {
			out = append(out, string(runes[last:m.Index]))
		}
		if !remove && m.Length > 0 {
			out = append(out, string(runes[m.Index:m.Index+m.Length]))
		}
		last = m.Index + m.Length
		m, err = re.FindNextMatch(m)
	}
	if last < len(runes) {
		out = append(out, string(runes[last:]))
	}
	return out
}

// bpe applies the merges to one pre-tokenized, byte-level piece.
func (t *Tokenizer) bpe(piece string, ids []int) []int {
	if piece == "" {
		return ids
	}
	if t.ignoreMerges {
		if id, ok := t.vocab[piece]; ok {
			return append(ids, id)
		}
	}
	if v, ok := t.cache.Load(piece); ok {
		return append(ids, v.([]int)...)
	}
	merged := t.merge(piece)
	if t.cacheSize.Load() < maxCache {
		t.cacheSize.Add(1)
		t.cache.Store(piece, merged)
	}
	return append(ids, merged...)
}

// merge applies the merges to piece and returns its ids.
func (t *Tokenizer) merge(piece string) []int {
	syms := make([]string, 0, utf8.RuneCountInString(piece))
	for _, r := range piece {
		syms = append(syms, string(r))
	}
	for len(syms) > 1 {
		best, bestRank := -1, int(^uint(0)>>1)
		for i := 0; i+1 < len(syms); i++ {
			if r, ok := t.ranks[[2]string{syms[i], syms[i+1]}]; ok && r < bestRank {
				best, bestRank = i, r
			}
		}
		if best < 0 {
			break
		}
		// merge every occurrence of the best pair, left to right, as the reference implementation does
		a, b := syms[best], syms[best+1]
		merged := syms[:0:0]
		for i := 0; i < len(syms); i++ {
			if i+1 < len(syms) && syms[i] == a && syms[i+1] == b {
				merged = append(merged, a+b)
				i++
			} else {
				merged = append(merged, syms[i])
			}
		}
		syms = merged
	}
	ids := make([]int, 0, len(syms))
	for _, s := range syms {
		if id, ok := t.vocab[s]; ok {
			ids = append(ids, id) // a symbol missing from the vocabulary is dropped, as with no unk_token
		}
	}
	return ids
}

// Decode returns the text of ids (special tokens included, as transformers' decode does by default);
// bytes that are not valid UTF-8 become U+FFFD as in Rust's from_utf8_lossy.
func (t *Tokenizer) Decode(ids []int) string {
	var buf []byte
	for _, id := range ids {
		var tok string
		if a, ok := t.addedByID[id]; ok {
			tok = a.Content
		} else if id >= 0 && id < len(t.idToToken) {
			tok = t.idToToken[id]
		} else {
			continue
		}
		buf = appendFromByteLevel(buf, tok)
	}
	return lossyUTF8(buf)
}
