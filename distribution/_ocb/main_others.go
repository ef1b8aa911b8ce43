// Kept in place of the main_others.go that ocb generates (`make dist` copies it into _build/ between ocb's
// generate and compile steps; the directory's leading underscore keeps it out of the root module's build).
// ocb v0.165 has no setting for a default config source or a version from the build, so this file supplies
// both: ocb's generated main() builds the collector settings and calls run(), which adds them before the
// collector starts. `make dist` sets version with -ldflags "-X main.version=...". ocb's main_windows.go is left
// as generated: this project builds no Windows binary.

//go:build !windows

package main

import "go.opentelemetry.io/collector/otelcol"

// version is the version the binary reports (`--version`, the telemetry resource, the scope version of our
// components); empty keeps the version of builder-config.yaml.
var version string

// defaultConfigURI is the configuration compiled into the binary (distribution/embeddedprovider): the binary
// started without --config runs it. Any --config flag replaces it.
const defaultConfigURI = "embedded:default"

func run(params otelcol.CollectorSettings) error {
	if version != "" {
		params.BuildInfo.Version = version
	}
	if len(params.ConfigProviderSettings.ResolverSettings.URIs) == 0 {
		params.ConfigProviderSettings.ResolverSettings.URIs = []string{defaultConfigURI}
	}
	return runInteractive(params)
}
