package metrics // import "github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmbench/internal/metrics"

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
)

// PrintOptions are the run settings the summary mentions.
type PrintOptions struct {
	// Metrics are the --percentile-metrics to print.
	Metrics        []string
	MaxConcurrency int     // 0: not limited
	RequestRate    float64 // +Inf: not printed
}

const width = 50

func center(title string, fill byte) string {
	pad := width - len(title)
	if pad <= 0 {
		return title
	}
	left := pad / 2
	return strings.Repeat(string(fill), left) + title + strings.Repeat(string(fill), pad-left)
}

// WriteText prints the summary in the layout of vLLM's serving benchmark, then the client − server gap
// section when a server join ran.
func (s Summary) WriteText(w io.Writer, opts PrintOptions) error {
	var b strings.Builder
	line := func(label string, value any) {
		switch v := value.(type) {
		case float64:
			fmt.Fprintf(&b, "%-40s %-10.2f\n", label, v)
		default:
			fmt.Fprintf(&b, "%-40s %-10v\n", label, v)
		}
	}
	b.WriteString(center(" Serving Benchmark Result ", '=') + "\n")
	line("Successful requests:", s.Completed)
	line("Failed requests:", s.Failed)
	if opts.MaxConcurrency > 0 {
		line("Maximum request concurrency:", opts.MaxConcurrency)
	}
	if !math.IsInf(opts.RequestRate, 1) {
		line("Request rate configured (RPS):", opts.RequestRate)
	}
	line("Benchmark duration (s):", s.Duration)
	line("Total input tokens:", s.TotalInput)
	line("Total generated tokens:", s.TotalOutput)
	line("Request throughput (req/s):", s.RequestThroughput)
	if s.HasGoodput {
		line("Request goodput (req/s):", s.RequestGoodput)
	}
	line("Output token throughput (tok/s):", s.OutputThroughput)
	line("Total Token throughput (tok/s):", s.TotalTokenThroughput)
	section := func(st Stat, name, header string) {
		b.WriteString(center(header, '-') + "\n")
		line("Mean "+name+" (ms):", st.Mean)
		line("Median "+name+" (ms):", st.Median)
		for i, p := range s.Percentiles {
			line("P"+PercentileWord(p)+" "+name+" (ms):", st.Percentiles[i])
		}
	}
	for _, m := range []struct{ key, name, header string }{
		{"ttft", "TTFT", "Time to First Token"},
		{"tpot", "TPOT", "Time per Output Token (excl. 1st token)"},
		{"itl", "ITL", "Inter-token Latency"},
		{"e2el", "E2EL", "End-to-end Latency"},
	} {
		if slices.Contains(opts.Metrics, m.key) {
			section(s.Stats[m.key], m.name, m.header)
		}
	}
	if s.Joined > 0 || s.JoinFailed > 0 {
		b.WriteString(center("Client - Server Gap", '-') + "\n")
		line("Requests joined with the server span:", s.Joined)
		line("Server joins failed:", s.JoinFailed)
		section(s.TTFTGap, "TTFT gap", "TTFT: client - server")
		section(s.E2EGap, "E2EL gap", "E2EL: client - server")
	}
	b.WriteString(strings.Repeat("=", width) + "\n")
	_, err := io.WriteString(w, b.String())
	return err
}
