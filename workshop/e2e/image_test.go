package e2e

// The container image: distribution/image/build.sh builds it from the distribution binary with podman (vfs
// storage in a temporary directory, so nothing is left behind and no registry is needed: the image is FROM
// scratch), and the test runs it as a user would, without arguments, on the host network with a read-only root
// filesystem: OTLP in, enriched traces and metrics out, health check up, the process not root, the glibc
// loader finding a libnvidia-ml.so.1 mounted into the image as the NVIDIA container runtime mounts it.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-vllm/otelcol-vllm/workshop/fakenvml"
	"github.com/otelcol-vllm/otelcol-vllm/workshop/testkit"
	"github.com/otelcol-vllm/otelcol-vllm/workshop/testkit/otlpsink"
)

// imageUID is the user the Dockerfile runs as (deploy/kubernetes/daemonset.yaml's runAsUser too).
const imageUID = 10001

// podman runs podman as root on storage of its own: vfs (overlay does not work inside these machines' containers),
// the runc runtime and a containers.conf without default ulimits and with cgroupfs (crun fails on setrlimit and
// hybrid cgroups here).
type podman struct {
	global []string // flags before the subcommand
	env    []string
}

func newPodman(t *testing.T) *podman {
	t.Helper()
	for _, tool := range []string{"podman", "runc"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed: `make test` installs podman and runc with apt-get (apt-get install podman runc)", tool)
		}
	}
	dir := t.TempDir()
	conf := filepath.Join(dir, "containers.conf")
	require.NoError(t, os.WriteFile(conf, []byte("[containers]\ndefault_ulimits = []\n\n[engine]\ncgroup_manager = \"cgroupfs\"\n"), 0o644))
	return &podman{
		global: []string{"--root", filepath.Join(dir, "root"), "--runroot", filepath.Join(dir, "run"),
			"--storage-driver", "vfs", "--runtime", "runc"},
		env: []string{"CONTAINERS_CONF=" + conf},
	}
}

// command is the podman command line as one string, for CONTAINER_TOOL.
func (p *podman) command() string { return "podman " + strings.Join(p.global, " ") }

// run runs a podman subcommand to completion and returns its stdout.
func (p *podman) run(t *testing.T, timeout time.Duration, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "podman", append(append([]string{}, p.global...), args...)...)
	cmd.Env = append(os.Environ(), p.env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	require.NoError(t, cmd.Run(), "podman %s\nstderr:\n%s\nstdout:\n%s", strings.Join(args, " "), stderr.String(), stdout.String())
	return stdout.String()
}

// procStatus reads a field of /proc/<pid>/status ("Uid", "Gid", ...).
func procStatus(t *testing.T, pid int, field string) []string {
	t.Helper()
	f, err := os.Open(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	require.NoError(t, err)
	defer f.Close()
	scanner := bufio.NewScanner(f)
	for scanner.Scan() {
		if value, ok := strings.CutPrefix(scanner.Text(), field+":"); ok {
			return strings.Fields(value)
		}
	}
	t.Fatalf("/proc/%d/status has no %s", pid, field)
	return nil
}

// rootMountOptions are the mount options of the root filesystem process pid sees (/proc/<pid>/mountinfo: the
// fifth field is the mount point, the sixth the per-mount options).
func rootMountOptions(t *testing.T, pid int) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "mountinfo"))
	require.NoError(t, err)
	var options []string
	for _, line := range strings.Split(string(data), "\n") {
		fields := strings.Fields(line)
		if len(fields) > 5 && fields[4] == "/" {
			options = strings.Split(fields[5], ",") // the last mount on / is the one the process sees
		}
	}
	require.NotNil(t, options, "no root mount in /proc/%d/mountinfo", pid)
	return options
}

// imageGPU is the one GPU the fake libnvidia-ml.so.1 serves inside the container.
var imageGPU = fakenvml.GPU{UUID: "GPU-0c0c0c0c-1111-2222-3333-444444444444", Name: "NVIDIA L40S",
	MemoryTotal: 48 * gpuGiB, MemoryUsed: 12 * gpuGiB, PowerUsage: 250000}

func TestContainerImage(t *testing.T) {
	bin := testkit.Tool(t, testkit.CollectorBin)
	pm := newPodman(t)
	version := binaryVersion(t, bin)
	image := "localhost/otelcol-vllm:" + version

	build := exec.Command(filepath.Join(repoRoot(t), "distribution", "image", "build.sh"), bin, image)
	build.Env = append(os.Environ(), pm.env...)
	build.Env = append(build.Env, "CONTAINER_TOOL="+pm.command(), "IMAGE_CONTEXT="+filepath.Join(t.TempDir(), "context"))
	out, err := build.CombinedOutput()
	require.NoError(t, err, "build.sh:\n%s", out)

	t.Run("labels, user and entrypoint", func(t *testing.T) {
		var inspected []struct {
			Config struct {
				User         string              `json:"User"`
				Entrypoint   []string            `json:"Entrypoint"`
				Cmd          []string            `json:"Cmd"`
				ExposedPorts map[string]struct{} `json:"ExposedPorts"`
				Labels       map[string]string   `json:"Labels"`
			} `json:"Config"`
		}
		require.NoError(t, json.Unmarshal([]byte(pm.run(t, time.Minute, "image", "inspect", image)), &inspected))
		require.Len(t, inspected, 1)
		cfg := inspected[0].Config
		assert.Equal(t, "10001:10001", cfg.User)
		assert.Equal(t, []string{"/otelcol-vllm"}, cfg.Entrypoint)
		assert.Empty(t, cfg.Cmd, "no arguments: the embedded default config")
		assert.Equal(t, map[string]struct{}{"4317/tcp": {}, "4318/tcp": {}, "13133/tcp": {}, "8888/tcp": {}, "8899/tcp": {}, "8889/tcp": {}}, cfg.ExposedPorts)
		assert.Equal(t, version, cfg.Labels["org.opencontainers.image.version"], "the tag, the label and --version agree")
		assert.Equal(t, "Apache-2.0", cfg.Labels["org.opencontainers.image.licenses"])
		assert.Equal(t, "https://github.com/otelcol-vllm/otelcol-vllm", cfg.Labels["org.opencontainers.image.source"])
		assert.NotEmpty(t, cfg.Labels["org.opencontainers.image.revision"])
	})
	t.Run("filesystem: the binary, glibc, certificates, licences, and no shell", func(t *testing.T) {
		created := strings.TrimSpace(pm.run(t, time.Minute, "create", image))
		defer pm.run(t, time.Minute, "rm", created)
		archive := filepath.Join(t.TempDir(), "rootfs.tar")
		pm.run(t, 2*time.Minute, "export", "--output", archive, created)
		listing := string(run(t, time.Minute, "", "tar", "-tf", archive))
		files := map[string]bool{}
		for _, name := range strings.Split(listing, "\n") {
			files[strings.TrimSuffix(strings.TrimPrefix(name, "./"), "/")] = true
		}
		for _, want := range []string{"otelcol-vllm", "lib64/ld-linux-x86-64.so.2", "lib/x86_64-linux-gnu/libc.so.6",
			"etc/ssl/certs/ca-certificates.crt", "etc/passwd", "etc/group", "usr/share/doc/otelcol-vllm/LICENSE",
			"usr/share/doc/libc6/copyright"} {
			assert.True(t, files[want], "the image has no /%s", want)
		}
		for _, shell := range []string{"bin/sh", "usr/bin/sh", "bin/bash", "bin/busybox"} {
			assert.False(t, files[shell], "the image has a shell: /%s", shell)
		}
	})
	t.Run("--version in the image", func(t *testing.T) {
		got := pm.run(t, time.Minute, "run", "--rm", "--network", "none", image, "--version")
		assert.Equal(t, "otelcol-vllm version "+version+"\n", got)
	})

	prom := startPrometheus(t)
	sink := &otlpsink.Sink{}
	grpcEndpoint, httpEndpoint := testkit.FreeLoopback(t), testkit.FreeLoopback(t)
	health, telemetryPort := testkit.FreeLoopback(t), testkit.FreePort(t)
	lib := fakenvml.Build(t)
	script := fakenvml.WriteScript(t, fakenvml.Script{DriverVersion: gpuDriver, GPUs: []fakenvml.GPU{imageGPU}})
	name := "otelcol-vllm-e2e-" + strconv.Itoa(os.Getpid())
	// runs after the container's process has stopped (cleanups run last-in first-out): --rm normally removed it
	t.Cleanup(func() {
		cmd := exec.Command("podman", append(append([]string{}, pm.global...), "rm", "--force", "--ignore", name)...)
		cmd.Env = append(os.Environ(), pm.env...)
		_ = cmd.Run()
	})
	args := append(append([]string{}, pm.global...), "run", "--rm", "--name", name, "--network", "host", "--read-only",
		// loopback addresses on free ports instead of the image's 0.0.0.0 on the standard ones: the host network is shared
		"--env", "OTELCOL_VLLM_OTLP_GRPC_ENDPOINT="+grpcEndpoint,
		"--env", "OTELCOL_VLLM_OTLP_HTTP_ENDPOINT="+httpEndpoint,
		"--env", "OTELCOL_VLLM_HEALTH_CHECK_ENDPOINT="+health,
		"--env", "OTELCOL_VLLM_TELEMETRY_HOST=127.0.0.1",
		"--env", "OTELCOL_VLLM_TELEMETRY_PORT="+strconv.Itoa(telemetryPort),
		"--env", "OTELCOL_VLLM_STATUS_ENDPOINT="+testkit.FreeLoopback(t),
		"--env", "OTELCOL_VLLM_PROMETHEUS_ENDPOINT="+testkit.FreeLoopback(t),
		"--env", "OTELCOL_VLLM_JAEGER_ENDPOINT="+otlpsink.StartGRPC(t, sink),
		"--env", "OTELCOL_VLLM_REMOTE_WRITE_ENDPOINT="+prom.remoteWriteURL(),
		// where the NVIDIA container runtime puts the driver's library; the loader finds it by name
		"--volume", lib+":/usr/lib/x86_64-linux-gnu/"+fakenvml.LibraryName+":ro",
		"--volume", script+":/fakenvml-script.txt:ro",
		"--env", fakenvml.ScriptEnv+"=/fakenvml-script.txt",
		image) // and no arguments
	proc := testkit.StartProcess(t, "otelcol-vllm container", pm.env, "podman", args...)
	proc.WaitHTTP(t, "http://"+health+"/", 2*time.Minute)

	t.Run("not root, read-only root filesystem", func(t *testing.T) {
		pid, err := strconv.Atoi(strings.TrimSpace(pm.run(t, time.Minute, "inspect", "--format", "{{.State.Pid}}", name)))
		require.NoError(t, err)
		require.Positive(t, pid)
		want := strconv.Itoa(imageUID)
		assert.Equal(t, []string{want, want, want, want}, procStatus(t, pid, "Uid"), "real, effective, saved, filesystem uid")
		assert.Equal(t, []string{want, want, want, want}, procStatus(t, pid, "Gid"))
		assert.Contains(t, rootMountOptions(t, pid), "ro")
	})

	s := sendRun(t, genRun{seed: 41, count: 60, protocol: "grpc", shape: "v1", models: "llama-8b,qwen-7b",
		resource: "service.instance.id=vllm-0", slo: defaultSLO}, grpcEndpoint, httpEndpoint)
	t.Run("enriched traces out", func(t *testing.T) {
		sink.WaitForSpans(t, int(s.Total.Spans), 30*time.Second)
		received := indexSpans(sink.TraceRequests())
		require.Len(t, received, int(s.Total.Spans))
		for id, rec := range received {
			_, ok := rec.span.Attributes().Get("vllm.slo.met")
			assert.True(t, ok, "span %s has no vllm.slo.met", id)
		}
		checkSinkTotals(t, received, s)
	})
	t.Run("metrics out", func(t *testing.T) {
		prom.waitScalar(t, "sum("+promRequests+")", float64(s.Total.Spans), 60*time.Second)
		checkExpectations(t, prom, modelExpectations(s))
	})
	t.Run("GPU metrics through the mounted libnvidia-ml.so.1", func(t *testing.T) {
		selector := `{hw_id="` + imageGPU.UUID + `"}`
		prom.waitScalar(t, "hw_power_watts"+selector, 250, 60*time.Second)
		prom.waitScalar(t, "hw_gpu_memory_usage_bytes"+selector, float64(12*gpuGiB), 10*time.Second)
	})
	t.Run("collector telemetry", func(t *testing.T) {
		c := &collector{telemetry: testkit.Loopback(telemetryPort), instanceID: name}
		assert.EqualValues(t, s.Total.Spans, c.telemetryValue(t, "otelcol_receiver_accepted_spans"))
		checkNoExportFailures(t, c)
	})
}

// dockerStage is one stage of a Dockerfile: its FROM line and its other instructions (comments dropped,
// continuation lines joined).
type dockerStage struct {
	from         string
	instructions []string
}

// parseDockerfile returns the instructions before the first FROM (global ARGs) and the stages.
func parseDockerfile(t *testing.T, path string) (global []string, stages []dockerStage) {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	var lines []string
	var cont strings.Builder
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if l, ok := strings.CutSuffix(line, "\\"); ok {
			cont.WriteString(strings.TrimSpace(l) + " ")
			continue
		}
		cont.WriteString(line)
		lines = append(lines, cont.String())
		cont.Reset()
	}
	for _, l := range lines {
		switch {
		case strings.HasPrefix(l, "FROM "):
			stages = append(stages, dockerStage{from: l})
		case len(stages) == 0:
			global = append(global, l)
		default:
			stages[len(stages)-1].instructions = append(stages[len(stages)-1].instructions, l)
		}
	}
	return global, stages
}

// TestOneDockerfile: the repository has one Dockerfile, at its root (so `docker build .` builds from source),
// and its two ways to the image's filesystem, ROOTFS=source (the default) and ROOTFS=prebuilt (`make image`,
// which TestContainerImage builds and runs), share the final stage by construction: each mode is a stage that
// leaves the filesystem in /rootfs, the stage named rootfs is the selected one, and the final stage copies
// from it alone. (A source build needs a registry for the Go image and a quarter of an hour; it is not run.)
func TestOneDockerfile(t *testing.T) {
	root := repoRoot(t)
	var found []string
	require.NoError(t, filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "_build" || d.Name() == "node_modules") {
			return filepath.SkipDir
		}
		name := strings.ToLower(d.Name())
		if !d.IsDir() && (strings.HasPrefix(name, "dockerfile") || strings.HasSuffix(name, ".dockerfile") || name == "containerfile") {
			rel, _ := filepath.Rel(root, path)
			found = append(found, rel)
		}
		return nil
	}))
	assert.Equal(t, []string{"Dockerfile"}, found, "one Dockerfile, at the repository root")

	global, stages := parseDockerfile(t, filepath.Join(root, "Dockerfile"))
	// the default (source) is in the FROM that selects the mode: podman 4.3 picks the stages to build before it
	// applies ARG defaults
	assert.Contains(t, global, "ARG ROOTFS=")
	byName := map[string]dockerStage{}
	for _, st := range stages[:len(stages)-1] {
		fields := strings.Fields(st.from)
		require.Len(t, fields, 4, "every stage but the final one is named: %s", st.from)
		require.Equal(t, "AS", strings.ToUpper(fields[2]), st.from)
		byName[fields[3]] = st
	}
	require.Contains(t, byName, "rootfs-source")
	require.Contains(t, byName, "rootfs-prebuilt")
	assert.Equal(t, "FROM rootfs-${ROOTFS:-source} AS rootfs", byName["rootfs"].from, "the build arg picks the mode's stage, source by default")
	assert.Empty(t, byName["rootfs"].instructions)
	assert.Contains(t, byName["rootfs-prebuilt"].instructions, "COPY rootfs/ /rootfs/", "rootfs.sh's output from the context")
	src := strings.Join(byName["rootfs-source"].instructions, "\n")
	assert.Contains(t, src, "make dist")
	assert.Contains(t, src, "distribution/image/rootfs.sh _build/otelcol-vllm /rootfs", "the same rootfs.sh as make image")

	final := stages[len(stages)-1]
	assert.Equal(t, "FROM scratch", final.from)
	var copies []string
	for _, ins := range final.instructions {
		if strings.HasPrefix(ins, "COPY ") || strings.HasPrefix(ins, "ADD ") {
			copies = append(copies, ins)
		}
	}
	assert.Equal(t, []string{"COPY --from=rootfs /rootfs/ /"}, copies, "the final stage's files come from the selected mode only")
	assert.Contains(t, final.instructions, "USER 10001:10001")
	assert.Contains(t, final.instructions, `ENTRYPOINT ["/otelcol-vllm"]`)
}
