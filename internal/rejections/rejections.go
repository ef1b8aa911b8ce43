// Package rejections turns the derivation core's field rejections into internal-telemetry attributes, shared by
// the vllm processor and connector so both report them under the same `field` and `reason` attributes.
package rejections // import "github.com/otelcol-vllm/otelcol-vllm/internal/rejections"

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/otelcol-vllm/otelcol-vllm/internal/vllmrequest"
)

// Attribute keys of the fields_rejected telemetry counter.
const (
	FieldKey  = "field"
	ReasonKey = "reason"
)

// options holds one precomputed option slice per (field, reason): passing a prebuilt slice to the variadic Add
// is what keeps counting a rejection free of allocations.
var options = func() (o [vllmrequest.NumFields][vllmrequest.NumReasons][]metric.AddOption) {
	for f := range o {
		for r := range o[f] {
			o[f][r] = []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(
				attribute.String(FieldKey, vllmrequest.Field(f).String()),
				attribute.String(ReasonKey, vllmrequest.Reason(r).String()),
			))}
		}
	}
	return o
}()

// Count adds every rejection of rec to counter, by field and reason.
func Count(ctx context.Context, counter metric.Int64Counter, rec *vllmrequest.Record) {
	for _, r := range rec.Rejections {
		if r.Field < vllmrequest.NumFields && r.Reason < vllmrequest.NumReasons {
			counter.Add(ctx, 1, options[r.Field][r.Reason]...)
		}
	}
}
