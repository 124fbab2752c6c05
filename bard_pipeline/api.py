"""The Python API: run the pipeline, or some of its stages, and read any artifact, from a notebook or a script.

Run the toy recipe's data stages, then read the dataset::

    >>> from bard_pipeline import api
    >>> refs = api.run("toy", ["sample.n_samples=2"], until="materialize")   # what `bard run` does
    >>> refs["materialize"]
    'materialize/83949f5...'
    >>> store = api.open_store("toy")                 # the recipe's store; or a URL: "s3://bucket/bard"
    >>> api.read_table(refs["materialize"], "sft_train", store).num_rows
    43341
    >>> [m.stage for m in api.list_artifacts(store)]
    ['tokenizer', 'model', 'ingest', 'sample', 'compress', 'materialize']
    >>> api.manifest(refs["materialize"], store).rows["sft_train"]
    43341

Every read verifies the file's sha256 against the manifest; tables are parsed from Arrow memory, so the
interpreter exits cleanly afterwards (see ``infra/streams.py``). S3 credentials come from the environment
(``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` or a profile), never from the arguments here. Prefect and
Ray are imported by ``run`` only: reading needs neither.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from bard_pipeline.infra.env import apply_defaults
from bard_pipeline.infra.store import ArtifactRef, ArtifactStore
from bard_pipeline.infra.streams import DEFAULT_CHUNK_BYTES

if TYPE_CHECKING:
    import pyarrow as pa

    from bard_core.manifest import Manifest

__all__ = ["ArtifactRef", "ArtifactStore", "fetch", "list_artifacts", "manifest", "open_store", "read_table", "run"]

StoreLike = ArtifactStore | str | Path | None
"""A store, a store URL (``file://PATH``, ``s3://BUCKET/PREFIX``), a store folder, a recipe (name or YAML
file), or None (the default store, ``file://.bard/store``)."""


def run(
    recipe: str | Path,
    overrides: Sequence[str] = (),
    *,
    stages: Sequence[str] | str | None = None,
    until: str | None = None,
    from_run: str | None = None,
    verbose: bool = False,
) -> dict[str, str]:
    """Run the distillation flow as ``bard run`` does; returns each stage's artifact (``stage/fingerprint``).

    ``recipe`` is a packaged name (``toy``, see ``bard recipes``) or a YAML file; ``overrides`` are
    ``key=value`` strings (``["sample.n_samples=2"]``). ``stages`` limits what may execute (a list or
    ``"sft,rl"``; the other stages must already be in the store, or come from ``from_run``, a run id or a
    unique prefix of one) and, without ``until``, stops after the last of them; ``until`` stops after that
    stage (``materialize``, ``sft``, ``rl`` or ``evaluate``). A stage whose artifact exists is skipped.

    >>> api.run("toy", until="materialize")                      # the data stages
    >>> api.run("toy", stages="sft", from_run="3f2a9c")          # retrain on an earlier run's dataset

    Raises ``bard_core.recipes.ConfigError`` on a bad recipe or override before anything starts, and
    ``ArtifactNotFoundError`` for a ``from_run`` that matches no run.
    """
    apply_defaults()  # telemetry off and loopback defaults, before Prefect or Ray are imported
    from bard_core.recipes import load_config
    from bard_pipeline.infra.progress import configure_terminal

    configure_terminal(verbose)
    cfg = load_config(recipe, list(overrides))  # fail fast on a bad config, before Prefect starts
    if from_run:
        ArtifactStore(cfg.store.root, cfg.store.endpoint_url).resolve_run(from_run)
    from bard_pipeline.flows.distill import distill

    selected = [s.strip() for s in stages.split(",") if s.strip()] if isinstance(stages, str) else stages
    refs: dict[str, str] = distill(
        recipe=str(recipe),
        overrides=list(overrides),
        stages=list(selected) if selected else None,
        from_run=from_run,
        until=until,
    )
    return refs


def open_store(
    source: StoreLike = None, *, endpoint_url: str | None = None, chunk_bytes: int = DEFAULT_CHUNK_BYTES
) -> ArtifactStore:
    """The artifact store of a recipe, or at a URL.

    >>> api.open_store("toy")                           # the store the toy recipe writes to
    >>> api.open_store("configs/smoke.yaml")            # a recipe file
    >>> api.open_store("s3://my-bucket/bard", endpoint_url="http://127.0.0.1:9000")
    >>> api.open_store("file:///data/bard-store")       # or the folder itself: ".bard/store"

    ``endpoint_url`` (an S3-compatible server) applies to a URL; a recipe brings its own. ``chunk_bytes`` is
    the piece size of transfers, what one holds in memory (at least 5 MiB on S3)."""
    if isinstance(source, ArtifactStore):
        return source
    if source is not None and Path(source).is_dir():  # a folder is never a recipe (those are YAML files)
        source = f"file://{Path(source).resolve()}"
    if source is None or str(source).startswith(("file://", "s3://")):
        from bard_core.config import StoreConfig

        cfg = StoreConfig(root=str(source)) if source is not None else StoreConfig()
        return ArtifactStore(cfg.root, endpoint_url or cfg.endpoint_url, chunk_bytes=chunk_bytes)
    from bard_core.recipes import load_config

    store = load_config(source).store
    return ArtifactStore(store.root, store.endpoint_url, chunk_bytes=chunk_bytes)


def read_table(ref: ArtifactRef | str, name: str, store: StoreLike = None) -> pa.Table:
    """A table of an artifact as a ``pyarrow.Table``, verified: ``name`` is its logical name, one file
    (``problems``) or all shards of a sharded table (``traces``).

    >>> api.read_table("ingest/8a69a73f...", "problems", "toy").to_pandas()
    >>> api.read_table(refs["evaluate"], "metrics", store).to_pylist()
    """
    return open_store(store).read_table(_ref(ref), name)


def manifest(ref: ArtifactRef | str, store: StoreLike = None) -> Manifest:
    """An artifact's manifest: its files (with sha256 and size), rows per table, inputs, config, timings.

    >>> api.manifest("sample/8b0b281d...", "toy").rows
    {'traces': 12000}
    """
    return open_store(store).manifest(_ref(ref))


def list_artifacts(store: StoreLike = None, stage: str | None = None) -> list[Manifest]:
    """Manifests of the committed artifacts (of one ``stage``, or all), oldest first.

    >>> [f"{m.stage}/{m.fingerprint[:8]}" for m in api.list_artifacts("toy", stage="sft")]
    """
    return open_store(store).list(stage)


def fetch(ref: ArtifactRef | str, dest: str | Path, store: StoreLike = None, prefix: str = "") -> Path:
    """Download an artifact's files (those under ``prefix``: ``model`` for a trained student) into ``dest``
    with their logical names, streamed and verified file by file; returns ``dest``.

    >>> model_dir = api.fetch(refs["sft"], "./student", "toy", prefix="model")
    """
    return open_store(store).fetch_dir(_ref(ref), Path(dest), prefix=prefix)


def _ref(ref: ArtifactRef | str) -> ArtifactRef:
    return ref if isinstance(ref, ArtifactRef) else ArtifactRef.parse(ref)
