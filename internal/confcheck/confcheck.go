// Package confcheck rejects configuration values that the collector's decoder would silently reinterpret: a
// bare number given for a duration (decoded as nanoseconds, so `ttft: 200` would mean 200ns), a fractional
// number given for an integer (10.5 decoded as 10) and an integer beyond the range of its field (decoded as a
// wrapped value). Components call Check from their Unmarshal, before decoding, with the raw configuration.
package confcheck // import "github.com/otelcol-vllm/otelcol-vllm/internal/confcheck"

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/collector/confmap"
)

var durationType = reflect.TypeFor[time.Duration]()

// Unmarshal checks conf against cfg's type, then decodes it into cfg: the body of a component config's
// confmap.Unmarshaler.
func Unmarshal(conf *confmap.Conf, cfg any) error {
	if err := Check(conf.ToStringMap(), cfg); err != nil {
		return err
	}
	return conf.Unmarshal(cfg)
}

// Check walks the raw configuration alongside the mapstructure tags of cfg's type (a pointer to a struct) and
// returns one error per value the decoder would reinterpret, each naming its key.
func Check(raw map[string]any, cfg any) error {
	t := reflect.TypeOf(cfg)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return fmt.Errorf("confcheck: %v is not a struct", t)
	}
	var errs []error
	checkStruct(raw, t, "", &errs)
	return errors.Join(errs...)
}

func checkStruct(raw map[string]any, t reflect.Type, path string, errs *[]error) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(f.Tag.Get("mapstructure"), ",")
		if name == "-" {
			continue
		}
		if strings.Contains(opts, "squash") {
			checkStruct(raw, indirect(f.Type), path, errs)
			continue
		}
		if name == "" {
			name = f.Name
		}
		if v, ok := raw[name]; ok && v != nil {
			checkValue(v, f.Type, join(path, name), errs)
		}
	}
}

func checkValue(v any, t reflect.Type, path string, errs *[]error) {
	t = indirect(t)
	if t == durationType {
		if isNumber(v) {
			*errs = append(*errs, fmt.Errorf("%s: %s has no unit; write a duration with its unit, such as 200ms, 5s or 1m", path, formatNumber(v)))
		}
		return
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if err := checkInteger(v, t); err != nil {
			*errs = append(*errs, fmt.Errorf("%s: %w", path, err))
		}
	case reflect.Struct:
		if m, ok := v.(map[string]any); ok {
			checkStruct(m, t, path, errs)
		}
	case reflect.Slice, reflect.Array:
		if list, ok := v.([]any); ok {
			for i, e := range list {
				checkValue(e, t.Elem(), fmt.Sprintf("%s[%d]", path, i), errs)
			}
		}
	case reflect.Map:
		if m, ok := v.(map[string]any); ok {
			for k, e := range m {
				checkValue(e, t.Elem(), join(path, k), errs)
			}
		}
	}
}

// checkInteger accepts a value that the integer type t holds exactly.
func checkInteger(v any, t reflect.Type) error {
	var (
		f        float64
		exact    bool // f is not needed: the value is a Go integer
		i        int64
		u        uint64
		unsigned bool
	)
	switch n := v.(type) {
	case int:
		i, exact = int64(n), true
	case int64:
		i, exact = n, true
	case int32:
		i, exact = int64(n), true
	case uint64:
		u, exact, unsigned = n, true, true
	case uint:
		u, exact, unsigned = uint64(n), true, true
	case float64:
		f = n
	case float32:
		f = float64(n)
	default:
		return nil // a string or another type: the decoder reports it itself
	}
	if !exact {
		if math.IsNaN(f) || math.IsInf(f, 0) || f != math.Trunc(f) {
			return fmt.Errorf("%s is not an integer", formatNumber(v))
		}
		// A whole float64 in range converts exactly; beyond ±2^63 it is out of every integer type's range.
		if f >= -(1<<63) && f < 1<<63 {
			i, exact = int64(f), true
		} else if f >= 0 && f < 1<<64 {
			u, exact, unsigned = uint64(f), true, true
		} else {
			return fmt.Errorf("%s is out of range", formatNumber(v))
		}
	}
	bits := t.Bits()
	switch t.Kind() {
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if !unsigned && i < 0 {
			return fmt.Errorf("%s must not be negative", formatNumber(v))
		}
		if !unsigned {
			u = uint64(i)
		}
		if bits < 64 && u >= 1<<bits {
			return fmt.Errorf("%s is out of range (at most %d)", formatNumber(v), uint64(1)<<bits-1)
		}
	default:
		limit := int64(math.MaxInt64)
		if bits < 64 {
			limit = 1<<(bits-1) - 1
		}
		if unsigned && u > uint64(limit) || !unsigned && (i > limit || i < -limit-1) {
			return fmt.Errorf("%s is out of range (at most %d)", formatNumber(v), limit)
		}
	}
	return nil
}

func isNumber(v any) bool {
	switch v.(type) {
	case int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64, float32, float64:
		return true
	}
	return false
}

// formatNumber writes a number as close to how it was written as the parsed value allows: YAML reads an integer
// too large for 64 bits as a float, whose shortest form is printed.
func formatNumber(v any) string {
	switch n := v.(type) {
	case float64:
		return strconv.FormatFloat(n, 'g', -1, 64)
	case float32:
		return strconv.FormatFloat(float64(n), 'g', -1, 32)
	}
	return fmt.Sprint(v)
}

func indirect(t reflect.Type) reflect.Type {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}
