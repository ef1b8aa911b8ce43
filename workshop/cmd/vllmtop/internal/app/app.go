// Package app is vllmtop's command line: the flags, the --once snapshot and the full-screen view.
package app // import "github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmtop/internal/app"

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"

	"github.com/otelcol-vllm/otelcol-vllm/exporter/vllmstatusexporter"

	"github.com/otelcol-vllm/otelcol-vllm/workshop/internal/toolmain"
)

// Exit codes: the workshop's (toolmain).
const (
	ExitOK     = toolmain.ExitOK
	ExitFailed = toolmain.ExitFailed // the status API could not be read (--once), or the terminal failed
	ExitUsage  = toolmain.ExitUsage
)

// Main runs vllmtop with args and returns the exit code. Cancelling ctx (SIGINT or SIGTERM in main) ends
// the full-screen view as `q` does: a requested stop, exit code 0.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return ExitOK
	}
	if err != nil {
		fmt.Fprintln(stderr, "vllmtop:", err)
		return ExitUsage
	}
	if err := run(ctx, o, stdout); err != nil {
		fmt.Fprintln(stderr, "vllmtop:", err)
		return ExitFailed
	}
	return ExitOK
}

type options struct {
	url      string
	window   string
	interval time.Duration
	once     bool
}

// parseFlags parses args (without the program name); -h returns flag.ErrHelp.
func parseFlags(args []string, stderr io.Writer) (options, error) {
	fs := flag.NewFlagSet("vllmtop", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	fs.StringVar(&o.url, "url", envOr("VLLMTOP_URL", "http://127.0.0.1:8899"), "base URL of the collector's vllm_status exporter (env VLLMTOP_URL)")
	fs.StringVar(&o.window, "window", "", "window of rates and percentiles, one of the exporter's windows (e.g. 1m, 5m, 15m); empty: its default")
	fs.DurationVar(&o.interval, "interval", 2*time.Second, "refresh interval")
	fs.BoolVar(&o.once, "once", false, "print one plain-text snapshot and exit")
	if err := fs.Parse(args); err != nil {
		return options{}, err
	}
	if fs.NArg() > 0 {
		return options{}, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if o.interval < 100*time.Millisecond {
		return options{}, errors.New("--interval must be at least 100ms")
	}
	return o, nil
}

// run shows the status once (--once) or until `q` or ctx's end.
func run(ctx context.Context, o options, stdout io.Writer) error {
	c := &client{base: strings.TrimRight(o.url, "/"), http: &http.Client{Timeout: 5 * time.Second}}
	if o.once {
		st, err := c.fetch(ctx, o.window)
		if err != nil {
			return err
		}
		_, err = io.WriteString(stdout, render(st, c.base, 0, plainStyles()))
		return err
	}
	// main owns the signals: their end of ctx stops the program, which then restores the terminal.
	p := tea.NewProgram(newModel(ctx, c, o), tea.WithAltScreen(), tea.WithContext(ctx), tea.WithoutSignalHandler(),
		tea.WithOutput(stdout))
	_, err := p.Run()
	if errors.Is(err, tea.ErrProgramKilled) && ctx.Err() != nil {
		return nil
	}
	return err
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

type client struct {
	base string
	http *http.Client
}

func (c *client) fetch(ctx context.Context, window string) (vllmstatusexporter.Status, error) {
	var st vllmstatusexporter.Status
	u := c.base + "/api/v1/metrics"
	if window != "" {
		u += "?window=" + url.QueryEscape(window)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return st, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return st, fmt.Errorf("%s: %s: %s", u, resp.Status, strings.TrimSpace(string(body)))
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(&st); err != nil {
		return st, fmt.Errorf("%s: %w", u, err)
	}
	if st.SchemaVersion != vllmstatusexporter.SchemaVersion {
		return st, fmt.Errorf("%s: schema_version %d, this vllmtop reads %d", u, st.SchemaVersion, vllmstatusexporter.SchemaVersion)
	}
	return st, nil
}

// ---- full-screen view ----

type statusMsg struct {
	st  vllmstatusexporter.Status
	err error
}

type tickMsg struct{}

type model struct {
	ctx    context.Context
	c      *client
	o      options
	st     vllmstatusexporter.Status
	err    error
	loaded bool
	width  int
	height int
}

func newModel(ctx context.Context, c *client, o options) model { return model{ctx: ctx, c: c, o: o} }

func (m model) fetchCmd() tea.Cmd {
	window, ctx := m.o.window, m.ctx
	return func() tea.Msg {
		st, err := m.c.fetch(ctx, window)
		return statusMsg{st: st, err: err}
	}
}

func (m model) tickCmd() tea.Cmd {
	return tea.Tick(m.o.interval, func(time.Time) tea.Msg { return tickMsg{} })
}

func (m model) Init() tea.Cmd { return m.fetchCmd() }

func (m model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.KeyMsg:
		switch msg.String() {
		case "q", "ctrl+c", "esc":
			return m, tea.Quit
		case "r":
			return m, m.fetchCmd()
		case "1":
			m.o.window = "1m"
			return m, m.fetchCmd()
		case "5":
			m.o.window = "5m"
			return m, m.fetchCmd()
		case "f":
			m.o.window = "15m"
			return m, m.fetchCmd()
		}
	case tea.WindowSizeMsg:
		m.width, m.height = msg.Width, msg.Height
	case statusMsg:
		m.err = msg.err
		if msg.err == nil {
			m.st, m.loaded = msg.st, true
		}
		return m, m.tickCmd()
	case tickMsg:
		return m, m.fetchCmd()
	}
	return m, nil
}

func (m model) View() string {
	s := colorStyles()
	var b strings.Builder
	if m.loaded {
		b.WriteString(render(m.st, m.c.base, m.width, s))
	} else if m.err == nil {
		b.WriteString("connecting to " + m.c.base + " …\n")
	}
	if m.err != nil {
		b.WriteString(s.alert.Render("error: "+m.err.Error()) + "\n")
	}
	b.WriteString(s.dim.Render("q quit · r refresh · 1/5/f window 1m/5m/15m · every " + m.o.interval.String()))
	return b.String()
}

// ---- rendering, shared by both modes ----

type styles struct {
	title, head, alert, dim lipgloss.Style
}

func plainStyles() styles {
	return styles{title: lipgloss.NewStyle(), head: lipgloss.NewStyle(), alert: lipgloss.NewStyle(), dim: lipgloss.NewStyle()}
}

func colorStyles() styles {
	return styles{
		title: lipgloss.NewStyle().Bold(true),
		head:  lipgloss.NewStyle().Bold(true).Foreground(lipgloss.Color("12")),
		alert: lipgloss.NewStyle().Bold(true).Foreground(lipgloss.Color("9")),
		dim:   lipgloss.NewStyle().Faint(true),
	}
}

// render writes the status as text: a header, the alerts, a model table and a GPU table. Every string from the
// API is stripped of control characters (a model name comes from a span and could hold escape sequences).
func render(st vllmstatusexporter.Status, base string, width int, s styles) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s  %s  window %s  at %s\n", s.title.Render("vllmtop"), clean(base),
		(time.Duration(st.WindowSeconds) * time.Second).String(), st.Time.Format("15:04:05Z"))
	if len(st.Alerts) == 0 {
		b.WriteString("alerts: none firing\n")
	}
	for _, a := range st.Alerts {
		b.WriteString(s.alert.Render(fmt.Sprintf("ALERT %s %s: %s", a.Severity, a.Rule, clean(a.Message))) + "\n")
	}
	b.WriteString("\n")
	rows := [][]string{{"MODEL", "REQS", "REQ/S", "RUN", "WAIT", "TTFT p50", "TTFT p95", "TPOT p50", "E2E p95", "GOODPUT", "TOK/S OUT", "ERRORS"}}
	for _, m := range st.Models {
		row := []string{clean(m.Model), num(m.RequestsTotal), num(m.RequestsPerSecond), optNum(m.Running), optNum(m.Waiting)}
		row = append(row, lat(m.TTFT, func(l *vllmstatusexporter.Latency) float64 { return l.P50 }),
			lat(m.TTFT, func(l *vllmstatusexporter.Latency) float64 { return l.P95 }),
			lat(m.TPOT, func(l *vllmstatusexporter.Latency) float64 { return l.P50 }),
			lat(m.E2E, func(l *vllmstatusexporter.Latency) float64 { return l.P95 }),
			pct(m.GoodputRatio), num(m.Tokens.OutputPerSecond), num(m.Errors.Total))
		rows = append(rows, row)
	}
	if len(st.Models) == 0 {
		rows = append(rows, []string{"(no request seen yet)"})
	}
	table(&b, rows, width, s, 0)
	b.WriteString("\n")
	gpus := [][]string{{"GPU", "NAME", "UTIL", "MEMORY", "SM", "POWER", "TEMP", "POD"}}
	for _, g := range st.GPUs {
		idx := "-"
		if g.Index != nil {
			idx = fmt.Sprint(*g.Index)
		}
		mem := "-"
		if g.MemoryUsedBytes != nil && g.MemoryTotalBytes != nil {
			mem = fmt.Sprintf("%.1f/%.1f GiB", *g.MemoryUsedBytes/(1<<30), *g.MemoryTotalBytes/(1<<30))
		}
		unit := func(v *float64, u string) string {
			if v == nil {
				return "-"
			}
			return fmt.Sprintf("%.0f %s", *v, u)
		}
		gpus = append(gpus, []string{idx, clean(g.Name), pct(g.Utilization), mem, pct(g.SMActivity), unit(g.PowerWatts, "W"), unit(g.TemperatureCelsius, "C"), clean(g.Pod)})
	}
	if len(st.GPUs) == 0 {
		gpus = append(gpus, []string{"(no GPU reported)"})
	}
	table(&b, gpus, width, s, 1, 7)
	return b.String()
}

// table aligns rows in columns: text columns (the first, and left) to the left, numbers to the right; the first
// row is the header. Lines are cut to width when width > 0.
func table(b *strings.Builder, rows [][]string, width int, s styles, left ...int) {
	widths := map[int]int{}
	for _, r := range rows {
		if len(r) == 1 {
			continue
		}
		for i, c := range r {
			widths[i] = max(widths[i], len([]rune(c)))
		}
	}
	for n, r := range rows {
		var line strings.Builder
		for i, c := range r {
			if i > 0 {
				line.WriteString("  ")
			}
			pad := widths[i] - len([]rune(c))
			if i == 0 || len(r) == 1 || slices.Contains(left, i) {
				line.WriteString(c + strings.Repeat(" ", max(pad, 0)))
			} else {
				line.WriteString(strings.Repeat(" ", max(pad, 0)) + c)
			}
		}
		text := strings.TrimRight(line.String(), " ")
		if width > 0 && len([]rune(text)) > width {
			text = string([]rune(text)[:width])
		}
		if n == 0 {
			text = s.head.Render(text)
		}
		b.WriteString(text + "\n")
	}
}

func clean(v string) string {
	v = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return -1
		}
		return r
	}, v)
	if r := []rune(v); len(r) > 48 {
		v = string(r[:47]) + "…"
	}
	return v
}

func num(v float64) string {
	switch {
	case v == float64(int64(v)):
		return fmt.Sprint(int64(v))
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

func optNum(v *float64) string {
	if v == nil {
		return "-"
	}
	return num(*v)
}

func pct(v *float64) string {
	if v == nil {
		return "-"
	}
	return fmt.Sprintf("%.1f%%", *v*100)
}

func lat(l *vllmstatusexporter.Latency, f func(*vllmstatusexporter.Latency) float64) string {
	if l == nil {
		return "-"
	}
	v := f(l)
	if v < 1 {
		return fmt.Sprintf("%.0fms", v*1000)
	}
	return fmt.Sprintf("%.2fs", v)
}
