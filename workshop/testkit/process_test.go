package testkit

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestStartProcessCapturesOutput(t *testing.T) {
	tests := []struct {
		name           string
		script         string
		env            []string
		stdout, stderr string
		wantErr        bool
	}{
		{name: "stdout and stderr apart", script: `echo out; echo err >&2`, stdout: "out\n", stderr: "err\n"},
		{name: "environment added", script: `echo "$TESTKIT_X"`, env: []string{"TESTKIT_X=42"}, stdout: "42\n"},
		{name: "exit status", script: `echo bye; exit 3`, stdout: "bye\n", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := StartProcess(t, "sh", tt.env, "sh", "-c", tt.script)
			select {
			case <-p.Exited():
			case <-time.After(10 * time.Second):
				t.Fatal("sh did not exit")
			}
			assert.False(t, p.Running())
			assert.Equal(t, tt.stdout, p.Stdout.String())
			assert.Equal(t, tt.stderr, p.Stderr.String())
			assert.ElementsMatch(t, strings.SplitAfter(tt.stdout+tt.stderr, "\n"), strings.SplitAfter(p.Output.String(), "\n"),
				"Output holds both streams")
			var exit *exec.ExitError
			if tt.wantErr {
				require.True(t, errors.As(p.Err(), &exit), "err %v", p.Err())
				assert.Equal(t, 3, exit.ExitCode())
			} else {
				assert.NoError(t, p.Err())
			}
		})
	}
}

func TestStopEndsTheProcess(t *testing.T) {
	p := StartProcess(t, "sleep", nil, "sleep", "60")
	require.True(t, p.Running())
	start := time.Now()
	p.Stop()
	assert.False(t, p.Running())
	assert.Less(t, time.Since(start), StopGrace, "SIGTERM was enough")
	assert.ErrorContains(t, p.Err(), "terminated")
}

func TestLaunchAlsoWritesWhereTheCommandDid(t *testing.T) {
	var echoed LockedBuffer
	cmd := exec.Command("sh", "-c", "echo hello")
	cmd.Stdout = &echoed
	p, err := Launch("sh", cmd)
	require.NoError(t, err)
	<-p.Exited()
	assert.Equal(t, "hello\n", echoed.String())
	assert.Equal(t, "hello\n", p.Stdout.String())
}

func TestWaitHTTP(t *testing.T) {
	var calls atomic.Int32
	ready := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if calls.Add(1) < 3 {
			http.Error(w, "starting", http.StatusServiceUnavailable)
		}
	}))
	defer ready.Close()
	never := httptest.NewServer(http.NotFoundHandler())
	defer never.Close()
	gone := errors.New("exited")

	tests := []struct {
		name    string
		url     string
		timeout time.Duration
		gone    func() error
		wantErr string
	}{
		{name: "answers 200 on the third try", url: ready.URL, timeout: 10 * time.Second},
		{name: "never 200", url: never.URL, timeout: 300 * time.Millisecond, wantErr: "404 Not Found"},
		{name: "the process exited", url: never.URL, timeout: time.Minute, gone: func() error { return gone }, wantErr: "exited"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			err := WaitHTTP(tt.url, tt.timeout, tt.gone)
			if tt.wantErr == "" {
				require.NoError(t, err)
				assert.EqualValues(t, 3, calls.Load())
				return
			}
			assert.ErrorContains(t, err, tt.wantErr)
			assert.Less(t, time.Since(start), 10*time.Second)
		})
	}
}

func TestProcessWaitHTTPNoticesTheExit(t *testing.T) {
	p := StartProcess(t, "false", nil, "false")
	<-p.Exited()
	err := WaitHTTP("http://"+FreeLoopback(t)+"/", time.Minute, func() error {
		if !p.Running() {
			return errors.New("exited: " + p.Err().Error())
		}
		return nil
	})
	assert.ErrorContains(t, err, "exit status 1")
	assert.True(t, strings.HasPrefix(err.Error(), "exited"))
}
