package testkit

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// LockedBuffer collects a child process' output: the process writes while the test reads.
type LockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *LockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *LockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Process is a started child process and what it wrote: Stdout and Stderr apart (a summary on stdout, logs on
// stderr), and Output, both together for the log of a failed test (each stream in order; lines of one may come
// before the other's written earlier, as the two pipes deliver them).
type Process struct {
	Name   string
	Cmd    *exec.Cmd
	Stdout *LockedBuffer
	Stderr *LockedBuffer
	Output *LockedBuffer

	exited chan struct{}
	err    error
	logf   func(format string, args ...any)
}

// StopGrace is how long Stop waits after SIGTERM before it kills the process: a collector drains its queues.
const StopGrace = 15 * time.Second

// outputTailBytes is how much of a failed test's process output is logged: the end is where the error is.
const outputTailBytes = 16 << 10

// Launch starts cmd, capturing its output; where cmd already writes somewhere (os.Stderr, to follow a long run),
// the output goes there too. For tests, StartProcess and StartCmd also stop it when the test ends.
func Launch(name string, cmd *exec.Cmd) (*Process, error) {
	p := &Process{Name: name, Cmd: cmd, Stdout: &LockedBuffer{}, Stderr: &LockedBuffer{}, Output: &LockedBuffer{},
		exited: make(chan struct{})}
	cmd.Stdout = tee(cmd.Stdout, p.Stdout, p.Output)
	cmd.Stderr = tee(cmd.Stderr, p.Stderr, p.Output)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

func tee(also io.Writer, buffers ...io.Writer) io.Writer {
	if also == nil {
		return io.MultiWriter(buffers...)
	}
	return io.MultiWriter(append(buffers, also)...)
}

// StartProcess runs bin with args, env added to this process' environment, until the test ends (Stop); a failed
// test logs the end of its output.
func StartProcess(t testing.TB, name string, env []string, bin string, args ...string) *Process {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	return StartCmd(t, name, cmd)
}

// StartCmd is StartProcess for a command the test prepared (its directory, a wrapper such as taskset).
func StartCmd(t testing.TB, name string, cmd *exec.Cmd) *Process {
	t.Helper()
	p, err := Launch(name, cmd)
	if err != nil {
		t.Fatal(err)
	}
	p.logf = t.Logf
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			out := p.Output.String()
			if len(out) > outputTailBytes {
				out = "…" + out[len(out)-outputTailBytes:]
			}
			t.Logf("---- %s output (%s) ----\n%s", p.Name, strings.Join(p.Cmd.Args, " "), out)
		}
	})
	return p
}

// Pid is the process' id, for /proc (ReadProcMemory, CPUTime).
func (p *Process) Pid() int { return p.Cmd.Process.Pid }

// Running says whether the process has not exited yet.
func (p *Process) Running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// Exited is closed when the process has exited; Err then says how.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// Err is cmd.Wait's result once the process has exited (nil before).
func (p *Process) Err() error {
	if p.Running() {
		return nil
	}
	return p.err
}

// Stop sends SIGTERM and waits for the process to exit, killing it after StopGrace.
func (p *Process) Stop() {
	if !p.Running() {
		return
	}
	_ = p.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(StopGrace):
		if p.logf != nil {
			p.logf("%s did not stop within %s of SIGTERM; killing it", p.Name, StopGrace)
		}
		_ = p.Cmd.Process.Kill()
		<-p.exited
	}
}

// WaitHTTP polls url until it answers 200 OK, and fails the test when the process exits first or the timeout
// passes.
func (p *Process) WaitHTTP(t testing.TB, url string, timeout time.Duration) {
	t.Helper()
	err := WaitHTTP(url, timeout, func() error {
		if p.Running() {
			return nil
		}
		return fmt.Errorf("exited before %s answered: %v", url, p.err)
	})
	if err != nil {
		t.Fatalf("%s: %v", p.Name, err)
	}
}

// WaitHTTP polls url every 100ms until it answers 200 OK. It gives up after timeout, or as soon as gone returns
// an error (nil: nothing to watch), as it does when the server's process has exited.
func WaitHTTP(url string, timeout time.Duration, gone func() error) error {
	deadline := time.Now().Add(timeout)
	client := &http.Client{Timeout: 2 * time.Second}
	for {
		resp, err := client.Get(url)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = errors.New(resp.Status)
		}
		if gone != nil {
			if goneErr := gone(); goneErr != nil {
				return goneErr
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not answer 200 within %s (last: %v)", url, timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
