// Package workload is vllmgen's generation model: which vLLM version's span shape to forge (written by
// vllmrequesttest.WriteSpan, the one definition of it), the latency and token distributions of the traffic
// profiles, and the exact accounting of what was generated.
package workload // import "github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmgen/internal/workload"

import (
	"fmt"

	"github.com/otelcol-vllm/otelcol-vllm/internal/vllmrequest/vllmrequesttest"
)

// Shape selects which vLLM version's request span is reproduced.
type Shape int

const (
	// ShapeV1 is the V1 engine span of vLLM ≥ 0.16 (instrumentation scope vllm.tracing.otel, resource with
	// vllm.* attributes).
	ShapeV1 Shape = iota
	// ShapeV1LegacyScope is the V1 engine span of vLLM 0.10.2–0.15: the same span attributes as ShapeV1, scope
	// vllm.llm_engine and the plain SDK resource.
	ShapeV1LegacyScope
	// ShapeV0 is the V0 engine span of vLLM 0.7–0.10 (no gen_ai.request.best_of, no detailed traces).
	ShapeV0
	// ShapeV0Detailed is the V0 engine span of vLLM 0.5.4–0.6.x started with --collect-detailed-traces all:
	// gen_ai.request.best_of plus the model forward/execute times.
	ShapeV0Detailed
)

var shapeNames = [...]string{"v1", "v1-legacy-scope", "v0", "v0-detailed"}

// Shapes lists every shape in flag order.
func Shapes() []Shape { return []Shape{ShapeV1, ShapeV1LegacyScope, ShapeV0, ShapeV0Detailed} }

// ParseShape converts a --shape value.
func ParseShape(s string) (Shape, error) {
	for i, name := range shapeNames {
		if s == name {
			return Shape(i), nil
		}
	}
	return 0, fmt.Errorf("unknown shape %q (want v1, v1-legacy-scope, v0 or v0-detailed)", s)
}

func (s Shape) String() string {
	if s < 0 || int(s) >= len(shapeNames) {
		return fmt.Sprintf("Shape(%d)", int(s))
	}
	return shapeNames[s]
}

// IsV0 reports whether the shape is a V0 engine span (one span per request, n>1 folded into it).
func (s Shape) IsV0() bool { return s.Dialect().IsV0() }

// Dialect is the span writer's name for the shape.
func (s Shape) Dialect() vllmrequesttest.Dialect {
	switch s {
	case ShapeV1LegacyScope:
		return vllmrequesttest.DialectV1LegacyScope
	case ShapeV0:
		return vllmrequesttest.DialectV0
	case ShapeV0Detailed:
		return vllmrequesttest.DialectV0Detailed
	}
	return vllmrequesttest.DialectV1
}

// ScopeName is the instrumentation scope the span is emitted under (no scope version in any release).
func (s Shape) ScopeName() string { return s.Dialect().ScopeName() }
