"""The teacher watcher: a scheduled flow that checks teacher sources and starts a distillation per new one.

What it has seen lives in the artifact store (``watcher/seen.json``), so any number of watcher runs, on
any machine, agree. A new teacher emits the Prefect event ``bard.teacher.new`` (automations can react to
it too) and starts the distillation deployment with that teacher, tagged ``teacher:<name>``. A source
that cannot be checked logs a warning and triggers nothing.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger
from prefect.deployments import run_deployment
from prefect.events import emit_event

from bard_core.recipes import load_config
from bard_pipeline.infra.store import ArtifactStore
from bard_pipeline.infra.teachers import (
    Teacher,
    TeacherSourceError,
    list_teachers,
    load_seen,
    mark_seen,
    save_seen,
    source_id,
)

NEW_TEACHER_EVENT = "bard.teacher.new"


def _new_teachers(cfg: Any, store: ArtifactStore, seen: dict[str, Any]) -> list[Teacher]:
    log = get_run_logger()
    new: list[Teacher] = []
    for source in cfg.watch.sources:
        sid = source_id(source)
        try:
            found = list_teachers(source, store)
        except TeacherSourceError as exc:
            log.warning("teacher source %s could not be checked, nothing triggered from it: %s", sid, exc)
            continue
        first_check = sid not in seen["sources"]
        seen["sources"][sid] = {"teachers": len(found)}
        unseen = [t for t in found if t.key() not in seen["teachers"]]
        if first_check and source.initial == "record":
            for teacher in unseen:
                mark_seen(seen, teacher, None)
            log.info("%s: first check, %d teacher(s) recorded as already known", sid, len(unseen))
            continue
        log.info("%s: %d teacher(s), %d new", sid, len(found), len(unseen))
        new += unseen
    return new


@flow(name="bard-teacher-watcher", log_prints=True)
def watch_teachers(recipe: str = "toy", overrides: list[str] | None = None) -> list[str]:
    """Check RECIPE's `watch.sources`; start `watch.deployment` once per new teacher. Returns the run ids."""
    log = get_run_logger()
    cfg = load_config(recipe, overrides or [])
    store = ArtifactStore(cfg.store.root, cfg.store.endpoint_url)
    seen = load_seen(store)
    started = []
    for teacher in _new_teachers(cfg, store, seen):
        emit_event(
            event=NEW_TEACHER_EVENT,
            resource={"prefect.resource.id": f"bard.teacher.{teacher.name}", "prefect.resource.name": teacher.name},
            payload={"model": teacher.model, "version": teacher.version, "source": teacher.source, "recipe": recipe},
        )
        parameters = {
            "recipe": recipe,
            "overrides": [*(overrides or []), f"{cfg.watch.model_key}={teacher.model}"],
            "until": cfg.watch.until,
        }
        run = run_deployment(
            cfg.watch.deployment, parameters=parameters, timeout=0, tags=["bard", "watcher", f"teacher:{teacher.name}"]
        )
        mark_seen(seen, teacher, str(run.id))  # only once the run exists: a failed trigger is retried next time
        save_seen(store, seen)
        log.info("new teacher %s (%s): started %s run %s", teacher.name, teacher.model, cfg.watch.deployment, run.id)
        started.append(str(run.id))
    save_seen(store, seen)
    return started
