package vllmconnector // import "github.com/otelcol-vllm/otelcol-vllm/connector/vllmconnector"

import (
	"hash/maphash"
	"math/bits"

	"go.opentelemetry.io/collector/pdata/pcommon"
)

// duplicates remembers the (trace id, span id) of the request spans counted last, so that a span delivered twice
// counts once: an OTLP client that timed out on a request the collector had processed sends it again. It is a
// bounded window, not a history: at least `window` and at most 2 × `window` of the most recent distinct request
// spans are remembered, as 64-bit fingerprints in two generations of a fixed-size open-addressing table. The
// current generation takes new spans; when it holds `window`, it becomes the previous one and the older is
// cleared. The two generations are interleaved (slot i of both share a cache line), so a lookup is one hash and,
// mostly, one cache line. Nothing grows and nothing is allocated per span.
//
// The fingerprint is a seeded hash of the 24 id bytes (hash/maphash, a random seed per connector), so a client
// cannot aim collisions at other clients' spans, and two distinct spans share one with probability about
// 2^-64 × (spans remembered): never, in practice. It is owned by the connector and used under its lock.
type duplicates struct {
	seed   maphash.Seed
	window int
	// slots[2i+g] is slot i of generation g; 0 marks an empty slot. Each generation is at most half full.
	slots []uint64
	mask  uint64
	cur   uint64 // the current generation: 0 or 1
	held  int    // fingerprints in the current generation
}

// newDuplicates returns the window of the last window request spans, nil (no deduplication) for 0.
func newDuplicates(window int) *duplicates {
	if window <= 0 {
		return nil
	}
	n := 1 << bits.Len(uint(2*window-1)) // slots per generation, at least twice the window
	return &duplicates{seed: maphash.MakeSeed(), window: window, slots: make([]uint64, 2*n), mask: uint64(n - 1)}
}

// seen reports whether a span with these ids was counted within the window, and remembers them otherwise. A
// span without a span id cannot be told apart from another one: it is never a duplicate.
func (d *duplicates) seen(traceID pcommon.TraceID, spanID pcommon.SpanID) bool {
	return d.seenFingerprint(d.fingerprint(traceID, spanID))
}

// fingerprint is the seeded hash of a span's ids, never 0; 0 for a span without a span id.
func (d *duplicates) fingerprint(traceID pcommon.TraceID, spanID pcommon.SpanID) uint64 {
	if spanID.IsEmpty() {
		return 0
	}
	var key [24]byte
	copy(key[:16], traceID[:])
	copy(key[16:], spanID[:])
	fp := maphash.Bytes(d.seed, key[:])
	if fp == 0 {
		fp = 1
	}
	return fp
}

// prefetch reads the table's cache lines where the given fingerprints start, and returns what it read (for the
// caller to keep, so that the reads are not optimised away). A lookup is otherwise a cache miss into a table of
// MiBs, most of what the window costs per span; these reads are independent of each other, so the processor
// overlaps their misses, and seenFingerprint then finds the lines in cache.
//
// A lookup probes from its slot on until an empty one in each generation: about two slots in a half-full table,
// so it runs into the next cache line (4 slots of both generations) about a third of the time. That line is
// read too, else those lookups would each wait for memory.
func (d *duplicates) prefetch(fps []uint64) uint64 {
	var x uint64
	for _, fp := range fps {
		i := fp & d.mask
		next := (i | (slotsPerLine - 1)) + 1 // the first slot of the next line
		x += d.slots[2*i] + d.slots[2*(next&d.mask)]
	}
	return x
}

// slotsPerLine is how many slots of both generations share a 64-byte cache line.
const slotsPerLine = 4

// seenFingerprint is seen for a span's fingerprint; 0, a span without a span id, is never a duplicate.
func (d *duplicates) seenFingerprint(fp uint64) bool {
	if fp == 0 {
		return false
	}
	// linear probing in both generations at once; each ends at its first empty slot
	cur, prev := d.cur, 1-d.cur
	insert := -1
	for i, prevDone := fp&d.mask, false; insert < 0 || !prevDone; i = (i + 1) & d.mask {
		if insert < 0 {
			switch d.slots[2*i+cur] {
			case fp:
				return true
			case 0:
				insert = int(2*i + cur)
			}
		}
		if !prevDone {
			switch d.slots[2*i+prev] {
			case fp:
				return true
			case 0:
				prevDone = true
			}
		}
	}
	d.slots[insert] = fp
	d.held++
	if d.held == d.window {
		// the previous generation is forgotten; the current one becomes the previous
		for i := prev; i < uint64(len(d.slots)); i += 2 {
			d.slots[i] = 0
		}
		d.cur, d.held = prev, 0
	}
	return false
}
