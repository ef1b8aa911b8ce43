package vllmrequest

import (
	"math"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
)

// FuzzDerive feeds arbitrary attribute values of every type to the derivation core: it must never panic, and
// every value it keeps must be finite, non-negative and within max_latency.
func FuzzDerive(f *testing.F) {
	f.Add(0.2463, 3.1874, 0.0421, 0.1738, 2.9102, int64(1187), int64(256), "chatcmpl-x", uint8(0))
	f.Add(0.0897, 1.6422, 0.0153, math.NaN(), math.NaN(), int64(42), int64(211), "cmpl-y", uint8(1))
	f.Add(0.3, 2.0, -5321.5, 5321.6, 1.5, int64(80), int64(61), "0_chatcmpl-z", uint8(2))
	f.Add(math.Inf(1), math.Inf(-1), math.NaN(), math.Copysign(0, -1), 1e308, int64(-1), int64(math.MaxInt64), "", uint8(3))
	f.Add(0.07, 0.07, 0.004, 0.05, 0.0, int64(300), int64(1), "embd-1", uint8(4))
	f.Add(0.07, 0.07, 0.004, 0.05, 5e-324, int64(300), int64(1<<31), "cmpl-tiny-decode", uint8(0))
	f.Add(0.5, 0.5, 0.01, 0.4, 0.0, int64(30), int64(0), "pooling-1", uint8(0))
	f.Add(0.15, 4.9, 0.09, 0.05, 2.0, int64(64), int64(41), "resp_1", uint8(0))
	d := NewDeriver(NewDefaultConfig())
	maxLatency := NewDefaultConfig().MaxLatency.Seconds()
	// seed 003's objectives, all four set, so that every verdict is checked
	slo := SLOConfig{TTFT: dur(200 * time.Millisecond), TPOT: dur(50 * time.Millisecond), E2E: dur(5 * time.Second), Queue: dur(100 * time.Millisecond)}
	f.Fuzz(func(t *testing.T, ttft, e2e, queue, prefill, decode float64, prompt, completion int64, id string, typeMask uint8) {
		s := span(nil)
		attrs := s.Attributes()
		put := func(key string, v float64, bit uint8) {
			switch (typeMask >> bit) & 3 {
			case 0:
				attrs.PutDouble(key, v)
			case 1:
				attrs.PutInt(key, int64(v))
			case 2:
				attrs.PutStr(key, id)
			case 3:
				// absent
			}
		}
		put(AttrTimeToFirstToken, ttft, 0)
		put(AttrEndToEnd, e2e, 2)
		put(AttrQueue, queue, 4)
		put(AttrPrefill, prefill, 6)
		attrs.PutDouble(AttrDecode, decode)
		attrs.PutInt(AttrPromptTokens, prompt)
		if typeMask&1 == 1 {
			attrs.PutDouble(AttrCompletionTokens, float64(completion))
		} else {
			attrs.PutInt(AttrCompletionTokens, completion)
		}
		attrs.PutStr(AttrRequestID, id)
		var rec Record
		if !d.Derive(s, resourceOf(pcommon.NewMap()), &rec) {
			t.Fatal("a span with a gen_ai.latency.* attribute must be recognised")
		}
		for l := Latency(0); l < NumLatencies; l++ {
			if v, ok := rec.Latency(l); ok && (math.IsNaN(v) || v < 0 || v > maxLatency*2) {
				t.Fatalf("%s kept invalid value %v", l, v)
			}
		}
		tpot, hasTPOT := rec.TimePerOutputToken()
		if hasTPOT && (math.IsNaN(tpot) || tpot < 0) {
			t.Fatalf("invalid TPOT %v", tpot)
		}
		if throughput, ok := rec.DecodeThroughput(); ok && (math.IsNaN(throughput) || math.IsInf(throughput, 0) || throughput <= 0) {
			t.Fatalf("invalid decode throughput %v", throughput)
		}
		if p, ok := rec.Prompt(); ok && (p < 0 || p > MaxTokens) {
			t.Fatalf("invalid prompt tokens %d", p)
		}
		if c, ok := rec.Completion(); ok && (c < 0 || c > MaxTokens || rec.NonGenerative) {
			t.Fatalf("invalid completion tokens %d (non-generative: %v)", c, rec.NonGenerative)
		}
		if hasTPOT {
			if c, _ := rec.Completion(); c < 2 {
				t.Fatalf("TPOT %v with %d output tokens", tpot, c)
			}
		}
		if rec.Operation == "" || rec.Model == "" || rec.Provider == "" {
			t.Fatalf("labels must never be empty: %+v", rec)
		}
		// the goodput verdict agrees with the objectives': met exactly when nothing is violated
		verdict := slo.EvaluateSLO(&rec)
		violations := verdict.Violations(nil)
		if verdict.AllMet != (len(violations) == 0) {
			t.Fatalf("AllMet %v with violations %v", verdict.AllMet, violations)
		}
		for _, o := range Objectives() {
			v, ok := rec.objectiveValue(o)
			threshold, _ := slo.Threshold(o)
			want := NotEvaluated
			if ok {
				want = Violated
				if v <= threshold.Seconds() {
					want = Met
				}
			}
			if verdict.Verdicts[o] != want {
				t.Fatalf("%s: verdict %v for value %v (known %v), threshold %v", o, verdict.Verdicts[o], v, ok, threshold)
			}
		}
	})
}
