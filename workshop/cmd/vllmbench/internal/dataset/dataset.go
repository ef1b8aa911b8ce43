// Package dataset produces vllmbench's prompts: synthetic random prompts of a given length, or prompts read
// from a JSONL file.
package dataset // import "github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmbench/internal/dataset"

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strings"
)

// Prompt is one request's input.
type Prompt struct {
	Text string
	// InputLen is the intended prompt length in tokens (random prompts), 0 when unknown.
	InputLen int
	// OutputLen is max_tokens; 0 leaves it to the server.
	OutputLen int
	// IgnoreEOS asks the server to generate exactly OutputLen tokens.
	IgnoreEOS bool
}

// words are short common words, one token each in the usual LLM tokenizers (and in vllmgen serve, which
// counts words), so a prompt of n words is about n tokens without a tokenizer.
var words = strings.Fields(`the of and to in is you that it he was for on are as with his they at be this have
from or one had by word but not what all were we when your can said there use an each which she do how their
if will up other about out many then them these so some her would make like him into time has look two more
write go see number no way could people my than first water been call who oil its now find long down day did
get come made may part`)

// Random returns n prompts of inputLen random words, each asking for exactly outputLen tokens (max_tokens
// and ignore_eos), reproducible from seed.
func Random(n, inputLen, outputLen int, seed uint64) ([]Prompt, error) {
	if n <= 0 {
		return nil, fmt.Errorf("number of prompts must be positive, got %d", n)
	}
	if inputLen <= 0 || outputLen <= 0 {
		return nil, fmt.Errorf("random input and output lengths must be positive, got %d and %d", inputLen, outputLen)
	}
	r := rand.New(rand.NewPCG(seed, seed^0xda942042e4dd58b5))
	prompts := make([]Prompt, n)
	var b strings.Builder
	for i := range prompts {
		b.Reset()
		for w := range inputLen {
			if w > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(words[r.IntN(len(words))])
		}
		prompts[i] = Prompt{Text: b.String(), InputLen: inputLen, OutputLen: outputLen, IgnoreEOS: true}
	}
	return prompts, nil
}

// line is one JSONL entry: {"prompt": "...", "output_len": 128}; output_len is optional.
type line struct {
	Prompt    *string `json:"prompt"`
	OutputLen *int    `json:"output_len"`
}

// maxLineBytes bounds one JSONL line.
const maxLineBytes = 16 << 20

// ReadJSONL reads prompts from r and returns n of them, starting over at the first when the file has fewer.
func ReadJSONL(r io.Reader, n int) ([]Prompt, error) {
	if n <= 0 {
		return nil, fmt.Errorf("number of prompts must be positive, got %d", n)
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxLineBytes)
	var all []Prompt
	for lineNo := 1; sc.Scan() && len(all) < n; lineNo++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" {
			continue
		}
		var l line
		if err := json.Unmarshal([]byte(text), &l); err != nil {
			return nil, fmt.Errorf("line %d: %w", lineNo, err)
		}
		if l.Prompt == nil || *l.Prompt == "" {
			return nil, fmt.Errorf("line %d: no \"prompt\" string", lineNo)
		}
		p := Prompt{Text: *l.Prompt}
		if l.OutputLen != nil {
			if *l.OutputLen <= 0 {
				return nil, fmt.Errorf("line %d: output_len must be positive, got %d", lineNo, *l.OutputLen)
			}
			p.OutputLen = *l.OutputLen
		}
		all = append(all, p)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(all) == 0 {
		return nil, errors.New("no prompts in the file")
	}
	out := make([]Prompt, n)
	for i := range out {
		out[i] = all[i%len(all)]
	}
	return out, nil
}

// LoadJSONL reads prompts from a file (see ReadJSONL).
func LoadJSONL(path string, n int) ([]Prompt, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	prompts, err := ReadJSONL(f, n)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return prompts, nil
}
