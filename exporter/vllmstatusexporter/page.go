package vllmstatusexporter // import "github.com/otelcol-vllm/otelcol-vllm/exporter/vllmstatusexporter"

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// web/ holds the page template and its stylesheet; both are compiled into the binary.
//
//go:embed web
var webFS embed.FS

var pageTemplate = template.Must(template.New("page.html.tmpl").Funcs(template.FuncMap{
	"num":      formatNum,
	"sec":      formatSeconds,
	"pct":      formatPercent,
	"bytes":    formatBytes,
	"opt":      optNum,
	"join":     strings.Join,
	"barWidth": barWidth,
	"ts":       func(t time.Time) string { return t.UTC().Format("15:04:05") },
}).ParseFS(webFS, "web/page.html.tmpl"))

// pageData is what the template renders: the same Status the API answers, plus the charts.
type pageData struct {
	Status
	Windows        []windowLink
	RefreshSeconds int
	Charts         []chart
}

type windowLink struct {
	Label, Query string
	Current      bool
}

// chart is one time series drawn as an SVG polyline (viewBox 0 0 chartW chartH).
type chart struct {
	Title, Last, Max string
	Points           string
}

const (
	chartW = 300
	chartH = 60
)

func (e *statusExporter) servePage(w http.ResponseWriter, r *http.Request) {
	window, ok := e.window(r)
	if !ok {
		http.Error(w, "window must be one of the configured windows", http.StatusBadRequest)
		return
	}
	st := e.store.view(e.now(), window)
	data := pageData{Status: st, RefreshSeconds: max(2, int(e.cfg.SnapshotInterval.Seconds()))}
	for _, wd := range e.cfg.Windows {
		label := strings.TrimSuffix(strings.TrimSuffix(wd.String(), "0s"), "m0")
		data.Windows = append(data.Windows, windowLink{Label: label, Query: wd.String(), Current: wd == window})
	}
	data.Charts = charts(st.Series)
	var buf bytes.Buffer
	if err := pageTemplate.Execute(&buf, data); err != nil {
		http.Error(w, "rendering the page failed", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = w.Write(buf.Bytes())
}

func charts(series []SeriesStep) []chart {
	pick := []struct {
		title string
		get   func(SeriesStep) *float64
		f     func(float64) string
	}{
		{"TTFT p95", func(s SeriesStep) *float64 { return s.TTFTP95 }, formatSeconds},
		{"E2E p95", func(s SeriesStep) *float64 { return s.E2EP95 }, formatSeconds},
		{"requests/s", func(s SeriesStep) *float64 { v := s.RequestsPerSecond; return &v }, formatNum},
		{"goodput", func(s SeriesStep) *float64 { return s.GoodputRatio }, formatPercent},
	}
	out := make([]chart, 0, len(pick))
	for _, p := range pick {
		c := chart{Title: p.title, Last: "–", Max: "–"}
		peak := 0.0
		for _, s := range series {
			if v := p.get(s); v != nil {
				peak = max(peak, *v)
				c.Last = p.f(*v)
			}
		}
		if peak > 0 {
			c.Max = p.f(peak)
		}
		var pts []string
		for i, s := range series {
			v := p.get(s)
			if v == nil {
				continue
			}
			x := 0.0
			if len(series) > 1 {
				x = float64(i) * chartW / float64(len(series)-1)
			}
			y := float64(chartH - 2)
			if peak > 0 {
				y = chartH - 2 - (*v/peak)*(chartH-4)
			}
			pts = append(pts, strconv.FormatFloat(x, 'f', 1, 64)+","+strconv.FormatFloat(y, 'f', 1, 64))
		}
		c.Points = strings.Join(pts, " ")
		out = append(out, c)
	}
	return out
}

func formatNum(v float64) string {
	switch {
	case math.IsNaN(v) || math.IsInf(v, 0):
		return "–"
	case v == math.Trunc(v) && math.Abs(v) < 1e15:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case math.Abs(v) >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case math.Abs(v) >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	return strconv.FormatFloat(v, 'f', 2, 64)
}

// formatSeconds prints a latency in ms under a second, else in s.
func formatSeconds(v float64) string {
	if v < 1 {
		return strconv.FormatFloat(v*1000, 'f', 0, 64) + " ms"
	}
	return strconv.FormatFloat(v, 'f', 2, 64) + " s"
}

func formatPercent(v float64) string { return strconv.FormatFloat(v*100, 'f', 1, 64) + "%" }

func formatBytes(v float64) string {
	return fmt.Sprintf("%.1f GiB", v/(1<<30))
}

// optNum formats an optional figure with f, or "–".
func optNum(v *float64, f string) string {
	if v == nil {
		return "–"
	}
	switch f {
	case "sec":
		return formatSeconds(*v)
	case "pct":
		return formatPercent(*v)
	case "bytes":
		return formatBytes(*v)
	}
	return formatNum(*v)
}

// barWidth is a 0..1 ratio as a percentage width for a CSS-free SVG bar.
func barWidth(v *float64) string {
	if v == nil || *v <= 0 {
		return "0"
	}
	return strconv.FormatFloat(min(*v, 1)*100, 'f', 1, 64)
}
