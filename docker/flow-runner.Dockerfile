# CPU image for the Prefect flow runner (the Kubernetes work pool's job image too) and the toy pipeline:
# Python 3.12 (the GPU worker's Python: Ray needs one minor version across a cluster and its clients), the CPU
# build of torch, prefect-kubernetes (the kubernetes worker type), and the project installed with the exact
# versions of constraints.txt.
#   docker build -f docker/flow-runner.Dockerfile --build-arg TORCH_INDEX_URL=<PyTorch CPU wheel index> -t bard-flow-runner .
#   docker run --rm -v "$PWD/.bard:/app/.bard" bard-flow-runner run toy
FROM python:3.12-slim

# The PyTorch index that serves CPU wheels (without it pip takes the default, CUDA build).
ARG TORCH_INDEX_URL=""
ENV PIP_NO_CACHE_DIR=1 \
    PYTHONUNBUFFERED=1 \
    DO_NOT_TRACK=1 \
    PREFECT_SERVER_ANALYTICS_ENABLED=false \
    RAY_USAGE_STATS_ENABLED=0

RUN useradd --create-home --uid 10001 bard
WORKDIR /app

COPY pyproject.toml constraints.txt README.md ./
COPY bard_core ./bard_core
COPY bard_pipeline ./bard_pipeline

# The project itself (".") is unpinned by nature; everything it pulls is pinned by constraints.txt, and so is
# prefect-kubernetes (`prefect worker start --type kubernetes` and the work pool's job runs need it).
# hadolint ignore=DL3013
RUN pip install "torch==2.13.0" ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"} \
 && pip install ".[pipeline,train]" prefect-kubernetes -c constraints.txt \
 && chown -R bard:bard /app

USER 10001
HEALTHCHECK --interval=30s --timeout=10s CMD ["bard", "--help"]
ENTRYPOINT ["bard"]
CMD ["run", "toy"]
