# GPU worker image: what a Ray worker node needs to run every stage on GPUs: vLLM engine replicas (sample,
# compress, evaluate), TRL training inside Ray Train (sft, rl with colocated vLLM rollouts), and this package.
# Versions come from the project's files: constraints.txt for the training stack, with the pins of
# constraints-gpu.txt in place of its own: vllm 0.29.0 (inside TRL's supported vLLM range, which the colocated
# GRPO rollouts use), what vLLM adds, and the three packages vLLM needs at other versions. Python 3.12, as in
# the flow-runner image (Ray needs one Python minor version across a cluster and its clients). No Prefect:
# every vLLM that TRL supports caps fastapi below what Prefect 3.9 needs (see constraints-gpu.txt).
#   docker build -f docker/gpu-worker.Dockerfile -t bard-gpu-worker .
#   docker run --gpus all -e RAY_HEAD_ADDRESS=HEAD:6379 bard-gpu-worker
# Cannot be built on the CPU CI machine (no Docker daemon, no GPU): CI lints it and checks its pins.
FROM nvidia/cuda:12.9.1-cudnn-runtime-ubuntu24.04

# The image's one virtual environment lives in the app folder, beside the code it installs.
ENV DEBIAN_FRONTEND=noninteractive \
    PIP_NO_CACHE_DIR=1 \
    PYTHONUNBUFFERED=1 \
    VIRTUAL_ENV=/app/.venv \
    PATH=/app/.venv/bin:$PATH \
    DO_NOT_TRACK=1 \
    PREFECT_SERVER_ANALYTICS_ENABLED=false \
    RAY_USAGE_STATS_ENABLED=0 \
    HF_HUB_DISABLE_TELEMETRY=1

# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3.12 python3.12-venv python3.12-dev build-essential curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --create-home --uid 10001 bard
WORKDIR /app

COPY pyproject.toml constraints.txt constraints-gpu.txt README.md ./
COPY bard_core ./bard_core
COPY bard_pipeline ./bard_pipeline

# One environment: TRL's colocated vLLM rollouts import vllm inside the training process. The constraints are
# constraints.txt less every package constraints-gpu.txt pins, then constraints-gpu.txt. The packages are the
# project with its train extra and the pipeline extra's Ray (pyproject.toml), without Prefect.
# hadolint ignore=DL3013
RUN python3.12 -m venv "$VIRTUAL_ENV" \
 && sed -n 's/^\([A-Za-z0-9_.-]*\)==.*/^\1==/p' constraints-gpu.txt > /tmp/gpu-pinned.txt \
 && grep -v -i -f /tmp/gpu-pinned.txt constraints.txt > /tmp/constraints-gpu.txt \
 && grep -v '^#' constraints-gpu.txt >> /tmp/constraints-gpu.txt \
 && pip install vllm ".[train]" "ray[default,data,train]>=2.60,<2.61" -c /tmp/constraints-gpu.txt \
 && chown -R bard:bard /app

USER 10001
EXPOSE 6379 8265
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s \
  CMD ["python", "-c", "import torch, vllm, ray, trl, bard_core; assert torch.cuda.is_available()"]
# A worker node: the head runs the flow-runner image (docker/compose.yaml, infra/k8s/raycluster.yaml).
CMD ["bash", "-c", "ray start --address=\"${RAY_HEAD_ADDRESS:?set RAY_HEAD_ADDRESS=HOST:6379}\" --block"]
