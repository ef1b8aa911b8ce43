package testkit

import (
	"bufio"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Telemetry is a collector's self-telemetry, read from its Prometheus /metrics page: each metric's value summed
// over its labels, by name without a _total suffix (Value accepts either form, whichever the collector uses).
type Telemetry map[string]float64

// Value is the metric's sum over its labels; 0 when the collector has not written it (yet).
func (m Telemetry) Value(name string) float64 { return m[strings.TrimSuffix(name, "_total")] }

// ScrapeTelemetry reads the self-telemetry page at url (http://host:port/metrics).
func ScrapeTelemetry(url string) (Telemetry, error) {
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", url, resp.Status)
	}
	out := Telemetry{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20) // label values can be long
	for sc.Scan() {
		if err := out.add(sc.Text()); err != nil {
			return nil, fmt.Errorf("%s: %w", url, err)
		}
	}
	return out, sc.Err()
}

// add adds one line of the text exposition format: `name{labels} value`, or `name value`. The collector writes
// no timestamps, so the value is the last field; label values may hold spaces, never before the first '{'.
func (m Telemetry) add(line string) error {
	if line == "" || line[0] == '#' {
		return nil
	}
	i := strings.LastIndexByte(line, ' ')
	if i < 0 {
		return fmt.Errorf("no value in %q", line)
	}
	v, err := strconv.ParseFloat(line[i+1:], 64)
	if err != nil {
		return fmt.Errorf("line %q: %w", line, err)
	}
	name := strings.TrimSpace(line[:i])
	if j := strings.IndexByte(name, '{'); j >= 0 {
		name = name[:j]
	}
	m[strings.TrimSuffix(name, "_total")] += v
	return nil
}

// TelemetryValue is one metric of the self-telemetry at url, summed over its labels (e.g.
// otelcol_receiver_accepted_spans, with or without _total).
func TelemetryValue(t testing.TB, url, metric string) float64 {
	t.Helper()
	m, err := ScrapeTelemetry(url)
	if err != nil {
		t.Fatalf("collector telemetry: %v", err)
	}
	return m.Value(metric)
}
