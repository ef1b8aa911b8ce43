# The otelcol-vllm image. One file, two ways to get the image's filesystem, selected by the ROOTFS build arg;
# everything after that (the final stage) is shared, so both give the same image:
#
#   ROOTFS=source (default), from the repository root, for users with a registry at hand:
#     docker build --build-arg VERSION=$(git describe --tags --always --dirty) -t otelcol-vllm .
#   runs `make dist` (ocb, cgo) on Debian's glibc in a Go image and assembles the filesystem with
#   distribution/image/rootfs.sh. The first build compiles the whole collector: about 15 minutes on 2 cores.
#
#   ROOTFS=prebuilt, what `make image` (distribution/image/build.sh) does with a `make dist` binary, the way
#   the collector's release images are made: the build context is a directory holding rootfs/ (rootfs.sh's
#   output) and a copy of this file.
#
# Each mode uses only its own stage: the builder must skip unused stages, as BuildKit (docker's builder since
# Docker 23) and buildah/podman do; docker's legacy builder (DOCKER_BUILDKIT=0) does not and cannot build it.
#
# The image has no base image, no shell and no package manager: the binary, the glibc files it links against,
# CA certificates, passwd/group and the licences. Run:
#   docker run --rm -p 4317:4317 -p 4318:4318 -p 13133:13133 ghcr.io/otelcol-vllm/otelcol-vllm:VERSION
# Without arguments the collector runs its embedded default config (embedded:default) with the endpoints below;
# the health check answers on :13133 (GET /). The root filesystem may be read-only.
# source unless given: the default is spelled in the FROM that selects the stage rather than here, because
# podman 4.3 (buildah 1.28) decides which stages to build before applying ARG defaults and would then skip the
# source stage.
ARG ROOTFS=
ARG GO_IMAGE=golang:1.26-bookworm

FROM ${GO_IMAGE} AS rootfs-source
WORKDIR /src
COPY . .
ARG VERSION
RUN make dist ${VERSION:+VERSION=$VERSION} && distribution/image/rootfs.sh _build/otelcol-vllm /rootfs

FROM scratch AS rootfs-prebuilt
COPY rootfs/ /rootfs/

FROM rootfs-${ROOTFS:-source} AS rootfs

# The final stage, the same for both modes: the filesystem, then the image's metadata.
FROM scratch
ARG VERSION=unknown
ARG REVISION=unknown
COPY --from=rootfs /rootfs/ /
LABEL org.opencontainers.image.title="otelcol-vllm" \
      org.opencontainers.image.description="OpenTelemetry Collector distribution for vLLM operators" \
      org.opencontainers.image.source="https://github.com/otelcol-vllm/otelcol-vllm" \
      org.opencontainers.image.url="https://github.com/otelcol-vllm/otelcol-vllm" \
      org.opencontainers.image.documentation="https://github.com/otelcol-vllm/otelcol-vllm/blob/main/docs/distribution.md" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
# The embedded default listens on loopback; in a container it must listen on every interface.
ENV OTELCOL_VLLM_OTLP_GRPC_ENDPOINT=0.0.0.0:4317 \
    OTELCOL_VLLM_OTLP_HTTP_ENDPOINT=0.0.0.0:4318 \
    OTELCOL_VLLM_HEALTH_CHECK_ENDPOINT=0.0.0.0:13133 \
    OTELCOL_VLLM_TELEMETRY_HOST=0.0.0.0 \
    OTELCOL_VLLM_STATUS_ENDPOINT=0.0.0.0:8899 \
    OTELCOL_VLLM_PROMETHEUS_ENDPOINT=0.0.0.0:8889
# OTLP gRPC, OTLP HTTP, health check (GET / answers 200 once the pipelines run), the collector's own metrics,
# the status page and JSON API, the Prometheus scrape endpoint
EXPOSE 4317 4318 13133 8888 8899 8889
USER 10001:10001
ENTRYPOINT ["/otelcol-vllm"]
