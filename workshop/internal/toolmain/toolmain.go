// Package toolmain is the one entry convention of the workshop's commands (vllmgen, vllmbench, vllmtop): each
// has Main(ctx, args, stdout, stderr) int, returns one of the exit codes below, and its main function is Run.
package toolmain // import "github.com/otelcol-vllm/otelcol-vllm/workshop/internal/toolmain"

import (
	"context"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// The exit codes every command uses.
const (
	ExitOK     = 0
	ExitFailed = 1 // the run failed (each command says what that means for it)
	ExitUsage  = 2 // a flag or argument was wrong
)

// Main is a command's whole program, testable without a process of its own.
type Main func(ctx context.Context, args []string, stdout, stderr io.Writer) int

// Run runs main with the process' arguments and streams and exits with its code. The first SIGINT or SIGTERM
// cancels main's context (the command winds down: stops sending, prints what it has, restores the terminal);
// the default handling is then restored, so that a second one ends the process at once.
func Run(main Main) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop()
	}()
	code := main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
