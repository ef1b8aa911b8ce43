package testkit

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// selfTelemetry is the shape of the collector's /metrics page.
const selfTelemetry = `# HELP otelcol_receiver_accepted_spans_total Number of spans successfully pushed into the pipeline.
# TYPE otelcol_receiver_accepted_spans_total counter
otelcol_receiver_accepted_spans_total{receiver="otlp",service_instance_id="a b",transport="grpc"} 120
otelcol_receiver_accepted_spans_total{receiver="otlp",service_instance_id="a b",transport="http"} 30
# TYPE otelcol_exporter_queue_size gauge
otelcol_exporter_queue_size{exporter="otlp_http/metrics"} 2
otelcol_exporter_queue_size{exporter="prometheus_remote_write"} 1
otelcol_process_uptime 12.5
otelcol_exporter_send_failed_metric_points_total{exporter="otlp"} 0
otelcol_processor_batch_batch_send_size_bucket{le="+Inf"} 7
`

func TestScrapeTelemetry(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte(selfTelemetry))
	}))
	defer srv.Close()
	m, err := ScrapeTelemetry(srv.URL + "/metrics")
	require.NoError(t, err)
	for _, tt := range []struct {
		metric string
		want   float64
	}{
		{"otelcol_receiver_accepted_spans", 150},
		{"otelcol_receiver_accepted_spans_total", 150},
		{"otelcol_exporter_queue_size", 3},
		{"otelcol_process_uptime", 12.5},
		{"otelcol_exporter_send_failed_metric_points", 0},
		{"otelcol_processor_batch_batch_send_size_bucket", 7},
		{"otelcol_not_written", 0},
	} {
		assert.Equal(t, tt.want, m.Value(tt.metric), tt.metric)
		assert.Equal(t, tt.want, TelemetryValue(t, srv.URL+"/metrics", tt.metric), tt.metric)
	}
}

func TestScrapeTelemetryRefusesGarbage(t *testing.T) {
	for _, tt := range []struct {
		name, page string
		status     int
		wantErr    string
	}{
		{name: "no value", page: "otelcol_x\n", status: http.StatusOK, wantErr: "no value"},
		{name: "not a number", page: "otelcol_x{a=\"b\"} many\n", status: http.StatusOK, wantErr: "many"},
		{name: "not found", status: http.StatusNotFound, wantErr: "404"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				w.WriteHeader(tt.status)
				_, _ = w.Write([]byte(tt.page))
			}))
			defer srv.Close()
			_, err := ScrapeTelemetry(srv.URL)
			assert.ErrorContains(t, err, tt.wantErr)
		})
	}
}
