#!/bin/sh
# build.sh BINARY IMAGE — builds the otelcol-vllm container image IMAGE (name:tag) from a binary built by
# `make dist`, as `make image` does: the repository's Dockerfile with ROOTFS=prebuilt, in the build context
# IMAGE_CONTEXT, by default BINARY's directory/image/ (rootfs.sh output and a copy of the Dockerfile). The
# image's version label is what the binary reports (`--version`).
#
# The container tool is CONTAINER_TOOL when set (it may carry flags, e.g. "podman --storage-driver vfs"), else
# docker when its daemon answers (with BuildKit, which skips the Dockerfile's source stage), else podman, else
# buildah.
set -eu

if [ $# -ne 2 ]; then
	echo "usage: $0 BINARY IMAGE" >&2
	exit 2
fi
bin=$1
image=$2
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)

tool=${CONTAINER_TOOL:-}
if [ -z "$tool" ]; then
	if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
		tool=docker
	elif command -v podman >/dev/null 2>&1; then
		tool=podman
	elif command -v buildah >/dev/null 2>&1; then
		tool=buildah
	else
		echo "$0: no container tool found: install docker, podman or buildah (Debian: apt-get install podman buildah runc)" >&2
		exit 1
	fi
fi

version=$("$bin" --version | awk '{ print $NF }')
revision=$(git -C "$repo" rev-parse HEAD 2>/dev/null || echo unknown)
context=${IMAGE_CONTEXT:-$(cd "$(dirname "$bin")" && pwd)/image}
rm -rf "$context"
mkdir -p "$context"
"$here/rootfs.sh" "$bin" "$context/rootfs"
cp "$repo/Dockerfile" "$context/Dockerfile"

echo "building $image (otelcol-vllm $version) with $tool"
# shellcheck disable=SC2086 # CONTAINER_TOOL may carry flags
DOCKER_BUILDKIT=1 $tool build --build-arg ROOTFS=prebuilt --build-arg VERSION="$version" --build-arg REVISION="$revision" \
	-t "$image" -f "$context/Dockerfile" "$context"
