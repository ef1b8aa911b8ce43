package serve

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmgen/internal/engine"
	"github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmgen/internal/otlpsend"
	"github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmgen/internal/vllmmetrics"
	"github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmgen/internal/workload"
	"github.com/otelcol-vllm/otelcol-vllm/workshop/testkit/otlpsink"
)

// Prompt lengths (in words) that make metricsTiming hang a request, so that a test can cut it at a known point.
const (
	wordsHangInPrefill   = 7 // the first token never comes
	wordsHangAfterFirst  = 5 // the second token never comes
	wordsHangInQueue     = 9 // the queue time never ends (the request holds a slot meanwhile)
	naturalOutputTokens  = 3
	metricsTestTPOT      = time.Millisecond
	metricsTestPrefill   = 2 * time.Millisecond
	metricsTestFrontend  = 200 * time.Microsecond
	metricsPollTimeout   = 10 * time.Second
	metricsPollInterval  = 5 * time.Millisecond
	metricsTestHangDelay = time.Hour
)

// metricsTiming ends every request after naturalOutputTokens (EOS) unless max_tokens or ignore_eos say
// otherwise, and hangs the prompt lengths above.
func metricsTiming(_ *rand.Rand, prompt, _ int64) workload.ServingTiming {
	t := workload.ServingTiming{Prefill: metricsTestPrefill, Frontend: metricsTestFrontend, TPOT: metricsTestTPOT, OutputTokens: naturalOutputTokens}
	switch prompt {
	case wordsHangInPrefill:
		t.Prefill = metricsTestHangDelay
	case wordsHangAfterFirst:
		t.TPOT = metricsTestHangDelay
	case wordsHangInQueue:
		t.Queue = metricsTestHangDelay
	}
	return t
}

// emuRequest is one request of a metrics test case.
type emuRequest struct {
	chat, stream, ignoreEOS bool
	words                   int
	maxTokens               int64
}

func (r emuRequest) path() string {
	if r.chat {
		return "/v1/chat/completions"
	}
	return "/v1/completions"
}

func (r emuRequest) body() string {
	prompt := strings.TrimSpace(strings.Repeat("w ", r.words))
	var b strings.Builder
	fmt.Fprintf(&b, `{"model":%q,"max_tokens":%d,"stream":%t,"ignore_eos":%t,`, testModel, r.maxTokens, r.stream, r.ignoreEOS)
	if r.chat {
		fmt.Fprintf(&b, `"messages":[{"role":"user","content":%q}]}`, prompt)
	} else {
		fmt.Fprintf(&b, `"prompt":%q}`, prompt)
	}
	return b.String()
}

type finishedCase struct {
	req        emuRequest
	wantReason string
	wantTokens int64
}

type cutPoint int

const (
	cutAfterFirstToken cutPoint = iota // the client reads the first chunk, then leaves
	cutInPrefill                       // the client leaves while the request runs, before its first token
	cutInQueue                         // the client leaves while the request waits for a slot or its queue time
)

type cutCase struct {
	req emuRequest
	at  cutPoint
}

func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "text/plain; version=0.0.4; charset=utf-8", resp.Header.Get("Content-Type"))
	parser := expfmt.NewTextParser(model.LegacyValidation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	require.NoError(t, err)
	return families
}

// only returns the single series of a metric of the one served model, checking its labels.
func only(t *testing.T, families map[string]*dto.MetricFamily, name string) *dto.Metric {
	t.Helper()
	f, ok := families[name]
	require.True(t, ok, "%s is served", name)
	require.Len(t, f.GetMetric(), 1, name)
	m := f.GetMetric()[0]
	labels := map[string]string{}
	for _, l := range m.GetLabel() {
		labels[l.GetName()] = l.GetValue()
	}
	assert.Equal(t, map[string]string{vllmmetrics.LabelModel: testModel, vllmmetrics.LabelEngine: "0"}, labels, name)
	return m
}

type gauges struct{ waiting, running, kvCacheUsage float64 }

func gaugesOf(t *testing.T, families map[string]*dto.MetricFamily) gauges {
	return gauges{
		waiting:      only(t, families, vllmmetrics.MetricWaiting).GetGauge().GetValue(),
		running:      only(t, families, vllmmetrics.MetricRunning).GetGauge().GetValue(),
		kvCacheUsage: only(t, families, vllmmetrics.MetricKVCacheUsage).GetGauge().GetValue(),
	}
}

func TestMetricsCountWhatWasServed(t *testing.T) {
	tests := []struct {
		name       string
		maxNumSeqs int
		finished   []finishedCase
		cut        []cutCase
		// while the cut requests hang: the running ones' prompt + output tokens
		wantHangingKVTokens int64
	}{
		{
			name:       "completions and chat, stop and length, one cut after its first token",
			maxNumSeqs: 4,
			finished: []finishedCase{
				{emuRequest{stream: true, words: 4, maxTokens: 5}, vllmmetrics.FinishStop, 3},
				{emuRequest{chat: true, stream: true, words: 2, maxTokens: 2}, vllmmetrics.FinishLength, 2},
				{emuRequest{stream: true, ignoreEOS: true, words: 1, maxTokens: 4}, vllmmetrics.FinishLength, 4},
				// the natural end falls on max_tokens: vLLM reports length
				{emuRequest{stream: true, words: 3, maxTokens: 3}, vllmmetrics.FinishLength, 3},
				{emuRequest{words: 6, maxTokens: 8}, vllmmetrics.FinishStop, 3},
			},
			cut:                 []cutCase{{emuRequest{stream: true, words: wordsHangAfterFirst, maxTokens: 10}, cutAfterFirstToken}},
			wantHangingKVTokens: wordsHangAfterFirst + naturalOutputTokens,
		},
		{
			name:       "cut before the first token, in prefill and in the queue",
			maxNumSeqs: 1,
			finished: []finishedCase{
				{emuRequest{stream: true, words: 2, maxTokens: 9}, vllmmetrics.FinishStop, 3},
				{emuRequest{chat: true, stream: true, ignoreEOS: true, words: 3, maxTokens: 6}, vllmmetrics.FinishLength, 6},
			},
			cut: []cutCase{
				{emuRequest{stream: true, words: wordsHangInPrefill, maxTokens: 2}, cutInPrefill},
				{emuRequest{stream: true, words: 1, maxTokens: 2}, cutInQueue},
			},
			wantHangingKVTokens: wordsHangInPrefill + 2,
		},
		{
			name:       "cut during its queue time, with a slot free",
			maxNumSeqs: 2,
			finished:   []finishedCase{{emuRequest{stream: true, words: 1, maxTokens: 3}, vllmmetrics.FinishLength, 3}},
			cut:        []cutCase{{emuRequest{stream: true, words: wordsHangInQueue, maxTokens: 4}, cutInQueue}},
		},
		{
			name:       "a chat cut after its first token while another waits",
			maxNumSeqs: 1,
			finished:   []finishedCase{{emuRequest{chat: true, words: 2, maxTokens: 1}, vllmmetrics.FinishLength, 1}},
			cut: []cutCase{
				{emuRequest{chat: true, stream: true, ignoreEOS: true, words: wordsHangAfterFirst, maxTokens: 50}, cutAfterFirstToken},
				{emuRequest{chat: true, stream: true, words: 4, maxTokens: 5}, cutInQueue},
			},
			wantHangingKVTokens: wordsHangAfterFirst + 50,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sink := &otlpsink.Sink{}
			exp, err := otlpsend.NewGRPC(otlpsink.StartGRPC(t, sink))
			require.NoError(t, err)
			spans := NewSpanExporter(exp, SpanExporterConfig{Model: testModel, ExportDelay: 10 * time.Millisecond})
			hs, got := startServer(t, func(c *Config) {
				c.MaxNumSeqs, c.Timing, c.Spans = tt.maxNumSeqs, metricsTiming, spans
			})
			assert.Equal(t, gauges{}, gaugesOf(t, scrape(t, hs.URL)), "idle before any request")

			for _, f := range tt.finished {
				resp := post(t, hs.URL+f.req.path(), f.req.body(), nil)
				require.Equal(t, http.StatusOK, resp.StatusCode)
				if f.req.stream {
					evs := events(t, resp.Body)
					require.NotEmpty(t, evs)
					assert.Equal(t, "[DONE]", evs[len(evs)-1])
				} else {
					_, err := bufio.NewReader(resp.Body).ReadString('\n')
					require.NoError(t, err)
				}
			}

			// Start the cut requests one by one, each at its cut point before the next.
			var cancels []context.CancelFunc
			blocked := make(chan error, len(tt.cut))
			var wantRunning, wantWaiting float64
			for _, c := range tt.cut {
				ctx, cancel := context.WithCancel(context.Background())
				cancels = append(cancels, cancel)
				req, err := http.NewRequestWithContext(ctx, http.MethodPost, hs.URL+c.req.path(), strings.NewReader(c.req.body()))
				require.NoError(t, err)
				switch c.at {
				case cutAfterFirstToken:
					resp, err := http.DefaultClient.Do(req)
					require.NoError(t, err)
					t.Cleanup(func() { resp.Body.Close() })
					line, err := bufio.NewReader(resp.Body).ReadString('\n')
					require.NoError(t, err)
					require.True(t, strings.HasPrefix(line, "data: "), line)
					wantRunning++
				case cutInPrefill, cutInQueue:
					go func() {
						resp, err := http.DefaultClient.Do(req)
						if err == nil {
							resp.Body.Close()
							err = errors.New("a response came for a request that never produces a token")
						}
						blocked <- err
					}()
					if c.at == cutInPrefill {
						wantRunning++
					} else {
						wantWaiting++
					}
					want := gauges{waiting: wantWaiting, running: wantRunning}
					require.Eventually(t, func() bool {
						g := gaugesOf(t, scrape(t, hs.URL))
						return g.running == want.running && g.waiting == want.waiting
					}, metricsPollTimeout, metricsPollInterval, "the request reaches its cut point")
				}
			}
			assert.Equal(t, gauges{waiting: wantWaiting, running: wantRunning, kvCacheUsage: float64(tt.wantHangingKVTokens) / engine.KVCacheTokens},
				gaugesOf(t, scrape(t, hs.URL)), "while the cut requests hang")
			// Queued requests leave first, and are seen to leave, so that no slot frees up for them meanwhile.
			queued := wantWaiting
			for i, c := range tt.cut {
				if c.at == cutInQueue {
					cancels[i]()
					queued--
					require.Eventually(t, func() bool { return gaugesOf(t, scrape(t, hs.URL)).waiting == queued },
						metricsPollTimeout, metricsPollInterval, "the server sees the queued client leave")
				}
			}
			for _, cancel := range cancels {
				cancel()
			}
			total := len(tt.finished) + len(tt.cut)
			require.Eventually(t, func() bool { return len(got.list()) == total }, metricsPollTimeout, metricsPollInterval)
			// each request that blocked in Do ends with the client's cancellation
			for range countCut(tt.cut, cutInPrefill) + countCut(tt.cut, cutInQueue) {
				assert.ErrorIs(t, <-blocked, context.Canceled)
			}
			families := scrape(t, hs.URL)

			// What vLLM would count, from the case's requests and the measured outcomes.
			wantSuccess := map[string]float64{}
			for _, reason := range vllmmetrics.FinishReasons {
				wantSuccess[reason] = 0
			}
			var wantPrompt, wantGeneration, wantTTFTCount, wantE2ECount float64
			for _, f := range tt.finished {
				wantSuccess[f.wantReason]++
				wantPrompt += float64(f.req.words)
				wantGeneration += float64(f.wantTokens)
				wantTTFTCount++
				wantE2ECount++
			}
			for _, c := range tt.cut {
				if c.at == cutAfterFirstToken {
					// the prefill and the one token the client saw are counted, and the TTFT
					wantPrompt += float64(c.req.words)
					wantGeneration++
					wantTTFTCount++
				}
			}
			var wantTTFTSum, wantE2ESum float64
			var finishedIDs []string
			byReason := map[string]int{}
			for _, o := range got.list() {
				byReason[o.FinishReason]++
				wantTTFTSum += o.TTFT
				if o.FinishReason != vllmmetrics.FinishAbort {
					wantE2ESum += o.E2E
					finishedIDs = append(finishedIDs, o.RequestID)
					assert.Empty(t, o.Error)
				} else {
					assert.Contains(t, o.Error, "client disconnected")
				}
			}
			assert.Equal(t, len(tt.cut), byReason[vllmmetrics.FinishAbort], "outcomes of the cut requests")

			gotSuccess := map[string]float64{}
			for _, m := range families[vllmmetrics.MetricRequestSuccess].GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() == vllmmetrics.LabelFinishedReason {
						gotSuccess[l.GetValue()] = m.GetCounter().GetValue()
					}
				}
			}
			assert.Equal(t, wantSuccess, gotSuccess, "request_success by finished_reason: the cut requests are not in it")
			assert.Equal(t, wantPrompt, only(t, families, vllmmetrics.MetricPromptTokens).GetCounter().GetValue(), "prompt tokens")
			assert.Equal(t, wantGeneration, only(t, families, vllmmetrics.MetricGenerationTokens).GetCounter().GetValue(), "generation tokens")
			e2e := only(t, families, vllmmetrics.MetricE2ELatency).GetHistogram()
			assert.EqualValues(t, wantE2ECount, e2e.GetSampleCount(), "e2e count: finished requests only")
			assert.InDelta(t, wantE2ESum, e2e.GetSampleSum(), 1e-9, "e2e sum = the measured e2e latencies")
			ttft := only(t, families, vllmmetrics.MetricTTFT).GetHistogram()
			assert.EqualValues(t, wantTTFTCount, ttft.GetSampleCount(), "ttft count: finished requests and cut ones that had their first token")
			assert.InDelta(t, wantTTFTSum, ttft.GetSampleSum(), 1e-9, "ttft sum = the measured TTFTs")
			assert.Equal(t, gauges{}, gaugesOf(t, families), "idle again")

			// The same requests are the spans: one per finished request, none for a cut one.
			require.NoError(t, spans.Close())
			var spanIDs []string
			td := sink.Traces()
			for _, rs := range td.ResourceSpans().All() {
				for _, ss := range rs.ScopeSpans().All() {
					for _, sp := range ss.Spans().All() {
						id, _ := sp.Attributes().Get("gen_ai.request.id")
						spanIDs = append(spanIDs, id.Str())
					}
				}
			}
			assert.ElementsMatch(t, finishedIDs, spanIDs)
		})
	}
}

func countCut(cuts []cutCase, at cutPoint) int {
	n := 0
	for _, c := range cuts {
		if c.at == at {
			n++
		}
	}
	return n
}

var errClientGone = errors.New("broken pipe")

// failingWriter fails every Write from the failFrom-th on (1-based), as a connection the client closed.
type failingWriter struct {
	header   http.Header
	writes   int
	failFrom int
}

func (w *failingWriter) Header() http.Header { return w.header }
func (w *failingWriter) WriteHeader(int)     {}
func (w *failingWriter) Write(p []byte) (int, error) {
	w.writes++
	if w.writes >= w.failFrom {
		return 0, errClientGone
	}
	return len(p), nil
}

// TestClientGoneAtTheEnd pins where a request finishes: when its last token is processed, before the last
// chunk goes out. A client that leaves before that aborts it (its processed tokens and TTFT count, nothing
// else, and no span); one that leaves after it leaves a finished request with its span.
func TestClientGoneAtTheEnd(t *testing.T) {
	const (
		streamBody = `{"model":"test/model","prompt":"a b","max_tokens":3,"ignore_eos":true,"stream":true}`
		usageBody  = `{"model":"test/model","prompt":"a b","max_tokens":3,"ignore_eos":true,"stream":true,"stream_options":{"include_usage":true}}`
		chatBody   = `{"model":"test/model","messages":[{"role":"user","content":"a b"}],"max_tokens":3,"ignore_eos":true,"stream":true}`
		plainBody  = `{"model":"test/model","prompt":"a b","max_tokens":3,"ignore_eos":true}`
	)
	aborted := func(tokens int64) vllmmetrics.Counts {
		return vllmmetrics.Counts{
			RequestSuccess: map[string]int64{"stop": 0, "length": 0, "abort": 0, "error": 0, "repetition": 0},
			Aborted:        1, PromptTokens: 2, GenerationTokens: tokens, TTFTCount: 1,
		}
	}
	finished := vllmmetrics.Counts{
		RequestSuccess: map[string]int64{"stop": 0, "length": 1, "abort": 0, "error": 0, "repetition": 0},
		Finished:       1, PromptTokens: 2, GenerationTokens: 3, TTFTCount: 1, E2ECount: 1,
	}
	tests := []struct {
		name       string
		path, body string
		failFrom   int // writes: one per token chunk (chat: the role chunk first), the usage chunk, [DONE]
		want       vllmmetrics.Counts
		wantSpans  int
		wantReason string
	}{
		{"first token chunk", "/v1/completions", streamBody, 1, aborted(1), 0, vllmmetrics.FinishAbort},
		{"second token chunk", "/v1/completions", streamBody, 2, aborted(2), 0, vllmmetrics.FinishAbort},
		{"chat role chunk", "/v1/chat/completions", chatBody, 1, aborted(1), 0, vllmmetrics.FinishAbort},
		{"last token chunk", "/v1/completions", streamBody, 3, finished, 1, vllmmetrics.FinishLength},
		{"[DONE]", "/v1/completions", streamBody, 4, finished, 1, vllmmetrics.FinishLength},
		{"usage chunk", "/v1/completions", usageBody, 4, finished, 1, vllmmetrics.FinishLength},
		{"non-streaming body", "/v1/completions", plainBody, 1, finished, 1, vllmmetrics.FinishLength},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sink := &otlpsink.Sink{}
			exp, err := otlpsend.NewGRPC(otlpsink.StartGRPC(t, sink))
			require.NoError(t, err)
			spans := NewSpanExporter(exp, SpanExporterConfig{Model: testModel, ExportDelay: 10 * time.Millisecond})
			got := &outcomes{}
			srv, err := New(Config{Model: testModel, MaxNumSeqs: 1, Timing: fixedTiming, Seed: 1, Spans: spans, OnFinish: got.add})
			require.NoError(t, err)

			w := &failingWriter{header: http.Header{}, failFrom: tt.failFrom}
			srv.ServeHTTP(w, httptest.NewRequest(http.MethodPost, tt.path, strings.NewReader(tt.body)))

			c, err := srv.Engine().Metrics().Counts(testModel)
			require.NoError(t, err)
			assert.Equal(t, tt.want, c)
			outs := got.list()
			require.Len(t, outs, 1)
			assert.Equal(t, tt.wantReason, outs[0].FinishReason)
			assert.Equal(t, tt.want.GenerationTokens, outs[0].CompletionTokens)
			if tt.wantReason == vllmmetrics.FinishAbort {
				assert.Contains(t, outs[0].Error, errClientGone.Error())
				assert.Empty(t, outs[0].WriteError)
			} else {
				assert.Empty(t, outs[0].Error)
				assert.Equal(t, errClientGone.Error(), outs[0].WriteError)
			}
			require.NoError(t, spans.Close())
			assert.Equal(t, tt.wantSpans, sink.SpanCount())
		})
	}
}
