"""Fill the Kubernetes templates (KubeRay RayCluster and RayJob, Prefect kubernetes work-pool job template)
with a cluster's parameters, validating them; writes `<name>.rendered.<ext>` files to --out.

    python -m bard_pipeline.infra.k8s.render --image REGISTRY/bard-gpu-worker:TAG \
        --flow-runner-image REGISTRY/bard-flow-runner:TAG \
        --gpu-type NVIDIA-H100-80GB-HBM3 --gpus-per-worker 8 --max-gpu-workers 4 --s3-endpoint https://s3.example \
        --out build/k8s
    kubectl apply -f build/k8s/raycluster.rendered.yaml
    kubectl create -f build/k8s/rayjob.rendered.yaml   # optional: one flow run as a RayJob, driver in-cluster
    prefect work-pool create bard-k8s --type kubernetes \
        --base-job-template build/k8s/prefect-base-job-template.rendered.json
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from string import Template
from typing import Any

HERE = Path(__file__).resolve().parent
TEMPLATES = ("raycluster.yaml", "rayjob.yaml", "prefect-base-job-template.json")


def parameters(args: argparse.Namespace) -> dict[str, str]:
    if args.min_gpu_workers > args.max_gpu_workers:
        raise SystemExit(f"--min-gpu-workers {args.min_gpu_workers} exceeds --max-gpu-workers {args.max_gpu_workers}")
    if not re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", args.cluster_name):
        raise SystemExit(f"--cluster-name {args.cluster_name!r} must be a DNS label (lowercase letters, digits, '-')")
    return {
        "CLUSTER_NAME": args.cluster_name, "NAMESPACE": args.namespace, "IMAGE": args.image,
        "FLOW_RUNNER_IMAGE": args.flow_runner_image, "GPU_TYPE": args.gpu_type,
        "GPUS_PER_WORKER": str(args.gpus_per_worker), "MIN_GPU_WORKERS": str(args.min_gpu_workers),
        "MAX_GPU_WORKERS": str(args.max_gpu_workers), "CPUS_PER_WORKER": str(args.cpus_per_worker),
        "MEMORY_PER_WORKER": args.memory_per_worker, "S3_ENDPOINT": args.s3_endpoint, "S3_SECRET": args.s3_secret,
        "RECIPE": args.recipe, "STORE_ROOT": args.store_root,
    }  # fmt: skip


def render(name: str, values: dict[str, str]) -> str:
    """One template with every ${PARAMETER} filled; an unknown or missing parameter is an error."""
    return Template((HERE / name).read_text(encoding="utf-8")).substitute(values)


def load(name: str, text: str) -> Any:
    import yaml

    return json.loads(text) if name.endswith(".json") else yaml.safe_load(text)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--image", required=True, help="GPU worker image (docker/gpu-worker.Dockerfile)")
    p.add_argument("--flow-runner-image", required=True, help="flow-runner image (docker/flow-runner.Dockerfile)")
    p.add_argument("--gpu-type", required=True, help="node label value of nvidia.com/gpu.product")
    p.add_argument("--gpus-per-worker", type=int, default=8)
    p.add_argument("--min-gpu-workers", type=int, default=0)
    p.add_argument("--max-gpu-workers", type=int, default=2)
    p.add_argument("--cpus-per-worker", type=int, default=64)
    p.add_argument("--memory-per-worker", default="512Gi")
    p.add_argument("--s3-endpoint", required=True, help="S3 API endpoint of the artifact store")
    p.add_argument("--s3-secret", default="bard-s3", help="Kubernetes secret with access-key-id/secret-access-key")
    p.add_argument("--recipe", default="toy", help="recipe the RayJob runs (rayjob.yaml)")
    p.add_argument("--store-root", default="s3://bard-artifacts/bard", help="store.root of the RayJob's run")
    p.add_argument("--cluster-name", default="bard")
    p.add_argument("--namespace", default="bard")
    p.add_argument("--out", type=Path, required=True)
    return p


def main(argv: list[str] | None = None) -> list[Path]:
    args = build_parser().parse_args(argv)
    values = parameters(args)
    args.out.mkdir(parents=True, exist_ok=True)
    written = []
    for name in TEMPLATES:
        text = render(name, values)
        load(name, text)  # it must still parse
        stem, _, ext = name.rpartition(".")
        path = args.out / f"{stem}.rendered.{ext}"
        path.write_text(text, encoding="utf-8")
        written.append(path)
        print(path)
    return written


if __name__ == "__main__":
    main()
