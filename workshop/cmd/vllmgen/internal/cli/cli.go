// Package cli is what vllmgen's subcommands share on the command line: exit codes, flag-set parsing and the OTLP
// destination flags, with the spellings otlpsend accepts.
package cli // import "github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmgen/internal/cli"

import (
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmgen/internal/otlpsend"

	"github.com/otelcol-vllm/otelcol-vllm/workshop/internal/toolmain"
)

// Exit codes of every subcommand: the workshop's (toolmain).
const (
	ExitOK     = toolmain.ExitOK
	ExitFailed = toolmain.ExitFailed // the run failed (for `vllmgen` send: some span was not delivered; the summary is printed first)
	ExitUsage  = toolmain.ExitUsage
)

// NewFlagSet returns a flag set that reports to stderr and returns errors instead of exiting; usage is printed
// above the flag list on -h and on a flag error.
func NewFlagSet(name, usage string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "%s\n\nFlags:\n", usage)
		fs.PrintDefaults()
	}
	return fs
}

// Parse parses args with fs and rejects positional arguments. -h returns flag.ErrHelp.
func Parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	return nil
}

// UsageExit is the exit code of a command line that did not parse: 0 for -h, else ExitUsage with err reported
// on stderr as "name: err".
func UsageExit(name string, err error, stderr io.Writer) int {
	if errors.Is(err, flag.ErrHelp) {
		return ExitOK
	}
	fmt.Fprintf(stderr, "%s: %v\n", name, err)
	return ExitUsage
}

// OTLP is a pair of flags saying where a subcommand sends OTLP traces: a protocol flag (--otlp-protocol) and an
// endpoint flag whose name the subcommand chooses.
type OTLP struct {
	endpointFlag string
	endpoint     *string
	protocol     *string
}

// OTLPFlags registers --otlp-protocol (default defaultProtocol) and the endpoint flag endpointFlag on fs.
// endpointDefault describes the endpoint flag's default in the usage text.
func OTLPFlags(fs *flag.FlagSet, endpointFlag, endpointDefault, defaultProtocol string) *OTLP {
	return &OTLP{
		endpointFlag: endpointFlag,
		endpoint: fs.String(endpointFlag, "", "OTLP endpoint: host:port or dns:///host:port for grpc; an http(s):// URL for http/protobuf "+
			"(/v1/traces is added when it has no path) ("+endpointDefault+")"),
		protocol: fs.String("otlp-protocol", defaultProtocol, "OTLP protocol: grpc | http/protobuf (http is accepted for http/protobuf)"),
	}
}

// Given reports whether an endpoint was given.
func (o *OTLP) Given() bool { return *o.endpoint != "" }

// Parse validates the flags and returns the protocol and the normalized endpoint (the protocol's default
// endpoint when none was given).
func (o *OTLP) Parse() (otlpsend.Protocol, string, error) {
	p, err := otlpsend.ParseProtocol(*o.protocol)
	if err != nil {
		return "", "", fmt.Errorf("--otlp-protocol: %w", err)
	}
	endpoint, err := p.NormalizeEndpoint(*o.endpoint)
	if err != nil {
		return "", "", fmt.Errorf("--%s: %w", o.endpointFlag, err)
	}
	return p, endpoint, nil
}
