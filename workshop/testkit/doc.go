// Package testkit is the harness the workshop's tests and the load benchmark share: free loopback ports and
// gRPC servers on them, child processes with their output captured, a collector's self-telemetry, a process'
// memory and CPU time from /proc, and the tools the tests run, found through the environment the Makefile sets.
//
// Sub-packages hold what pulls in heavier dependencies: otlpsink (an in-process OTLP backend) and fakekubelet (the
// kubelet's pod-resources API).
//
// Functions that take a testing.TB fail or skip the test and clean up when it ends; the load benchmark, a plain
// program, uses the variants that return an error.
package testkit // import "github.com/otelcol-vllm/otelcol-vllm/workshop/testkit"
