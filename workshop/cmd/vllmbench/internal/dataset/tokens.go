package dataset

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
)

// Tokenizer is what exact-length prompts need (internal/tokens implements it).
type Tokenizer interface {
	Encode(text string) []int
	Decode(ids []int) string
	Count(text string) int
	VocabSize() int
	SpecialIDs() []int
	NumSpecialTokensToAdd() int
}

// maxRetry bounds the decode/re-encode rounds of one prompt, as in vLLM's benchmark.
const maxRetry = 10

// RandomTokens returns n prompts of exactly inputLen tokens as the server counts them (the special tokens
// the tokenizer adds, such as a BOS, included), built the way vLLM's RandomDataset builds them: a run of
// consecutive non-special token ids from a random offset, decoded, then re-encoded and cut or topped up with
// random non-special ids until the text re-encodes to the wanted length (at most 10 rounds). InputLen is the
// length the final text has; it differs from inputLen only when the rounds run out, which vLLM accepts too.
func RandomTokens(n, inputLen, outputLen int, seed uint64, tok Tokenizer) ([]Prompt, error) {
	if n <= 0 {
		return nil, fmt.Errorf("number of prompts must be positive, got %d", n)
	}
	if inputLen <= 0 || outputLen <= 0 {
		return nil, fmt.Errorf("random input and output lengths must be positive, got %d and %d", inputLen, outputLen)
	}
	special := tok.NumSpecialTokensToAdd()
	target := inputLen - special
	if target < 1 {
		return nil, fmt.Errorf("random input length %d leaves no token beside the %d special tokens the tokenizer adds", inputLen, special)
	}
	prohibited := tok.SpecialIDs()
	allowed := make([]int, 0, tok.VocabSize())
	for id := range tok.VocabSize() {
		if _, found := slices.BinarySearch(prohibited, id); !found {
			allowed = append(allowed, id)
		}
	}
	if len(allowed) == 0 {
		return nil, fmt.Errorf("the tokenizer has no non-special token")
	}
	filler := sync.OnceValues(func() (string, bool) { return fillerWord(tok, allowed) })
	prompts := make([]Prompt, n)
	// Every prompt has its own random source, derived from the seed and its index, so that prompts are
	// built in parallel and still reproducible.
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(n, runtime.GOMAXPROCS(0)) {
		wg.Go(func() {
			ids := make([]int, 0, target)
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				r := rand.New(rand.NewPCG(seed, uint64(i)^0x9e3779b97f4a7c15))
				offset := r.IntN(tok.VocabSize())
				ids = ids[:0]
				for k := range target {
					ids = append(ids, allowed[(offset+i+k)%len(allowed)])
				}
				text, count := fitTokens(tok, ids, target, r, allowed, filler)
				prompts[i] = Prompt{Text: text, InputLen: count + special, OutputLen: outputLen, IgnoreEOS: true}
			}
		})
	}
	wg.Wait()
	return prompts, nil
}

// fitTokens decodes ids and re-encodes the text until it is target tokens long, and returns the text and
// its length. It first takes vLLM's steps (cut when too long, top up with random ids when too short, at most
// maxRetry rounds); when those run out it cuts tokens from the end until the text is not too long and tops
// it up with a filler word that is one token on its own, which lands on the target in practice.
func fitTokens(tok Tokenizer, ids []int, target int, r *rand.Rand, allowed []int, fillerWord func() (string, bool)) (string, int) {
	var text string
	for try := 0; ; try++ {
		text = tok.Decode(ids)
		ids = tok.Encode(text)
		if len(ids) == target {
			return text, target
		}
		if try == maxRetry {
			break
		}
		if len(ids) > target {
			ids = ids[:target]
			continue
		}
		for len(ids) < target {
			ids = append(ids, allowed[r.IntN(len(allowed))])
		}
	}
	filler, ok := fillerWord()
	if !ok {
		return text, len(ids)
	}
	best, bestLen := text, len(ids)
	for keep := min(len(ids), target); keep >= 0; keep-- {
		base := tok.Decode(ids[:keep])
		n := tok.Count(base)
		if n > target {
			continue
		}
		candidate := base + strings.Repeat(filler, target-n)
		if m := tok.Count(candidate); m == target {
			return candidate, m
		} else if abs(m-target) < abs(bestLen-target) {
			best, bestLen = candidate, m
		}
		if target-keep > maxRetry { // give up: keep the closest text
			break
		}
	}
	return best, bestLen
}

func abs(v int) int { return max(v, -v) }

// fillerWord is the text of the first non-special token that is a space and ASCII letters and encodes back
// to that one token: appended to a text it is a word of its own for the byte-level pre-tokenizers.
func fillerWord(tok Tokenizer, allowed []int) (string, bool) {
	for _, id := range allowed {
		s := tok.Decode([]int{id})
		if len(s) < 2 || s[0] != ' ' || strings.TrimLeft(s[1:], "abcdefghijklmnopqrstuvwxyz") != "" {
			continue
		}
		if got := tok.Encode(s + s); len(got) == 2 && got[0] == id && got[1] == id {
			return s, true
		}
	}
	return "", false
}

// CountTokens sets the InputLen of every prompt to its length in tokens as the server counts it (the
// tokenizer's special tokens included), for prompts read from a file.
func CountTokens(prompts []Prompt, tok Tokenizer) {
	counted := map[string]int{} // a file shorter than --num-prompts repeats its prompts
	for i := range prompts {
		n, ok := counted[prompts[i].Text]
		if !ok {
			n = tok.Count(prompts[i].Text) + tok.NumSpecialTokensToAdd()
			counted[prompts[i].Text] = n
		}
		prompts[i].InputLen = n
	}
}
