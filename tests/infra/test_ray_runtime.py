"""The run's Ray runtime: shutting it down first waits for Ray Data's running executors (a thread that calls
into Ray after ``ray.shutdown()`` makes Ray end the whole process), and only for them."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from bard_core.config import RayConfig
from bard_pipeline.infra.ray_runtime import RaySession, drain_ray_data, ray_data_executors


@pytest.fixture(scope="module")
def session() -> Iterator[RaySession]:
    session = RaySession(RayConfig(num_cpus=1))
    session.ensure()
    yield session
    session.shutdown()


def _slow(batch: dict[str, object]) -> dict[str, object]:
    time.sleep(0.05)
    return batch


def test_draining_waits_for_a_running_executor(session: RaySession) -> None:
    import ray

    dataset = ray.data.range(400, override_num_blocks=40).map_batches(_slow, batch_size=10)
    rows: list[int] = []

    def consume() -> None:
        rows.extend(len(batch["id"]) for batch in dataset.iter_batches(batch_size=None))

    consumer = threading.Thread(target=consume, daemon=True)
    consumer.start()
    deadline = time.monotonic() + 60
    while not ray_data_executors() and time.monotonic() < deadline:
        time.sleep(0.01)
    executors = ray_data_executors()
    assert executors, "no executor thread was seen while the dataset ran"
    drain_ray_data()
    assert not any(t.is_alive() for t in executors)
    consumer.join(60)
    assert sum(rows) == 400


def test_an_abandoned_iterator_s_idle_helpers_are_not_waited_for(session: RaySession) -> None:
    import ray

    batches = iter(ray.data.range(2000, override_num_blocks=20).iter_batches(batch_size=10))
    next(batches)  # the iterator lives on, and with it prefetch threads waiting on their queues
    deadline = time.monotonic() + 60
    while ray_data_executors() and time.monotonic() < deadline:
        time.sleep(0.05)  # the executor produces its 20 blocks (they wait in its output queue) and ends
    assert "Prefetcher" in {t.name for t in threading.enumerate()}
    assert not ray_data_executors()
