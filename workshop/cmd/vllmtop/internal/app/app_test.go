package app

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-vllm/otelcol-vllm/workshop/testkit"
)

// apiServer serves the exporter's golden API document (its own tests keep it equal to what the exporter
// answers), and records the window asked for.
func apiServer(t *testing.T) (*httptest.Server, *[]string) {
	t.Helper()
	doc, err := os.ReadFile(filepath.Join("..", "..", "..", "..", "..", "exporter", "vllmstatusexporter", "testdata", "status.golden.json"))
	require.NoError(t, err)
	var windows []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/metrics" {
			http.NotFound(w, r)
			return
		}
		windows = append(windows, r.URL.Query().Get("window"))
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(doc)
	}))
	t.Cleanup(srv.Close)
	return srv, &windows
}

func TestOnce(t *testing.T) {
	srv, windows := apiServer(t)
	var out, errOut bytes.Buffer
	require.Equal(t, ExitOK, Main(context.Background(), []string{"--once", "--url", srv.URL + "/", "--window", "1m"}, &out, &errOut), errOut.String())
	assert.Equal(t, []string{"1m"}, *windows)
	text := out.String()
	lines := strings.Split(text, "\n")
	assert.Contains(t, lines[0], "window 1m0s")
	assert.Contains(t, text, "ALERT warning queue: llama-8b: 12 requests waiting (more than 5)")
	// the llama-8b row: 120 requests, 2 req/s, 4 running, 12 waiting, TTFT p50 250 ms / p95 3.75 s, goodput 90%,
	// 200 output tokens/s, 6 errors (testdata of the exporter)
	var row string
	for _, l := range lines {
		if strings.HasPrefix(l, "llama-8b ") {
			row = l
		}
	}
	require.NotEmpty(t, row, text)
	assert.Equal(t, []string{"llama-8b", "120", "2", "4", "12", "250ms", "3.75s", "-", "3.75s", "90.0%", "200", "6"}, strings.Fields(row))
	assert.Contains(t, text, "<img src=x onerror=alert(1)>", "shown as text, as it is")
	assert.Regexp(t, `(?m)^0\s+NVIDIA H100 80GB HBM3\s+50\.0%`, text)
}

func TestOnceErrors(t *testing.T) {
	srv, _ := apiServer(t)
	var out, errOut bytes.Buffer
	assert.Equal(t, ExitFailed, Main(context.Background(), []string{"--once", "--url", srv.URL + "/nothing"}, &out, &errOut))
	assert.Contains(t, errOut.String(), "404")
	assert.Empty(t, out.String())
}

func TestExitCodes(t *testing.T) {
	for name, tt := range map[string]struct {
		args []string
		code int
		msg  string
	}{
		"extra argument": {[]string{"--once", "extra"}, ExitUsage, `unexpected argument "extra"`},
		"unknown flag":   {[]string{"--nope"}, ExitUsage, "flag provided but not defined"},
		"short interval": {[]string{"--interval", "10ms"}, ExitUsage, "--interval must be at least 100ms"},
		"help":           {[]string{"-h"}, ExitOK, "Usage of vllmtop"},
		"unreachable":    {[]string{"--once", "--url", "http://127.0.0.1:1"}, ExitFailed, "connection refused"},
	} {
		t.Run(name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			assert.Equal(t, tt.code, Main(context.Background(), tt.args, &out, &errOut))
			assert.Contains(t, errOut.String(), tt.msg)
		})
	}
}

func TestClean(t *testing.T) {
	assert.Equal(t, "a[31mb", clean("a\x1b[31mb\n"), "control characters are dropped")
	assert.Equal(t, 48, len([]rune(clean(strings.Repeat("x", 100)))))
}

// TestFullScreenUnderTmux runs the full-screen view in a detached tmux session and reads the screen back with
// capture-pane: the API's figures appear, and `q` ends the program.
func TestFullScreenUnderTmux(t *testing.T) {
	tmux := testkit.Tool(t, testkit.Tmux)
	srv, _ := apiServer(t)
	bin := filepath.Join(t.TempDir(), "vllmtop")
	build := exec.Command("go", "build", "-o", bin, "../..")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "%s", out)

	socket := filepath.Join(t.TempDir(), "tmux.sock")
	tm := func(args ...string) (string, error) {
		cmd := exec.Command(tmux, append([]string{"-S", socket}, args...)...)
		cmd.Env = append(os.Environ(), "TERM=xterm-256color")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	// the shell prints vllmtop's exit code when it ends
	cmdline := bin + " --url " + srv.URL + " --interval 200ms; echo exit=$?; sleep 30"
	_, err = tm("new-session", "-d", "-s", "top", "-x", "160", "-y", "40", cmdline)
	require.NoError(t, err)
	t.Cleanup(func() { _, _ = tm("kill-server") })

	var screen string
	require.Eventually(t, func() bool {
		screen, _ = tm("capture-pane", "-p", "-t", "top")
		return strings.Contains(screen, "llama-8b") && strings.Contains(screen, "NVIDIA H100")
	}, 30*time.Second, 100*time.Millisecond, "screen never showed the models")
	assert.Contains(t, screen, "vllmtop")
	assert.Contains(t, screen, "ALERT warning queue")
	assert.Regexp(t, `llama-8b\s+120\s+2\s+4\s+12\s+250ms\s+3\.75s`, screen)
	assert.Contains(t, screen, "q quit")

	_, err = tm("send-keys", "-t", "top", "q")
	require.NoError(t, err)
	// the program quits and leaves the alternate screen: the pane shows the shell's screen again
	require.Eventually(t, func() bool {
		screen, _ = tm("capture-pane", "-p", "-t", "top")
		return !strings.Contains(screen, "llama-8b") && strings.Contains(screen, "exit=")
	}, 30*time.Second, 100*time.Millisecond, "q did not quit")
	assert.Contains(t, screen, "exit=0")

	// SIGTERM ends the view as q does: the terminal restored, exit code 0
	_, err = tm("new-session", "-d", "-s", "sig", "-x", "160", "-y", "40", cmdline)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		screen, _ = tm("capture-pane", "-p", "-t", "sig")
		return strings.Contains(screen, "llama-8b")
	}, 30*time.Second, 100*time.Millisecond, "screen never showed the models")
	shell, err := tm("display-message", "-p", "-t", "sig", "#{pane_pid}")
	require.NoError(t, err)
	children, err := os.ReadFile("/proc/" + strings.TrimSpace(shell) + "/task/" + strings.TrimSpace(shell) + "/children")
	require.NoError(t, err)
	fields := strings.Fields(string(children))
	require.Len(t, fields, 1, "the shell runs vllmtop alone")
	pid, err := strconv.Atoi(fields[0])
	require.NoError(t, err)
	require.NoError(t, syscall.Kill(pid, syscall.SIGTERM))
	require.Eventually(t, func() bool {
		screen, _ = tm("capture-pane", "-p", "-t", "sig")
		return !strings.Contains(screen, "llama-8b") && strings.Contains(screen, "exit=")
	}, 30*time.Second, 100*time.Millisecond, "SIGTERM did not end the view")
	assert.Contains(t, screen, "exit=0")
}
