package vllmconnector // import "github.com/otelcol-vllm/otelcol-vllm/connector/vllmconnector"

import (
	"encoding/binary"
	"math"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/otelcol-vllm/otelcol-vllm/internal/vllmrequest"
)

// attributeKind names, in internal telemetry, the attribute that was truncated or dropped.
type attributeKind uint8

const (
	kindModel attributeKind = iota
	kindProvider
	kindOperation
	kindDimension
	kindResource
	kindErrorType
	numAttributeKinds
)

var attributeKindNames = [numAttributeKinds]string{"model", "provider", "operation", "dimension", "resource", "error_type"}

func (k attributeKind) String() string { return attributeKindNames[k] }

// attributeCounts counts, per kind, the attribute values truncated or dropped while one batch is keyed; the
// connector adds them to its telemetry after releasing its lock.
type attributeCounts struct {
	truncated [numAttributeKinds]int64
	dropped   [numAttributeKinds]int64
}

// keyer encodes series and resource identities. Every part is length-prefixed and typed, so no two different
// attribute sets share a key, whatever bytes their values contain. It bounds what a key (and so a series)
// holds: values longer than maxLen are truncated, non-scalar values dropped.
type keyer struct {
	maxLen int
	// keepResource is the resource allow-list; empty keeps all (up to maxKeptResourceAttributes).
	keepResource []string
	counts       attributeCounts
	sortBuf      []string
}

// truncate cuts s to at most maxLen bytes, counting the cut.
func (k *keyer) truncate(s string, kind attributeKind) string {
	if len(s) <= k.maxLen {
		return s
	}
	k.counts.truncated[kind]++
	return truncateUTF8(s, k.maxLen)
}

// truncateUTF8 cuts s to at most n bytes without splitting a UTF-8 sequence.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// keep copies a value that a series holds on to: a truncated string still points into the span's (possibly
// huge) value, which must not stay reachable.
func keep(s string) string { return strings.Clone(s) }

// isScalar says whether v may be part of a series: maps, slices and bytes can be arbitrarily large or deep and
// have no label form, and an empty value carries nothing.
func isScalar(v pcommon.Value) bool {
	switch v.Type() {
	case pcommon.ValueTypeStr, pcommon.ValueTypeInt, pcommon.ValueTypeDouble, pcommon.ValueTypeBool:
		return true
	}
	return false
}

func appendString(buf []byte, s string) []byte {
	buf = binary.AppendUvarint(buf, uint64(len(s)))
	return append(buf, s...)
}

// appendScalarString appends the string form of a scalar value, the same as pcommon.Value.AsString, without
// allocating, truncated to maxLen.
func (k *keyer) appendScalarString(buf []byte, v pcommon.Value, kind attributeKind) []byte {
	if v.Type() == pcommon.ValueTypeStr {
		return appendString(buf, k.truncate(v.Str(), kind))
	}
	// The other scalars are at most a few dozen bytes: written after a one-byte length placeholder.
	at := len(buf)
	buf = append(buf, 0)
	switch v.Type() {
	case pcommon.ValueTypeInt:
		buf = strconv.AppendInt(buf, v.Int(), 10)
	case pcommon.ValueTypeBool:
		buf = strconv.AppendBool(buf, v.Bool())
	case pcommon.ValueTypeDouble:
		buf = appendDouble(buf, v.Double())
	}
	buf[at] = byte(len(buf) - at - 1)
	return buf
}

// appendDouble writes f as pcommon.Value.AsString does (ES6 number formatting).
func appendDouble(buf []byte, f float64) []byte {
	switch {
	case math.IsNaN(f):
		return append(buf, "NaN"...)
	case math.IsInf(f, 1):
		return append(buf, "Infinity"...)
	case math.IsInf(f, -1):
		return append(buf, "-Infinity"...)
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	start := len(buf)
	buf = strconv.AppendFloat(buf, f, format, -1, 64)
	if format == 'e' {
		// e-09 → e-9, as AsString writes it
		if n := len(buf); n-start >= 4 && buf[n-4] == 'e' && buf[n-3] == '-' && buf[n-2] == '0' {
			buf[n-2] = buf[n-1]
			buf = buf[:n-1]
		}
	}
	return buf
}

// seriesKey encodes the record's provider, operation, models and error type, and the dimensions of its span.
func (k *keyer) seriesKey(buf []byte, rec *vllmrequest.Record, span ptrace.Span, dims []Dimension) []byte {
	buf = appendString(buf, k.truncate(rec.Provider, kindProvider))
	buf = appendString(buf, k.truncate(rec.Operation, kindOperation))
	buf = appendString(buf, k.truncate(rec.Model, kindModel))
	// the response model and the error type are absent on most requests: '-' is distinct from any value
	for i, part := range [...]struct {
		value string
		kind  attributeKind
	}{{rec.ResponseModel, kindModel}, {rec.ErrorType, kindErrorType}} {
		switch {
		case part.value == "":
			buf = append(buf, '-')
		case i == 0 && part.value == rec.Model:
			// the request model was read from gen_ai.response.model: one value, cut and counted once above
			buf = append(buf, 'v')
			buf = appendString(buf, truncateUTF8(part.value, k.maxLen))
		default:
			buf = append(buf, 'v')
			buf = appendString(buf, k.truncate(part.value, part.kind))
		}
	}
	for i := range dims {
		d := &dims[i]
		if v, ok := d.spanValue(span, &k.counts); ok {
			buf = append(buf, 'v')
			buf = k.appendScalarString(buf, v, kindDimension)
		} else if d.Default != nil {
			buf = append(buf, 'v')
			buf = appendString(buf, k.truncate(*d.Default, kindDimension))
		} else {
			buf = append(buf, '-') // absent: distinct from any value
		}
	}
	return buf
}

// spanValue is the dimension's scalar attribute on span; a non-scalar one is dropped and counted. Dimensions
// become labels, which have no type, so a value is keyed and exported in its string form: Int(5) and Str("5")
// are deliberately one series. An empty string is absent (the default applies, if any): Prometheus drops an
// empty label, so the two would be two series here and one there, each overwriting the other.
func (d *Dimension) spanValue(span ptrace.Span, counts *attributeCounts) (pcommon.Value, bool) {
	v, ok := span.Attributes().Get(d.Name)
	if !ok || v.Type() == pcommon.ValueTypeStr && v.Str() == "" {
		return v, false
	}
	if !isScalar(v) {
		counts.dropped[kindDimension]++
		return v, false
	}
	return v, true
}

// rangeResource calls fn for every resource attribute the connector keeps, in a stable order: the allow-list's,
// or key order when all are kept. Non-scalar values, and keys longer than max_attribute_length when all are kept,
// are dropped and counted.
func (k *keyer) rangeResource(attrs pcommon.Map, fn func(key string, v pcommon.Value)) {
	use := func(key string, v pcommon.Value, keyFromInput bool) {
		if v.Type() == pcommon.ValueTypeStr && v.Str() == "" {
			return // absent, as for a dimension: an empty label is no label in Prometheus
		}
		if !isScalar(v) || keyFromInput && len(key) > k.maxLen {
			k.counts.dropped[kindResource]++
			return
		}
		fn(key, v)
	}
	if len(k.keepResource) > 0 {
		for _, key := range k.keepResource {
			if v, ok := attrs.Get(key); ok {
				use(key, v, false)
			}
		}
		return
	}
	keys := k.sortBuf[:0]
	attrs.Range(func(key string, _ pcommon.Value) bool {
		keys = append(keys, key)
		return true
	})
	sort.Strings(keys)
	if len(keys) > maxKeptResourceAttributes {
		k.counts.dropped[kindResource] += int64(len(keys) - maxKeptResourceAttributes)
		keys = keys[:maxKeptResourceAttributes]
	}
	for _, key := range keys {
		v, _ := attrs.Get(key)
		use(key, v, true)
	}
	k.sortBuf = keys[:0]
}

// resourceKey encodes the kept attributes of a resource with their types: a resource keeps its attribute
// types on export, so Int(5) and Str("5") are two resources.
func (k *keyer) resourceKey(buf []byte, attrs pcommon.Map) []byte {
	k.rangeResource(attrs, func(key string, v pcommon.Value) {
		buf = appendString(buf, key)
		buf = append(buf, byte(v.Type()))
		buf = k.appendScalarString(buf, v, kindResource)
	})
	return buf
}

// putDimensions writes the dimensions of a new series onto its attributes, as seriesKey encoded them.
func (k *keyer) putDimensions(span ptrace.Span, dims []Dimension, to pcommon.Map) {
	saved := k.counts
	defer func() { k.counts = saved }()
	var scratch [64]byte
	for i := range dims {
		d := &dims[i]
		if v, ok := d.spanValue(span, &k.counts); ok {
			if v.Type() == pcommon.ValueTypeStr {
				to.PutStr(d.Name, keep(k.truncate(v.Str(), kindDimension)))
			} else {
				b := k.appendScalarString(scratch[:0], v, kindDimension)
				to.PutStr(d.Name, string(b[1:])) // after the one-byte length
			}
		} else if d.Default != nil {
			to.PutStr(d.Name, k.truncate(*d.Default, kindDimension))
		}
	}
}

// copyResource copies the kept attributes of a resource, truncated as resourceKey encoded them. resourceKey has
// counted what was truncated or dropped already.
func (k *keyer) copyResource(attrs, to pcommon.Map) {
	saved := k.counts
	defer func() { k.counts = saved }()
	k.rangeResource(attrs, func(key string, v pcommon.Value) {
		if v.Type() == pcommon.ValueTypeStr {
			to.PutStr(keep(key), keep(k.truncate(v.Str(), kindResource)))
			return
		}
		v.CopyTo(to.PutEmpty(keep(key)))
	})
}
