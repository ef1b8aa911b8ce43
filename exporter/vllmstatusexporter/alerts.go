package vllmstatusexporter // import "github.com/otelcol-vllm/otelcol-vllm/exporter/vllmstatusexporter"

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Alert rule names (the "rule" of an alert in the JSON API).
const (
	ruleQueue     = "queue"
	ruleTTFTP95   = "ttft_p95"
	ruleErrorRate = "error_rate"
	ruleGoodput   = "goodput"
)

type alertKey struct{ rule, model string }

type alertEntry struct {
	pendingSince time.Time
	firing       bool
	value        float64
	threshold    float64
}

// alertState remembers, per rule and model, since when its condition holds. A condition that holds for the
// rule's `for` fires; one that stops holding (or whose figure disappears) clears at once, as in Prometheus.
type alertState struct {
	entries map[alertKey]*alertEntry
}

func newAlertState() *alertState { return &alertState{entries: map[alertKey]*alertEntry{}} }

type ruleDef struct {
	name     string
	severity string
	below    bool // fires below the threshold (goodput), else above
	rule     func(*AlertsConfig) AlertRule
	value    func(Model) *float64
	message  func(model string, v, threshold float64) string
}

var rules = []ruleDef{
	{
		name: ruleQueue, severity: "warning",
		rule:  func(c *AlertsConfig) AlertRule { return c.Queue },
		value: func(m Model) *float64 { return m.Waiting },
		message: func(model string, v, th float64) string {
			return fmt.Sprintf("%s: %.0f requests waiting (more than %g)", model, v, th)
		},
	},
	{
		name: ruleTTFTP95, severity: "warning",
		rule: func(c *AlertsConfig) AlertRule { return c.TTFTP95 },
		value: func(m Model) *float64 {
			if m.TTFT == nil {
				return nil
			}
			return &m.TTFT.P95
		},
		message: func(model string, v, th float64) string {
			return fmt.Sprintf("%s: TTFT p95 %.3gs (above %gs)", model, v, th)
		},
	},
	{
		name: ruleErrorRate, severity: "critical",
		rule:  func(c *AlertsConfig) AlertRule { return c.ErrorRate },
		value: func(m Model) *float64 { return m.Errors.Ratio },
		message: func(model string, v, th float64) string {
			return fmt.Sprintf("%s: %.1f%% of requests failed (more than %g%%)", model, 100*v, 100*th)
		},
	},
	{
		name: ruleGoodput, severity: "warning", below: true,
		rule:  func(c *AlertsConfig) AlertRule { return c.Goodput },
		value: func(m Model) *float64 { return m.GoodputRatio },
		message: func(model string, v, th float64) string {
			return fmt.Sprintf("%s: goodput %.1f%% (below the %g%% target)", model, 100*v, 100*th)
		},
	},
}

// evaluate updates the alert state from a status computed over the alert window at now.
func (s *store) evaluate(st Status, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	holds := map[alertKey]float64{}
	for _, m := range st.Models {
		for _, r := range rules {
			cfg := r.rule(&s.cfg.Alerts)
			if !cfg.Enabled {
				continue
			}
			v := r.value(m)
			if v == nil {
				continue
			}
			if (r.below && *v < cfg.Threshold) || (!r.below && *v > cfg.Threshold) {
				holds[alertKey{r.name, m.Model}] = *v
			}
		}
	}
	a := s.alerts
	for k := range a.entries {
		if _, ok := holds[k]; !ok {
			delete(a.entries, k)
		}
	}
	for k, v := range holds {
		e, ok := a.entries[k]
		if !ok {
			e = &alertEntry{pendingSince: now}
			a.entries[k] = e
		}
		cfg := ruleByName(k.rule).rule(&s.cfg.Alerts)
		e.value, e.threshold = v, cfg.Threshold
		e.firing = now.Sub(e.pendingSince) >= cfg.For
	}
}

func ruleByName(name string) ruleDef {
	for _, r := range rules {
		if r.name == name {
			return r
		}
	}
	panic("unknown alert rule " + name)
}

// firing lists the firing alerts, by rule then model.
func (a *alertState) firing() []Alert {
	out := []Alert{}
	for k, e := range a.entries {
		if !e.firing {
			continue
		}
		r := ruleByName(k.rule)
		out = append(out, Alert{
			Rule: k.rule, Model: k.model, Severity: r.severity, Value: finite(e.value), Threshold: e.threshold,
			Since: e.pendingSince.UTC(), Message: r.message(k.model, e.value, e.threshold),
		})
	}
	slices.SortFunc(out, func(x, y Alert) int {
		if c := strings.Compare(x.Rule, y.Rule); c != 0 {
			return c
		}
		return strings.Compare(x.Model, y.Model)
	})
	return out
}
