#!/usr/bin/env bash
# Set up .venv with the project installed: `./bootstrap.sh` (runtime) or `./bootstrap.sh dev` (plus test tools).
# Idempotent: re-running it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}
extra=${1:-}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# torch first: an already installed build (e.g. CUDA on a GPU box) is kept; otherwise the CPU wheel of the
# tested version. Leaving torch to the resolver would pull a multi-GB CUDA build on a CPU-only machine.
.venv/bin/python -c "import torch" 2>/dev/null || .venv/bin/python -m pip install -q "torch==2.13.0"
target="."
[ "$extra" = "dev" ] && target=".[dev]"
.venv/bin/python -m pip install -q -e "$target" -c constraints.txt
echo "bootstrap: $(.venv/bin/python -c 'import sys; print(sys.version.split()[0])') venv ready ($target)"
