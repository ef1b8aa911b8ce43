// Package sweep reads a sweep's configuration (combos.yaml) and lists its combinations: every input/output
// length pair × every (concurrency, prompts) pair × every request rate, each with the name of its result file.
package sweep // import "github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmbench/internal/sweep"

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmbench/internal/metrics"
)

// Config is combos.yaml. Every list is optional: a missing one is the single value of the command line.
type Config struct {
	Model   string `yaml:"model"`
	BaseURL string `yaml:"base_url"`
	// Tokenizer is accepted for compatibility with combos.yaml files and not used: vllmbench counts tokens
	// from the server's usage chunk.
	Tokenizer string `yaml:"tokenizer"`
	// InputOutput are [input length, output length] pairs of the random dataset.
	InputOutput [][]int `yaml:"input_output"`
	// ConcurrencyPrompts are [max concurrency (0 = unlimited), number of prompts] pairs.
	ConcurrencyPrompts [][]int `yaml:"concurrency_prompts"`
	// RequestRates are requests per second, or "inf".
	RequestRates []string `yaml:"request_rates"`
	// Goodput is "ttft:200 tpot:50" or a map {ttft: 200, tpot: 50}.
	Goodput yaml.Node `yaml:"goodput"`
	// Metadata is stored in every result JSON.
	Metadata map[string]string `yaml:"metadata"`

	// ParsedGoodput and Rates are Goodput and RequestRates, parsed.
	ParsedGoodput metrics.Goodput `yaml:"-"`
	Rates         []float64       `yaml:"-"`
}

// Load reads and checks a configuration file; unknown keys are errors.
func Load(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, err
	}
	c, err := Parse(data)
	if err != nil {
		return Config{}, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// Parse reads and checks a configuration.
func Parse(data []byte) (Config, error) {
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return Config{}, err
	}
	var errs []error
	for i, p := range c.InputOutput {
		if len(p) != 2 || p[0] <= 0 || p[1] <= 0 {
			errs = append(errs, fmt.Errorf("input_output[%d]: want [input length, output length], both positive, got %v", i, p))
		}
	}
	for i, p := range c.ConcurrencyPrompts {
		if len(p) != 2 || p[0] < 0 || p[1] <= 0 {
			errs = append(errs, fmt.Errorf("concurrency_prompts[%d]: want [concurrency (0 = unlimited), prompts > 0], got %v", i, p))
		}
	}
	for i, r := range c.RequestRates {
		v, err := ParseRate(r)
		if err != nil {
			errs = append(errs, fmt.Errorf("request_rates[%d]: %w", i, err))
		}
		c.Rates = append(c.Rates, v)
	}
	switch c.Goodput.Kind {
	case 0:
	case yaml.ScalarNode:
		g, err := metrics.ParseGoodput(c.Goodput.Value)
		if err != nil {
			errs = append(errs, fmt.Errorf("goodput: %w", err))
		}
		c.ParsedGoodput = g
	case yaml.MappingNode:
		var m map[string]float64
		if err := c.Goodput.Decode(&m); err != nil {
			errs = append(errs, fmt.Errorf("goodput: %w", err))
			break
		}
		var items []string
		for k, v := range m {
			items = append(items, k+":"+strconv.FormatFloat(v, 'g', -1, 64))
		}
		g, err := metrics.ParseGoodput(strings.Join(items, " "))
		if err != nil {
			errs = append(errs, fmt.Errorf("goodput: %w", err))
		}
		c.ParsedGoodput = g
	default:
		errs = append(errs, errors.New(`goodput: want "ttft:200 tpot:50" or a map of objective to milliseconds`))
	}
	return c, errors.Join(errs...)
}

// ParseRate reads a request rate: a positive number or inf.
func ParseRate(s string) (float64, error) {
	if s == "inf" {
		return math.Inf(1), nil
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || !(v > 0) || math.IsInf(v, 0) {
		return 0, fmt.Errorf("want a positive number or inf, got %q", s)
	}
	return v, nil
}

// Combination is one run of a sweep.
type Combination struct {
	InputLen, OutputLen int // 0 with a custom dataset
	MaxConcurrency      int // 0 = unlimited
	NumPrompts          int
	RequestRate         float64 // +Inf = all at once
}

func rateWord(r float64) string {
	if math.IsInf(r, 1) {
		return "inf"
	}
	return strconv.FormatFloat(r, 'f', -1, 64)
}

// FileName is the combination's result file name, the same in every sweep so that a sweep can resume.
func (c Combination) FileName() string {
	name := ""
	if c.InputLen > 0 {
		name = fmt.Sprintf("in%d-out%d-", c.InputLen, c.OutputLen)
	}
	return name + fmt.Sprintf("c%d-n%d-rate%s.json", c.MaxConcurrency, c.NumPrompts, rateWord(c.RequestRate))
}

// String describes the combination for the progress line.
func (c Combination) String() string {
	var b strings.Builder
	if c.InputLen > 0 {
		fmt.Fprintf(&b, "in=%d out=%d ", c.InputLen, c.OutputLen)
	}
	conc := "unlimited"
	if c.MaxConcurrency > 0 {
		conc = strconv.Itoa(c.MaxConcurrency)
	}
	fmt.Fprintf(&b, "concurrency=%s prompts=%d rate=%s", conc, c.NumPrompts, rateWord(c.RequestRate))
	return b.String()
}

// Defaults are the command line's single values, used for a list the configuration does not have.
type Defaults struct {
	InputLen, OutputLen int // 0: a custom dataset (the configuration must then have no input_output)
	MaxConcurrency      int
	NumPrompts          int
	RequestRate         float64
}

// Combinations lists the runs in order: input/output pairs, then concurrency pairs, then rates.
func (c Config) Combinations(d Defaults) []Combination {
	io := c.InputOutput
	if len(io) == 0 {
		io = [][]int{{d.InputLen, d.OutputLen}}
	}
	cp := c.ConcurrencyPrompts
	if len(cp) == 0 {
		cp = [][]int{{d.MaxConcurrency, d.NumPrompts}}
	}
	rates := c.Rates
	if len(rates) == 0 {
		rates = []float64{d.RequestRate}
	}
	var out []Combination
	for _, p := range io {
		for _, q := range cp {
			for _, r := range rates {
				out = append(out, Combination{InputLen: p[0], OutputLen: p[1], MaxConcurrency: q[0], NumPrompts: q[1], RequestRate: r})
			}
		}
	}
	return out
}
