# CPU image for the Prefect flow runner and the toy pipeline: Python 3.11, the CPU build of torch, and the
# project installed with the exact versions of constraints.txt.
#   docker build -f docker/flow-runner.Dockerfile -t bard-flow-runner .
#   docker run --rm -v "$PWD/.bard:/app/.bard" bard-flow-runner run configs/toy.yaml
FROM python:3.11-slim

ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ENV PIP_NO_CACHE_DIR=1 \
    PYTHONUNBUFFERED=1 \
    DO_NOT_TRACK=1 \
    PREFECT_SERVER_ANALYTICS_ENABLED=false \
    RAY_USAGE_STATS_ENABLED=0

RUN useradd --create-home --uid 10001 bard
WORKDIR /app

COPY pyproject.toml constraints.txt README.md ./
COPY bard_core ./bard_core
COPY infra ./infra
COPY tasks ./tasks
COPY flows ./flows
COPY configs ./configs

RUN pip install "torch==2.13.0" --index-url "${TORCH_INDEX_URL}" \
 && pip install . -c constraints.txt \
 && chown -R bard:bard /app

USER bard
HEALTHCHECK --interval=30s --timeout=10s CMD ["bard", "--help"]
ENTRYPOINT ["bard"]
CMD ["run", "configs/toy.yaml"]
