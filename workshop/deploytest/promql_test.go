package deploytest

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// promqlKeywords are identifiers that are not metric names when not followed by "(": aggregation modifiers,
// set and vector-matching operators, offset and the number literals.
var promqlKeywords = map[string]bool{
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
	"and": true, "or": true, "unless": true, "offset": true, "bool": true, "inf": true, "nan": true,
	"atan2": true,
	// Aggregation operators may be followed by a by/without clause before their "(".
	"sum": true, "avg": true, "min": true, "max": true, "count": true, "stddev": true, "stdvar": true,
	"topk": true, "bottomk": true, "quantile": true, "count_values": true, "group": true,
}

// groupingClause matches a label list after a grouping keyword; its label names are not metric names.
var groupingClause = regexp.MustCompile(`\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)`)

// metricNames returns the metric names a PromQL expression reads, in order of first appearance. It is a
// small lexer, not a parser: it drops string literals, label matchers, range and subquery brackets and
// grouping label lists, then keeps the identifiers that are neither keywords nor function calls. It is
// exact for the expression forms the rules and the dashboard use; expressions that promtool rejects are
// caught by promtool.
func metricNames(expr string) ([]string, error) {
	if strings.Contains(expr, "__name__") {
		// A name matcher would hide the metric name from this lexer (and from readers): not allowed.
		return nil, fmt.Errorf("%q selects a metric through __name__; name it directly", expr)
	}
	s, err := dropStrings(expr)
	if err != nil {
		return nil, err
	}
	for _, pair := range [][2]byte{{'{', '}'}, {'[', ']'}} {
		if s, err = dropBracketed(s, pair[0], pair[1]); err != nil {
			return nil, err
		}
	}
	s = groupingClause.ReplaceAllString(s, "$1")

	var names []string
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case isDigit(c) || (c == '.' && i+1 < len(s) && isDigit(s[i+1])):
			i = skipNumber(s, i)
		case isIdentStart(c):
			j := i + 1
			for j < len(s) && isIdentChar(s[j]) {
				j++
			}
			ident := s[i:j]
			k := j
			for k < len(s) && (s[k] == ' ' || s[k] == '\t' || s[k] == '\n') {
				k++
			}
			isCall := k < len(s) && s[k] == '('
			if !isCall && !promqlKeywords[strings.ToLower(ident)] && !slices.Contains(names, ident) {
				names = append(names, ident)
			}
			i = j
		default:
			i++
		}
	}
	return names, nil
}

// dropStrings replaces every quoted string ("...", '...', `...`) with "".
func dropStrings(s string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		q := s[i]
		if q != '"' && q != '\'' && q != '`' {
			b.WriteByte(q)
			continue
		}
		j := i + 1
		for ; j < len(s) && s[j] != q; j++ {
			if s[j] == '\\' && q != '`' {
				j++
			}
		}
		if j >= len(s) {
			return "", fmt.Errorf("unterminated string in %q", s)
		}
		b.WriteString(`""`)
		i = j
	}
	return b.String(), nil
}

// dropBracketed removes everything between open and close (brackets included; strings already dropped).
func dropBracketed(s string, open, close byte) (string, error) {
	var b strings.Builder
	depth := 0
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == open:
			depth++
		case s[i] == close:
			depth--
			if depth < 0 {
				return "", fmt.Errorf("unbalanced %q in %q", close, s)
			}
			if depth == 0 {
				b.WriteByte(' ')
			}
		case depth == 0:
			b.WriteByte(s[i])
		}
	}
	if depth != 0 {
		return "", fmt.Errorf("unbalanced %q in %q", open, s)
	}
	return b.String(), nil
}

// skipNumber skips a number literal and a duration suffix (offset 10m, 1h30m) starting at i.
func skipNumber(s string, i int) int {
	for i < len(s) && (isDigit(s[i]) || s[i] == '.') {
		i++
	}
	if i+1 < len(s) && (s[i] == 'e' || s[i] == 'E') && (isDigit(s[i+1]) || s[i+1] == '+' || s[i+1] == '-') {
		i += 2
		for i < len(s) && isDigit(s[i]) {
			i++
		}
	}
	for i < len(s) && (strings.IndexByte("smhdwy", s[i]) >= 0 || isDigit(s[i])) {
		i++
	}
	return i
}

func isDigit(c byte) bool      { return c >= '0' && c <= '9' }
func isIdentStart(c byte) bool { return c == '_' || c == ':' || (c|0x20 >= 'a' && c|0x20 <= 'z') }
func isIdentChar(c byte) bool  { return isIdentStart(c) || isDigit(c) }

func TestMetricNames(t *testing.T) {
	tests := []struct {
		expr string
		want []string
	}{
		{`sum by (job, le) (rate(foo_bucket{a="b", c=~"x|y"}[5m]))`, []string{"foo_bucket"}},
		{`histogram_quantile(0.95, job:foo_bucket:rate5m)`, []string{"job:foo_bucket:rate5m"}},
		{`a_total / on() group_left(x) b_total offset 1h30m`, []string{"a_total", "b_total"}},
		{`vector(0.99)`, nil},
		{`1e3 * scalar(m) > 2.5e-1`, []string{"m"}},
		{`x > (14.4 * (1 - scalar(slo:obj:ratio))) and y > 6`, []string{"x", "slo:obj:ratio", "y"}},
		{`increase(c_total[10m]) > 0 or (c_total unless c_total offset 10m)`, []string{"c_total"}},
		{`sum without (instance) (vllm:num_requests_waiting{model_name="a{b}"})`, []string{"vllm:num_requests_waiting"}},
		{`max_over_time(rate(q_total[5m])[1h:1m])`, []string{"q_total"}},
		{`topk(3, sum by (le) (m1)) or count_values("v", m2)`, []string{"m1", "m2"}},
		{"sum by (gen_ai_token_type)\n  (rate(t_total[$__rate_interval]))", []string{"t_total"}},
	}
	for _, tt := range tests {
		got, err := metricNames(tt.expr)
		if err != nil {
			t.Errorf("metricNames(%q): %v", tt.expr, err)
			continue
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("metricNames(%q) = %q, want %q", tt.expr, got, tt.want)
		}
	}
	for _, bad := range []string{`foo{a="b"`, `rate(foo[5m)`, `foo{a="b}`, `{__name__=~"foo.*"}`} {
		if _, err := metricNames(bad); err == nil {
			t.Errorf("metricNames(%q): no error for a malformed expression", bad)
		}
	}
}
