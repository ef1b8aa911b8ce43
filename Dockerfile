# otelcol-vllm built from source in a container, for users with a registry at hand:
#
#   docker build --build-arg VERSION=$(git describe --tags --always --dirty) -t otelcol-vllm .
#
# The first stage runs `make dist` (ocb, cgo) on Debian's glibc and assembles the image's filesystem with
# distribution/image/rootfs.sh; the final stage is that filesystem alone, as in distribution/image/Dockerfile
# (the image `make image` builds from a `make dist` binary; a test keeps both final stages equal). The first
# build compiles the whole collector: about 15 minutes on 2 cores.
ARG GO_IMAGE=golang:1.26-bookworm
FROM ${GO_IMAGE} AS build
WORKDIR /src
COPY . .
ARG VERSION
RUN make dist ${VERSION:+VERSION=$VERSION} && distribution/image/rootfs.sh _build/otelcol-vllm /rootfs

FROM scratch
ARG VERSION=unknown
ARG REVISION=unknown
COPY --from=build /rootfs/ /
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
