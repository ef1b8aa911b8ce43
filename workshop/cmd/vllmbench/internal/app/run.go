package app // import "github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmbench/internal/app"

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmbench/internal/arrival"
	"github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmbench/internal/clientspan"
	"github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmbench/internal/dataset"
	"github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmbench/internal/jaeger"
	"github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmbench/internal/metrics"
	"github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmbench/internal/record"
	"github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmbench/internal/result"
	"github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmbench/internal/sse"
	"github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmbench/internal/tokens"

	"github.com/otelcol-vllm/otelcol-vllm/workshop/internal/toolmain"
)

// Exit codes: the workshop's (toolmain), and 130 for an interrupted run.
const (
	ExitOK          = toolmain.ExitOK
	ExitFailed      = toolmain.ExitFailed // no request succeeded, or the result could not be written (the summary is printed first)
	ExitUsage       = toolmain.ExitUsage
	ExitInterrupted = 130
)

// Outcome is a finished run.
type Outcome struct {
	Records []record.Record // the sent requests, in send order
	Summary metrics.Summary
	// Interrupted says the run was stopped before every request was sent or finished.
	Interrupted bool
	Files       []string
	// Start is when the first request was due; request i was due at Start + its arrival offset.
	Start time.Time
}

// Main runs vllmbench with args and returns the exit code.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "sweep":
			return SweepMain(ctx, args[1:], stdout, stderr)
		case "aggregate":
			return AggregateMain(args[1:], stderr)
		case "report":
			return ReportMain(ctx, args[1:], stderr)
		}
	}
	opts, err := ParseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return ExitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "vllmbench: %v\n", err)
		return ExitUsage
	}
	out, err := Run(ctx, opts, stdout, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "vllmbench: %v\n", err)
		return ExitFailed
	}
	for _, f := range out.Files {
		fmt.Fprintf(stderr, "vllmbench: wrote %s\n", f)
	}
	switch {
	case out.Interrupted:
		return ExitInterrupted
	case out.Summary.Completed == 0:
		fmt.Fprintln(stderr, "vllmbench: no request succeeded")
		return ExitFailed
	}
	return ExitOK
}

// discoverModel asks GET /v1/models for the served model, as the benchmark does when --model is not given.
func discoverModel(ctx context.Context, baseURL string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(baseURL, "/")+"/v1/models", nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("--model not given and GET /v1/models failed: %w", err)
	}
	defer resp.Body.Close()
	var models struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("--model not given and GET /v1/models answered HTTP %d", resp.StatusCode)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&models); err != nil || len(models.Data) == 0 || models.Data[0].ID == "" {
		return "", errors.New("--model not given and GET /v1/models listed no model")
	}
	return models.Data[0].ID, nil
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// spanFlushTimeout bounds the flush of the client spans at the end of the run (the OTLP exporter's own
// timeout, OTEL_EXPORTER_OTLP_TIMEOUT, is 10 s per export by default).
const spanFlushTimeout = 30 * time.Second

// loadPrompts reads or builds the prompts; with a tokenizer their lengths are exact token counts.
func loadPrompts(o Options, tok *tokens.Tokenizer) ([]dataset.Prompt, error) {
	switch {
	case o.DatasetName == "custom":
		prompts, err := dataset.LoadJSONL(o.DatasetPath, o.NumPrompts)
		if err == nil && tok != nil {
			dataset.CountTokens(prompts, tok)
		}
		return prompts, err
	case tok != nil:
		return dataset.RandomTokens(o.NumPrompts, o.RandomInput, o.RandomOutput, o.Seed, tok)
	}
	return dataset.Random(o.NumPrompts, o.RandomInput, o.RandomOutput, o.Seed)
}

// Run sends the requests, joins them with Jaeger when asked, prints the summary on stdout and writes the
// result files. A request that fails is a record with an error, never an error of Run.
func Run(ctx context.Context, o Options, stdout, stderr io.Writer) (Outcome, error) {
	var out Outcome
	if o.Model == "" {
		m, err := discoverModel(ctx, o.BaseURL)
		if err != nil {
			return out, err
		}
		o.Model = m
	}
	var tok *tokens.Tokenizer
	if o.Tokenizer != "" {
		t, err := tokens.Load(o.Tokenizer)
		if err != nil {
			return out, fmt.Errorf("--tokenizer: %w", err)
		}
		tok = t
	}
	prompts, err := loadPrompts(o, tok)
	if err != nil {
		return out, fmt.Errorf("dataset: %w", err)
	}
	offsets, err := arrival.Schedule(len(prompts), o.RequestRate, o.Burstiness, o.Seed)
	if err != nil {
		return out, err
	}
	client, err := sse.New(o.BaseURL, o.Endpoint, o.Model, max(o.MaxConcurrency, 256))
	if err != nil {
		return out, err
	}
	defer client.Close()
	if tok != nil {
		client.CountTokensWith(tok.Count)
	}
	// Every request gets a client span, whose ids its traceparent carries; it is exported when
	// --otlp-endpoint or the OTEL_EXPORTER_OTLP_* environment names an endpoint.
	op := "text_completion"
	if client.Chat() {
		op = "chat"
	}
	spans, err := clientspan.New(ctx, clientspan.Config{Endpoint: o.OTLPEndpoint, Protocol: o.OTLPProtocol},
		clientspan.Target{Model: o.Model, Operation: op, URL: client.URL()})
	if err != nil {
		return out, err
	}
	client.TraceWith(spans, clientspan.Propagator)
	var bar *progress
	if !o.DisableTqdm && isTerminal(stderr) {
		bar = startProgress(stderr, len(prompts), 200*time.Millisecond)
	}

	recs := make([]record.Record, len(prompts))
	// Requests run under their own context so that Ctrl-C first only stops sending; in-flight requests get
	// --drain-timeout before they are cancelled.
	reqCtx, cancelRequests := context.WithCancel(context.Background())
	defer cancelRequests()
	var sem chan struct{}
	if o.MaxConcurrency > 0 {
		sem = make(chan struct{}, o.MaxConcurrency)
	}
	var wg sync.WaitGroup
	start := time.Now()
	out.Start = start
	var endMu sync.Mutex
	end := start
	timer := time.NewTimer(0)
	<-timer.C
send:
	for i := range prompts {
		if d := time.Until(start.Add(offsets[i])); d > 0 {
			timer.Reset(d)
			select {
			case <-timer.C:
			case <-ctx.Done():
				break send
			}
		}
		if ctx.Err() != nil {
			break
		}
		recs[i].Index = i
		recs[i].InputLen = prompts[i].InputLen
		wg.Add(1)
		go func(rec *record.Record, p dataset.Prompt) {
			defer wg.Done()
			if sem != nil {
				select {
				case sem <- struct{}{}:
				case <-ctx.Done():
					return // never sent
				}
				defer func() { <-sem }()
			}
			// The request carries its client span's context (W3C traceparent): the parent of vLLM's span.
			client.Do(reqCtx, p, rec)
			endMu.Lock()
			if t := rec.SendTime.Add(rec.Elapsed); t.After(end) {
				end = t
			}
			endMu.Unlock()
			if bar != nil {
				bar.finished(rec.Success)
			}
		}(&recs[i], prompts[i])
	}
	allDone := make(chan struct{})
	go func() { wg.Wait(); close(allDone) }()
	drained := true
	select {
	case <-allDone:
	case <-ctx.Done():
		select {
		case <-allDone:
		case <-time.After(o.DrainTimeout):
			drained = false
			cancelRequests()
			<-allDone
		}
	}
	bar.close()
	out.Interrupted = ctx.Err() != nil
	for i := range recs {
		if !recs[i].Sent {
			continue
		}
		if !drained && !recs[i].Success {
			recs[i].Error = "interrupted: " + recs[i].Error
		}
		out.Records = append(out.Records, recs[i])
	}
	duration := end.Sub(start).Seconds()
	if out.Interrupted {
		fmt.Fprintf(stderr, "vllmbench: interrupted: %d of %d requests sent\n", len(out.Records), len(prompts))
	}
	// Flush the client spans before the join: they are then on their way to the backend with the server's.
	flushCtx, cancelFlush := context.WithTimeout(context.Background(), spanFlushTimeout)
	st, err := spans.Shutdown(flushCtx)
	cancelFlush()
	if err != nil || st.Failed+st.Dropped > 0 {
		fmt.Fprintf(stderr, "vllmbench: client spans: %d exported, %d failed, %d dropped (%v)\n", st.Exported, st.Failed,
			st.Dropped, errors.Join(st.LastErr, err))
	}
	if o.JaegerURL != "" && !out.Interrupted {
		fmt.Fprintf(stderr, "vllmbench: joining with server spans from %s (waiting %s)\n", o.JaegerURL, o.JaegerWait)
		jc := jaeger.New(o.JaegerURL, 10*time.Second)
		jaeger.Join(ctx, jc, out.Records, jaeger.JoinConfig{Wait: o.JaegerWait, Timeout: o.JaegerTimeout, RetryInterval: o.JaegerRetry})
	}
	out.Summary = metrics.Compute(out.Records, duration, o.Goodput, o.Percentiles)
	if err := out.Summary.WriteText(stdout, metrics.PrintOptions{Metrics: o.Metrics, MaxConcurrency: o.MaxConcurrency, RequestRate: o.RequestRate}); err != nil {
		return out, err
	}
	// A sweep keeps no result of an interrupted run, so that resuming it runs the combination again.
	if o.SaveResult && !(out.Interrupted && o.discardInterrupted) {
		run := result.Run{
			Date: start, Backend: "openai", Model: o.Model, NumPrompts: len(prompts), RequestRate: o.RequestRate,
			Burstiness: o.Burstiness, MaxConcurrency: o.MaxConcurrency, Goodput: o.Goodput, Metadata: o.Metadata,
		}
		if o.DatasetName == "random" {
			run.RandomInputLen, run.RandomOutputLen = o.RandomInput, o.RandomOutput
		}
		if client.Chat() {
			run.Backend = "openai-chat"
		}
		name := o.ResultFilename
		if name == "" {
			name = result.DefaultFilename(run)
		}
		files, err := result.Save(o.ResultDir, name, result.Build(run, out.Summary, out.Records, o.SaveDetailed), out.Records, o.SaveDetailed)
		out.Files = files
		if err != nil {
			return out, fmt.Errorf("saving the result: %w", err)
		}
	}
	return out, nil
}
