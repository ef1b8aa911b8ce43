package vllmconnector // import "github.com/otelcol-vllm/otelcol-vllm/connector/vllmconnector"

import (
	"slices"

	"github.com/otelcol-vllm/otelcol-vllm/connector/vllmconnector/internal/histogram"

	"github.com/otelcol-vllm/otelcol-vllm/internal/vllmrequest"
)

// Metric names. GenAI semantic-convention names where one exists, vllm.* otherwise.
const (
	metricTTFT             = "gen_ai.server.time_to_first_token"
	metricTPOT             = "gen_ai.server.time_per_output_token"
	metricRequestDuration  = "gen_ai.server.request.duration"
	metricQueue            = "vllm.request.queue.duration"
	metricPrefill          = "vllm.request.prefill.duration"
	metricDecode           = "vllm.request.decode.duration"
	metricInference        = "vllm.request.inference.duration"
	metricScheduler        = "vllm.request.scheduler.duration"
	metricModelForward     = "vllm.request.model_forward.duration"
	metricModelExecute     = "vllm.request.model_execute.duration"
	metricDecodeThroughput = "vllm.request.decode.throughput"
	metricRequestTokens    = "vllm.request.tokens"
	metricTokens           = "vllm.tokens"
	metricCachedTokens     = "vllm.tokens.cache_read"
	metricRequests         = "vllm.requests"
	metricSLORequests      = "vllm.slo.requests"
)

// Data point attributes the connector sets.
const (
	attrTokenType    = "gen_ai.token.type"
	attrSLOObjective = "vllm.slo.objective"
	attrSLOMet       = "vllm.slo.met"
	attrOverflow     = "otel.metric.overflow"

	tokenTypeInput  = "input"
	tokenTypeOutput = "output"
)

// vLLM's newest default buckets (vllm/v1/metrics/loggers.py), so these histograms line up with vLLM's own.
var (
	ttftBuckets     = []float64{0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0}
	perTokenBuckets = []float64{0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0}
	requestBuckets  = []float64{0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0}
	// vLLM's token histograms use a 1-2-5 series up to max_model_len, which a collector cannot know: up to 1M.
	tokenBuckets = []float64{1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000, 100000, 200000, 500000, 1000000}
	// vLLM has no per-request decode throughput histogram; a 1-2-5 series from 1 to 10k tokens/s.
	throughputBuckets = []float64{1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000}
)

// The explicit bounds the GenAI semantic conventions recommend (histograms.preset: semconv). They start at
// 10 ms where vLLM's E2E list starts at 0.3 s, so fast requests (embeddings) are resolved. The vLLM phase
// histograms, which the conventions do not define, use the request-duration list; tokens use the
// conventions' token-usage list.
var (
	semconvTTFTBuckets     = []float64{0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0}
	semconvPerTokenBuckets = []float64{0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5}
	semconvRequestBuckets  = []float64{0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92}
	semconvTokenBuckets    = []float64{1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864}
)

// histogramID indexes the histograms every series keeps.
type histogramID uint8

const (
	histTTFT histogramID = iota
	histTPOT
	histRequestDuration
	histQueue
	histPrefill
	histDecode
	histInference
	histScheduler
	histModelForward
	histModelExecute
	histDecodeThroughput
	histPromptTokens
	histCompletionTokens
	numHistograms
)

// histogramDef describes one histogram metric. Prompt and completion tokens share the vllm.request.tokens metric
// and are told apart by gen_ai.token.type.
type histogramDef struct {
	name        string
	unit        string
	description string
	buckets     []float64 // vLLM's (histograms.preset: vllm)
	semconv     []float64 // the conventions' (histograms.preset: semconv)
	// latency is the record's latency this histogram observes, when it observes one.
	latency    vllmrequest.Latency
	hasLatency bool
	// objective's threshold is inserted into the bounds, when the SLO is configured.
	objective    vllmrequest.Objective
	hasObjective bool
	tokenType    string
}

var histogramDefs = [numHistograms]histogramDef{
	histTTFT: {name: metricTTFT, unit: "s", description: "Time to first token of vLLM requests (queue + prefill + frontend).",
		buckets: ttftBuckets, semconv: semconvTTFTBuckets, latency: vllmrequest.TimeToFirstToken, hasLatency: true, objective: vllmrequest.ObjectiveTTFT, hasObjective: true},
	histTPOT: {name: metricTPOT, unit: "s", description: "Mean time per output token after the first: decode / (output tokens - 1).",
		buckets: perTokenBuckets, semconv: semconvPerTokenBuckets, objective: vllmrequest.ObjectiveTPOT, hasObjective: true},
	histRequestDuration: {name: metricRequestDuration, unit: "s", description: "End-to-end duration of vLLM requests, from arrival to the last token.",
		buckets: requestBuckets, semconv: semconvRequestBuckets, latency: vllmrequest.EndToEnd, hasLatency: true, objective: vllmrequest.ObjectiveE2E, hasObjective: true},
	histQueue: {name: metricQueue, unit: "s", description: "Time vLLM requests waited in the scheduler queue.",
		buckets: requestBuckets, semconv: semconvRequestBuckets, latency: vllmrequest.Queue, hasLatency: true, objective: vllmrequest.ObjectiveQueue, hasObjective: true},
	histPrefill: {name: metricPrefill, unit: "s", description: "Prefill time of vLLM requests (derived as TTFT - queue on V0).",
		buckets: requestBuckets, semconv: semconvRequestBuckets, latency: vllmrequest.Prefill, hasLatency: true},
	histDecode: {name: metricDecode, unit: "s", description: "Decode time of vLLM requests (derived as E2E - TTFT on V0).",
		buckets: requestBuckets, semconv: semconvRequestBuckets, latency: vllmrequest.Decode, hasLatency: true},
	histInference: {name: metricInference, unit: "s", description: "Inference (prefill + decode) time of vLLM requests.",
		buckets: requestBuckets, semconv: semconvRequestBuckets, latency: vllmrequest.Inference, hasLatency: true},
	histScheduler: {name: metricScheduler, unit: "s", description: "Time spent in vLLM's scheduler (V0 only).",
		buckets: requestBuckets, semconv: semconvRequestBuckets, latency: vllmrequest.Scheduler, hasLatency: true},
	histModelForward: {name: metricModelForward, unit: "s", description: "Model forward time (V0 with --collect-detailed-traces model|all).",
		buckets: requestBuckets, semconv: semconvRequestBuckets, latency: vllmrequest.ModelForward, hasLatency: true},
	histModelExecute: {name: metricModelExecute, unit: "s", description: "Model execute time (V0 with --collect-detailed-traces worker|all).",
		buckets: requestBuckets, semconv: semconvRequestBuckets, latency: vllmrequest.ModelExecute, hasLatency: true},
	histDecodeThroughput: {name: metricDecodeThroughput, unit: "{token}/s", description: "Decode throughput of vLLM requests: (output tokens - 1) / decode time.",
		buckets: throughputBuckets, semconv: throughputBuckets},
	histPromptTokens: {name: metricRequestTokens, unit: "{token}", description: "Tokens per vLLM request, by gen_ai.token.type.",
		buckets: tokenBuckets, semconv: semconvTokenBuckets, tokenType: tokenTypeInput},
	histCompletionTokens: {name: metricRequestTokens, unit: "{token}", description: "Tokens per vLLM request, by gen_ai.token.type.",
		buckets: tokenBuckets, semconv: semconvTokenBuckets, tokenType: tokenTypeOutput},
}

// histogramByName finds the histogram a histograms.buckets key refers to.
func histogramByName(name string) (histogramID, bool) {
	for id, d := range histogramDefs {
		if d.name == name {
			return histogramID(id), true
		}
	}
	return 0, false
}

// histogramNames lists the names histograms.buckets accepts.
func histogramNames() []string {
	var names []string
	for _, d := range histogramDefs {
		if !slices.Contains(names, d.name) {
			names = append(names, d.name)
		}
	}
	return names
}

// indexedBounds indexes every histogram's bounds for the bucket search.
func indexedBounds(bounds [numHistograms][]float64) (out [numHistograms]*histogram.Bounds) {
	for id, b := range bounds {
		out[id] = histogram.NewBounds(b)
	}
	return out
}

// bucketBounds returns the explicit bounds of every histogram: the configured override or the default, with
// each configured SLO threshold inserted so that a bucket boundary falls exactly on it.
func bucketBounds(cfg *Config) [numHistograms][]float64 {
	var out [numHistograms][]float64
	for id, d := range histogramDefs {
		bounds := slices.Clone(d.buckets)
		if cfg.Histograms.Preset == PresetSemconv {
			bounds = slices.Clone(d.semconv)
		}
		if override, ok := cfg.Histograms.Buckets[d.name]; ok {
			bounds = slices.Clone(override)
		}
		if d.hasObjective {
			if threshold, ok := cfg.Request.SLO.Threshold(d.objective); ok {
				if i, found := slices.BinarySearch(bounds, threshold.Seconds()); !found {
					bounds = slices.Insert(bounds, i, threshold.Seconds())
				}
			}
		}
		out[id] = bounds
	}
	return out
}
