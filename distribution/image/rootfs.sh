#!/bin/sh
# rootfs.sh BINARY DIR — assembles in DIR the whole filesystem of the otelcol-vllm image: the binary, the glibc
# files it links against (as `ldd` lists them; the nvml receiver is a cgo binary and dlopens libnvidia-ml.so.1,
# which the NVIDIA container runtime mounts), the CA certificates for TLS exporters, passwd/group entries for the
# image's user (uid/gid 10001), nsswitch.conf, and the licences. No shell, no package manager. Both ways of
# building the repository's Dockerfile use it: build.sh runs it on a `make dist` binary (`make image`,
# ROOTFS=prebuilt), and the Dockerfile's source stage runs it after building the binary (ROOTFS=source).
set -eu

if [ $# -ne 2 ]; then
	echo "usage: $0 BINARY DIR" >&2
	exit 2
fi
bin=$1
root=$2
repo=$(cd "$(dirname "$0")/../.." && pwd)

mkdir -p "$root/etc" "$root/usr/share/doc/otelcol-vllm"
cp "$bin" "$root/otelcol-vllm"
chmod 0755 "$root/otelcol-vllm"

# `ldd` prints "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" for libraries and
# "/lib64/ld-linux-x86-64.so.2 (0x...)" for the dynamic loader; linux-vdso has no file.
libs=$(ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' | sort -u)
if [ -z "$libs" ]; then
	echo "$0: ldd lists no libraries for $bin (a static binary needs none; otelcol-vllm is built with cgo)" >&2
	exit 1
fi
for lib in $libs; do
	mkdir -p "$root$(dirname "$lib")"
	cp -L "$lib" "$root$lib" # the file, not the symlink, at the path the loader asks for
done
# glibc is LGPL-2.1: its copyright file goes with it
if [ -f /usr/share/doc/libc6/copyright ]; then
	mkdir -p "$root/usr/share/doc/libc6"
	cp /usr/share/doc/libc6/copyright "$root/usr/share/doc/libc6/copyright"
fi

# TLS exporters (remote write or OTLP to an https endpoint) verify against the system's CA bundle
ca=/etc/ssl/certs/ca-certificates.crt
if [ -f "$ca" ]; then
	mkdir -p "$root/etc/ssl/certs"
	cp -L "$ca" "$root$ca"
else
	echo "$0: warning: $ca not found (install ca-certificates): TLS exporters will not verify servers" >&2
fi

printf 'root:x:0:0:root:/:/sbin/nologin\notelcol-vllm:x:10001:10001:otelcol-vllm:/:/sbin/nologin\n' > "$root/etc/passwd"
printf 'root:x:0:\notelcol-vllm:x:10001:\n' > "$root/etc/group"
printf 'hosts: files dns\n' > "$root/etc/nsswitch.conf"
cp "$repo/LICENSE" "$root/usr/share/doc/otelcol-vllm/LICENSE"
